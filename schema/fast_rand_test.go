package schema

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// randSpec writes random plain data shaped like specs, with values drawn
// from pools of valid and invalid ones, split over two files (so that
// fields are unified across files, sometimes with conflicting values).
type randSpec struct {
	r      *rand.Rand
	files  [2]strings.Builder
	next   int
	spent  bool // an invalid value was written
	bodies map[string]string
}

// pools holds, for each kind of value, values the schema accepts and then,
// after "|", values it rejects (or that are not plain data).
var pools = map[string][]string{
	"int":      {"1", "2", "80", "100", "256", "|", "0", "257", "65535", "65536", "-1", "1.0", "2.5", `"80"`, "true", "null", "9223372036854775807", "99999999999999999999"},
	"risefall": {"1", "2", "100", "|", "0", "101"},
	"expect":   {"200", "100", "599", "|", "99", "600"},
	"num":      {"0", "1", "0.5", "1.0", "2e1", "|", "-1", "-0.5", `"1"`, "true"},
	"bool":     {"true", "false", "|", "1", `"yes"`, "null"},
	"ip":       {`"203.0.113.10"`, `"203.0.113.11"`, `"198.51.100.5"`, `"2001:db8::1"`, `"1.2.3"`, "|", `"::g"`, `"www.example.com"`, "1", `"203.0.113.10 "`},
	"host":     {`"192.0.2.11"`, `"lb.example.net"`, `"192.0.2.256"`, "|", `"-x"`, `"a;b"`, `""`, "5"},
	"name":     {`"shop"`, `"a-b"`, `"x.y_z"`, "|", `"Shop"`, `""`, `"a b"`},
	"label":    {`"az-a"`, `"az:b"`, `"pci"`, "|", `"a b"`, `""`, `"$x"`},
	"dur":      {`"1s"`, `"2s"`, `"500ms"`, `"1m30s"`, `"0s"`, `"1h"`, "|", `"2 s"`, `"-1s"`, "1"},
	"path":     {`"/etc/x.cfg"`, `"/a/../b"`, `"/var/lib/lbc/"`, "|", `"rel"`, `"/a b"`},
	"cmd":      {`"systemctl reload haproxy"`, `"haproxy -c -f"`, "|", `"a  b"`, `"a;b"`, `"x $y"`},
	"prefix":   {`"203.0.113.0/24"`, `"203.0.113.5/24"`, `"2001:db8::/32"`, `"1.2.3.4/33"`, "|", `"x/1"`},
	"proto":    {`"http"`, `"tcp"`, "|", `"udp"`, `"HTTP"`},
	"alg":      {`"roundrobin"`, `"leastconn"`, `"uri"`, `"static-rr"`, "|", `"random"`},
	"hmtype":   {`"http"`, `"tcp"`, `"none"`, "|", `"icmp"`},
	"method":   {`"GET"`, `"HEAD"`, "|", `"get"`},
	"httppath": {`"/"`, `"/healthz"`, "|", `"x"`, `"/${X}"`},
	"ptype":    {`"cookie"`, `"source"`, "|", `"sticky"`},
	"cookie":   {`"SRV"`, "|", `"a;b"`, `""`},
	"filter":   {`"zone"`, `"ha"`, `"capacity"`, "|", `"cheap"`},
	"user":     {`"root"`, `"lbc"`, "|", `"Root"`, `"a;b"`},
	"iface":    {`"eth0"`, "|", `"eth0;x"`, `"averyveryverylongname"`},
	"pattern":  {`{tenant: "t"}`, `{maxconn: 5}`, `{protocol: "tcp"}`, `{failback: false}`, "|", `tenant: "Bad"`, `5`},
}

// required fields are always written (but for one missing now and then).
var required = map[string]bool{"address": true, "port": true, "vips": true, "nodes": true, "type": true}

// pick returns one of xs: one the schema accepts, and now and then (at
// most once per instance) one it rejects.
func (g *randSpec) pick(xs ...string) string {
	bar := len(xs)
	for i, x := range xs {
		if x == "|" {
			bar = i
		}
	}
	if bar < len(xs)-1 && !g.spent && g.r.IntN(150) == 0 {
		g.spent = true
		return xs[bar+1+g.r.IntN(len(xs)-bar-1)]
	}
	return xs[g.r.IntN(bar)]
}

// name returns the next of names, now and then one at random (a second
// definition of the same entity, unified with the first).
func (g *randSpec) name(names ...string) string {
	if g.r.IntN(10) == 0 {
		return names[g.r.IntN(len(names))]
	}
	g.next++
	return names[g.next%len(names)]
}

// body returns a name and the body of its definition: for a name written
// before, mostly the same body again (which unifies), else a new one.
func (g *randSpec) body(gen func() string, names ...string) (string, string) {
	name := g.name(names...)
	if b, ok := g.bodies[name]; ok && g.r.IntN(4) != 0 {
		return name, b
	}
	if g.bodies == nil {
		g.bodies = map[string]string{}
	}
	b := gen()
	g.bodies[name] = b
	return name, b
}

func (g *randSpec) value(kind string) string {
	xs, ok := pools[kind]
	if !ok {
		panic(kind)
	}
	return g.pick(xs...)
}

func (g *randSpec) list(kind string, max int) string {
	n := g.r.IntN(max + 1)
	xs := make([]string, n)
	for i := range xs {
		xs[i] = g.value(kind)
	}
	return "[" + strings.Join(xs, ", ") + "]"
}

// fields writes some of the fields (name → kind or nested writer) as a
// struct body; an unknown field now and then.
func (g *randSpec) fields(fs []string, gen func(string) string) string {
	var parts []string
	for _, f := range fs {
		if required[f] && !g.spent && g.r.IntN(100) == 0 {
			g.spent = true
			continue
		}
		if g.r.IntN(6) == 0 && !required[f] {
			continue
		}
		parts = append(parts, f+": "+gen(f))
	}
	if !g.spent && g.r.IntN(80) == 0 {
		g.spent = true
		parts = append(parts, "colour: \"red\"")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (g *randSpec) node() string {
	return g.fields([]string{"address", "port", "weight", "maxconn", "backup"}, func(f string) string {
		switch f {
		case "address":
			return g.value("ip")
		case "backup":
			return g.value("bool")
		}
		return g.value("int")
	})
}

func (g *randSpec) balancer() string {
	return g.fields([]string{"tenant", "protocol", "algorithm", "vips", "nodes", "healthMonitor", "persistence", "timeouts", "maxconn", "placement", "failback"}, func(f string) string {
		switch f {
		case "tenant":
			return g.value("name")
		case "protocol":
			return g.value("proto")
		case "algorithm":
			return g.value("alg")
		case "vips":
			n := 1 + g.r.IntN(2)
			var xs []string
			for range n {
				xs = append(xs, g.fields([]string{"address", "port"}, func(f string) string {
					if f == "address" {
						return g.value("ip")
					}
					return g.value("int")
				}))
			}
			return "[" + strings.Join(xs, ", ") + "]"
		case "nodes":
			n := 1 + g.r.IntN(2)
			var xs []string
			for range n {
				xs = append(xs, g.node())
			}
			return "[" + strings.Join(xs, ", ") + "]"
		case "healthMonitor":
			return g.fields([]string{"type", "interval", "timeout", "rise", "fall", "method", "path", "expect"}, func(f string) string {
				switch f {
				case "rise", "fall":
					return g.value("risefall")
				case "expect":
					return g.value("expect")
				case "type":
					return g.value("hmtype")
				case "interval", "timeout":
					return g.value("dur")
				case "method":
					return g.value("method")
				case "path":
					return g.value("httppath")
				}
				return g.value("int")
			})
		case "persistence":
			return g.fields([]string{"type", "cookie"}, func(f string) string {
				if f == "type" {
					return g.value("ptype")
				}
				return g.value("cookie")
			})
		case "timeouts":
			return g.fields([]string{"connect", "client", "server"}, func(string) string { return g.value("dur") })
		case "placement":
			return g.fields([]string{"zones", "tags", "device", "ha"}, func(f string) string {
				switch f {
				case "device":
					return g.value("name")
				case "ha":
					return g.value("bool")
				}
				return g.list("label", 2)
			})
		case "failback":
			return g.value("bool")
		}
		return g.value("int")
	})
}

func (g *randSpec) device() string {
	return g.fields([]string{"address", "ssh", "zone", "capacity", "tags", "vipInterface", "vipNetworks", "haproxy", "keepalived", "stateDir"}, func(f string) string {
		switch f {
		case "address":
			return g.value("host")
		case "ssh":
			return g.fields([]string{"user", "port", "sudo"}, func(f string) string {
				switch f {
				case "user":
					return g.value("user")
				case "sudo":
					return g.value("bool")
				}
				return g.value("int")
			})
		case "zone":
			return g.value("label")
		case "capacity":
			return g.fields([]string{"balancers", "maxconn"}, func(string) string { return g.value("int") })
		case "tags":
			return g.list("label", 2)
		case "vipInterface":
			return g.value("iface")
		case "vipNetworks":
			return g.list("prefix", 2)
		case "haproxy", "keepalived":
			return g.fields([]string{"config", "reload", "check"}, func(f string) string {
				if f == "config" {
					return g.value("path")
				}
				return g.value("cmd")
			})
		}
		return g.value("path")
	})
}

func (g *randSpec) write() fstest.MapFS {
	for i := range 2 + g.r.IntN(4) {
		f := &g.files[g.r.IntN(2)]
		switch k := g.r.IntN(20); {
		case k < 9:
			n, b := g.body(g.balancer, "web", "api", "db", "img", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12", "web", `"Web"`)
			fmt.Fprintf(f, "balancers: %s: %s\n", n, b)
		case k < 16:
			n, b := g.body(g.device, `"lb-a1"`, `"lb-a2"`, `"lb-a3"`, `"lb-a4"`, `"lb-a5"`, `"lb-a6"`, `"lb-a7"`, `"lb-a8"`, `"lb-a1"`, `"lb#a"`)
			fmt.Fprintf(f, "devices: %s: %s\n", n, b)
		case k == 16:
			fmt.Fprintf(f, "balancers: [%s]: %s\n", g.pick("string", "_"), g.value("pattern"))
		case k == 17:
			fmt.Fprintf(f, "scheduler: %s\n", g.fields([]string{"filters", "costs"}, func(f string) string {
				if f == "filters" {
					return g.list("filter", 3)
				}
				return g.fields([]string{"balancers", "maxconn", "spread"}, func(string) string { return g.value("num") })
			}))
		default:
			// A definition again, maybe in the other file, or now and
			// then a field set twice to different values.
			for name, b := range g.bodies {
				if strings.Contains(b, "vips") {
					fmt.Fprintf(f, "balancers: %s: %s\n", name, b)
				} else {
					fmt.Fprintf(f, "devices: %s: %s\n", name, b)
				}
				break
			}
			if !g.spent && g.r.IntN(4) == 0 {
				g.spent = true
				fmt.Fprintf(f, "balancers: web: maxconn: 1\nbalancers: web: maxconn: 2\n")
			}
		}
		_ = i
	}
	fsys := fstest.MapFS{}
	for i := range g.files {
		fsys[fmt.Sprintf("d/f%d.cue", i)] = &fstest.MapFile{Data: []byte(g.files[i].String())}
	}
	return fsys
}

// Random plain data near the schema, valid and invalid: the default path
// decodes exactly what CUE decodes, and reports the same. Each case runs
// twice: as plain data (the fast path) and with a file that makes it not
// plain data (the evaluated path: CUE evaluates it alone, the validator
// judges the result).
func TestFastPathRandom(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 60
	}
	taken := map[evalPath]int{}
	for i := range n {
		for _, how := range []evalPath{pathFast, pathEvaluated} {
			g := &randSpec{r: rand.New(rand.NewPCG(uint64(i), 7))}
			fsys := g.write()
			if how == pathEvaluated {
				fsys["d/z.cue"] = &fstest.MapFile{Data: []byte("import \"strings\"\n\n_unused: strings.ToLower(\"X\")\n")}
			}
			viaCUE, err1 := loadInstance(fsys, "d", pathCUE)
			viaAuto, err2 := loadInstance(fsys, "d", pathAuto)
			if err1 != nil || err2 != nil {
				t.Fatalf("case %d: %v / %v", i, err1, err2)
			}
			if _, err := loadInstance(fsys, "d", how); err == nil {
				taken[how]++
			}
			if diff := cmp.Diff(viaCUE, viaAuto, cmp.AllowUnexported(Partial{}),
				cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("case %d (path %d): CUE and default path differ (-CUE +default):\n%s\nfiles:\n%s\n---\n%s", i, how, diff, fsys["d/f0.cue"].Data, fsys["d/f1.cue"].Data)
			}
		}
	}
	t.Logf("of %d random instances, %d took the fast path as plain data, %d the evaluated path", n, taken[pathFast], taken[pathEvaluated])
	if taken[pathFast] == 0 || taken[pathEvaluated] == 0 {
		t.Error("no random instance took the fast or the evaluated path: the generator makes only invalid data")
	}
}
