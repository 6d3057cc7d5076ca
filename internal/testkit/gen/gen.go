package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path"
	"regexp"
	"strings"
)

// Config sizes a generated tree.
type Config struct {
	Devices   int
	Balancers int
	Tenants   int
	Seed      uint64
	// Rules is how many L7 rules each http balancer of the plain tree
	// gets (with one pool beside its nodes); 0: none, today's tree. The
	// rules draw nothing from the random source: the tree is otherwise
	// the same.
	Rules int
}

// Files maps a slash-separated path relative to the output directory to its content.
type Files map[string][]byte

// maxBalancers keeps each VIP class within its /17, maxDevices the device
// addresses within theirs.
const (
	maxBalancers = 32000
	maxDevices   = 32000
)

// module is the CUE module of both generated trees.
const module = "example.com/gen"

// Address plan. Only ranges reserved for documentation or benchmarking:
// 198.18.0.0/15 (RFC 2544) is set aside for network benchmarks and never
// routed, which is what a generated fleet needs: far more unique VIPs than
// the three /24 documentation ranges hold. VIPs come from 198.18.0.0/16
// (public from the lower /17, internal from the upper /17), nodes from
// 198.19.0.0/17 (handed out in turn, wrapping), device addresses from
// 198.19.128.0/17. Devices have IPv4 addresses rather than DNS names so that
// the HA pairs talk unicast VRRP: each pair then has its own 255
// virtual_router_ids, where multicast instances would all share one set of
// 255 (see package compiler) and a fleet of this size would not compile.
var (
	publicVIPs   = netip.MustParsePrefix("198.18.0.0/17")
	internalVIPs = netip.MustParsePrefix("198.18.128.0/17")
	nodeNet      = netip.MustParsePrefix("198.19.0.0/17")
	deviceNet    = netip.MustParsePrefix("198.19.128.0/17")
	zones        = []string{"az-a", "az-b", "az-c"}
	algorithms   = []string{"roundrobin", "leastconn", "source", "uri", "static-rr", "first"}
	tcpPorts     = []int{3306, 5432, 6379, 9000, 9200, 11211}
)

// Generate returns the files of the tree: lbc/ is the spec tree as a user
// writes it; cue/ is the same tree plus a copy of lbc's schema as the CUE
// package cue/schema and, in each instance, a file that unifies the
// instance with it, so that `cue export ./...` in cue/ checks what lbc checks.
// schemaSrc is lbc's schema; nil leaves cue/ out.
func Generate(c Config, schemaSrc []byte) (Files, error) {
	if c.Devices < 1 || c.Balancers < 0 || c.Tenants < 1 {
		return nil, fmt.Errorf("generate: need at least 1 device and 1 tenant")
	}
	if c.Balancers > maxBalancers {
		return nil, fmt.Errorf("generate: at most %d balancers (one VIP address each, /17 per class)", maxBalancers)
	}
	if c.Devices > maxDevices {
		return nil, fmt.Errorf("generate: at most %d devices (one address each in %s)", maxDevices, deviceNet)
	}
	g := &gen{c: c, rnd: rand.New(rand.NewPCG(c.Seed, 0x6c6263))}
	files := Files{}
	instances := map[string]string{} // instance dir -> its unification file body
	files["lbc/cue.mod/module.cue"] = moduleFile()
	files["idiomatic/lbc/cue.mod/module.cue"] = moduleFile()
	files["lbc/devices/devices.cue"] = g.devices()
	files["idiomatic/lbc/devices/devices.cue"] = g.idiomaticDevices()
	files["idiomatic/lbc/defs/defs.cue"] = []byte(defsFile)
	instances["devices"] = "devices: close({[s.#Name]: s.#Device})\nscheduler: s.#Scheduler\n"
	per, extra := c.Balancers/c.Tenants, c.Balancers%c.Tenants
	n := 0
	for t := 0; t < c.Tenants; t++ {
		count := per
		if t < extra {
			count++
		}
		name := fmt.Sprintf("t%03d", t)
		dir := "balancers/" + name
		svcs := g.services(name, n, count)
		files["lbc/"+dir+"/balancers.cue"] = tenant(name, svcs)
		files["idiomatic/lbc/"+dir+"/balancers.cue"] = idiomaticTenant(name, svcs)
		instances[dir] = "balancers: close({[s.#Name]: s.#Balancer})\n"
		n += count
	}
	if schemaSrc == nil {
		return files, nil
	}
	pkg, err := packageName(schemaSrc)
	if err != nil {
		return nil, err
	}
	for _, tree := range []string{"", "idiomatic/"} {
		var lbcFiles []string
		for p := range files {
			if strings.HasPrefix(p, tree+"lbc/") {
				lbcFiles = append(lbcFiles, p)
			}
		}
		for _, p := range lbcFiles {
			files[tree+"cue/"+strings.TrimPrefix(p, tree+"lbc/")] = files[p]
		}
		files[tree+"cue/schema/schema.cue"] = schemaSrc
		for dir, body := range instances {
			var b bytes.Buffer
			fmt.Fprintf(&b, "// Generated: unifies this instance with lbc's schema, for `cue export`.\n")
			fmt.Fprintf(&b, "package spec\n\nimport s %q\n\n%s", module+"/schema:"+pkg, body)
			files[path.Join(tree+"cue", dir, "zz_schema.cue")] = b.Bytes()
		}
	}
	return files, nil
}

var packageRE = regexp.MustCompile(`(?m)^package ([A-Za-z_][A-Za-z0-9_]*)\s*$`)

func packageName(src []byte) (string, error) {
	m := packageRE.FindSubmatch(src)
	if m == nil {
		return "", fmt.Errorf("generate: schema has no package clause")
	}
	return string(m[1]), nil
}

func moduleFile() []byte {
	return []byte(fmt.Sprintf("module: %q\nlanguage: {\n\tversion: \"v0.17.1\"\n}\n", module))
}

type gen struct {
	c         Config
	rnd       *rand.Rand
	nPublic   int // VIP addresses handed out per class
	nInternal int
	nNode     int
}

// deviceTags cycles public, public, internal, public+internal, so that 3/4
// of the devices carry public VIPs and 1/2 carry internal ones.
func deviceTags(i int) []string {
	switch i % 4 {
	case 2:
		return []string{"internal"}
	case 3:
		return []string{"public", "internal"}
	default:
		return []string{"public"}
	}
}

func (g *gen) devices() []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("package spec\n\n")
	b.WriteString("scheduler: {\n\tfilters: [\"capacity\", \"zone\", \"tags\", \"vipNetwork\", \"device\", \"ha\"]\n")
	b.WriteString("\tcosts: {balancers: 1.0, maxconn: 1.0, spread: 0.5}\n}\n\n")
	b.WriteString("devices: {\n")
	for i := 0; i < g.c.Devices; i++ {
		name := fmt.Sprintf("lb-%04d", i)
		tags := deviceTags(i)
		var nets []string
		for _, t := range tags {
			if t == "public" {
				nets = append(nets, publicVIPs.String())
			} else {
				nets = append(nets, internalVIPs.String())
			}
		}
		capB := g.capacity()
		fmt.Fprintf(&b, "\t%q: {\n", name)
		fmt.Fprintf(&b, "\t\taddress: %q\n", addrAt(deviceNet, i+1)) // skips .0 of the prefix
		if i%10 == 9 {
			b.WriteString("\t\tssh: {user: \"lbc\", sudo: true}\n")
		}
		fmt.Fprintf(&b, "\t\tzone: %q\n", zones[i%len(zones)])
		fmt.Fprintf(&b, "\t\tcapacity: {balancers: %d, maxconn: %d}\n", capB, capB*10000)
		fmt.Fprintf(&b, "\t\ttags: [%s]\n", quoteList(tags))
		b.WriteString("\t\tvipInterface: \"eth0\"\n")
		fmt.Fprintf(&b, "\t\tvipNetworks: [%s]\n", quoteList(nets))
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// capacity is every device's balancer capacity, sized so that the whole
// tree fits with room to spare: about 3× the average load.
func (g *gen) capacity() int { return 3*(g.c.Balancers+g.c.Devices-1)/g.c.Devices + 10 }

const header = "// Generated by `go run ./internal/testkit/gen`; do not edit.\n"

func (g *gen) nextVIP(internal bool) netip.Addr {
	p, n := publicVIPs, &g.nPublic
	if internal {
		p, n = internalVIPs, &g.nInternal
	}
	*n++
	return addrAt(p, *n) // skips .0 of the prefix
}

func (g *gen) nextNode() netip.Addr {
	size := 1 << (32 - nodeNet.Bits())
	g.nNode = g.nNode%(size-2) + 1 // skips the first and the last address
	return addrAt(nodeNet, g.nNode)
}

func addrAt(p netip.Prefix, k int) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(k)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// service is one generated balancer, before it is written as plain data
// or as a tenant's list entry.
type service struct {
	k           int // index within its tenant
	name        string
	http        bool
	algorithm   string
	vip         netip.Addr
	ports       []int
	nodePort    int
	nodes       []genNode
	health      string // "none", "http" or "tcp"
	interval    int    // seconds
	persistence string // "", "cookie" or "source"
	client      int    // timeouts in seconds; 0: no timeouts
	server      int
	maxconn     int
	ha          []string // zones of an HA pair
	noFailback  bool
	zones, tags []string
	rules       int // L7 rules (Config.Rules), http only
}

type genNode struct {
	address netip.Addr
	weight  int
	maxconn int
	backup  bool
}

// services draws count balancers of one tenant, numbered from first.
func (g *gen) services(tenant string, first, count int) []service {
	out := make([]service, count)
	for k := range out {
		out[k] = g.service(tenant, first+k, k)
		if out[k].http {
			out[k].rules = g.c.Rules
		}
	}
	return out
}

func (g *gen) service(tenant string, i, k int) service {
	r := g.rnd
	s := service{k: k, name: fmt.Sprintf("%s-svc-%03d", tenant, k)}
	s.http = r.IntN(10) < 7
	internal := r.IntN(10) < 3
	s.algorithm = algorithms[i%len(algorithms)]
	if !s.http && s.algorithm == "uri" { // uri hashes the request path: http only
		s.algorithm = "leastconn"
	}

	// 1 or 2 VIPs: one address, a second port for a fifth of them.
	s.vip = g.nextVIP(internal)
	s.ports = []int{80}
	if s.http {
		if r.IntN(5) == 0 {
			s.ports = append(s.ports, 443)
		}
	} else {
		s.ports = []int{tcpPorts[r.IntN(len(tcpPorts))]}
		if r.IntN(5) == 0 {
			s.ports = append(s.ports, s.ports[0]+1)
		}
	}

	// 3 to 5 nodes with weights; sometimes a node maxconn, sometimes a backup.
	s.nodePort = 8080
	if !s.http {
		s.nodePort = s.ports[0]
	}
	nodes := 3 + r.IntN(3)
	withMaxconn := r.IntN(3) == 0
	for j := 0; j < nodes; j++ {
		n := genNode{address: g.nextNode(), weight: 1 + r.IntN(100)}
		if withMaxconn {
			n.maxconn = 100 * (1 + r.IntN(10))
		}
		n.backup = j == nodes-1 && r.IntN(5) == 0
		s.nodes = append(s.nodes, n)
	}

	switch {
	case r.IntN(20) == 0:
		s.health = "none"
	case s.http:
		s.health, s.interval = "http", 2+r.IntN(4)
	default:
		s.health, s.interval = "tcp", 2+r.IntN(4)
	}
	switch p := r.IntN(10); {
	case s.http && p < 2:
		s.persistence = "cookie"
	case p == 2:
		s.persistence = "source"
	}
	if r.IntN(10) < 3 {
		s.client, s.server = 30*(1+r.IntN(4)), 30*(1+r.IntN(4))
	}
	if !withMaxconn && r.IntN(10) < 4 {
		s.maxconn = 1000 * (1 + r.IntN(5))
	}

	// Placement: mostly free; some by zone, some by tag, a few HA pairs.
	tag := "public"
	if internal {
		tag = "internal"
	}
	switch p := r.IntN(100); {
	case p < 3:
		z := r.IntN(3)
		s.ha = []string{zones[z], zones[(z+1)%3]}
		s.noFailback = r.IntN(2) == 0
	case p < 13:
		s.zones = []string{zones[r.IntN(3)]}
	case p < 23:
		s.tags = []string{tag}
	case p < 28:
		s.zones, s.tags = []string{zones[r.IntN(3)]}, []string{tag}
	}
	return s
}

// tenant writes the balancers of one tenant as plain data.
func tenant(tenant string, svcs []service) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("package spec\n\n")
	fmt.Fprintf(&b, "balancers: [string]: tenant: %q\n", tenant)
	for _, s := range svcs {
		s.plain(&b)
	}
	return b.Bytes()
}

func (s *service) plain(b *bytes.Buffer) {
	fmt.Fprintf(b, "\nbalancers: %q: {\n", s.name)
	proto := "tcp"
	if s.http {
		proto = "http"
	}
	fmt.Fprintf(b, "\tprotocol:  %q\n", proto)
	fmt.Fprintf(b, "\talgorithm: %q\n", s.algorithm)
	b.WriteString("\tvips: [")
	for j, p := range s.ports {
		if j > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "{address: %q, port: %d}", s.vip, p)
	}
	b.WriteString("]\n")
	b.WriteString("\tnodes: [\n")
	for _, n := range s.nodes {
		fmt.Fprintf(b, "\t\t{address: %q, port: %d, weight: %d", n.address, s.nodePort, n.weight)
		if n.maxconn > 0 {
			fmt.Fprintf(b, ", maxconn: %d", n.maxconn)
		}
		if n.backup {
			b.WriteString(", backup: true")
		}
		b.WriteString("},\n")
	}
	b.WriteString("\t]\n")
	switch s.health {
	case "none":
		b.WriteString("\thealthMonitor: {type: \"none\"}\n")
	case "http":
		fmt.Fprintf(b, "\thealthMonitor: {type: \"http\", path: \"/healthz\", expect: 200, interval: \"%ds\", timeout: \"1s\", rise: 2, fall: 3}\n", s.interval)
	default:
		fmt.Fprintf(b, "\thealthMonitor: {type: \"tcp\", interval: \"%ds\", timeout: \"2s\"}\n", s.interval)
	}
	switch s.persistence {
	case "cookie":
		fmt.Fprintf(b, "\tpersistence: {type: \"cookie\", cookie: \"SRV%d\"}\n", s.k)
	case "source":
		b.WriteString("\tpersistence: {type: \"source\"}\n")
	}
	if s.client > 0 {
		fmt.Fprintf(b, "\ttimeouts: {connect: \"5s\", client: \"%ds\", server: \"%ds\"}\n", s.client, s.server)
	}
	if s.maxconn > 0 {
		fmt.Fprintf(b, "\tmaxconn: %d\n", s.maxconn)
	}
	switch {
	case s.ha != nil:
		fmt.Fprintf(b, "\tplacement: {ha: true, zones: [%q, %q]}\n", s.ha[0], s.ha[1])
		if s.noFailback {
			b.WriteString("\tfailback: false\n")
		}
	case s.zones != nil && s.tags != nil:
		fmt.Fprintf(b, "\tplacement: {zones: [%q], tags: [%q]}\n", s.zones[0], s.tags[0])
	case s.zones != nil:
		fmt.Fprintf(b, "\tplacement: zones: [%q]\n", s.zones[0])
	case s.tags != nil:
		fmt.Fprintf(b, "\tplacement: tags: [%q]\n", s.tags[0])
	}
	s.l7(b)
	b.WriteString("}\n")
}

// l7Rules are the rules a generated http balancer gets, in turn: every
// condition kind and action. NAME is the balancer's name.
var l7Rules = []string{
	`{match: [{path: prefix: "/static/"}], pool: "static"}`,
	`{match: [{fileType: ["png", "css", "js"]}], pool: "static"}`,
	`{match: [{host: exact: "static.NAME.example.com"}], pool: "static"}`,
	`{match: [{header: {name: "X-Static", exact: "1"}}], pool: "static"}`,
	`{match: [{cookie: {name: "beta", exact: "1"}}, {path: prefix: "/app/"}], pool: "default"}`,
	`{match: [{path: exact: "/old"}], redirect: {location: "/new", code: 301}}`,
	`{match: [{host: suffix: ".old.example.com"}], redirect: {prefix: "https://NAME.example.com", code: 308}}`,
	`{match: [{path: prefix: "/admin"}, {header: name: "X-Admin", not: true}], reject: true}`,
	`{match: [{path: regex: "^/v[0-9]+/internal"}], reject: true}`,
	`{match: [{path: contains: "/.git"}], reject: true}`,
}

// l7 writes the pool and the rules of an http balancer (Config.Rules).
func (s *service) l7(b *bytes.Buffer) {
	if s.rules == 0 {
		return
	}
	n := s.nodes[0]
	fmt.Fprintf(b, "\tpools: static: nodes: [{address: %q, port: %d}]\n", n.address, s.nodePort)
	b.WriteString("\trules: [\n")
	for i := 0; i < s.rules; i++ {
		b.WriteString("\t\t" + strings.ReplaceAll(l7Rules[i%len(l7Rules)], "NAME", s.name) + ",\n")
	}
	b.WriteString("\t]\n")
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
