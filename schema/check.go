package schema

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// The checks here run after the schema: what needs parsing (addresses,
// durations), rules across fields of one entity, and, in Merge, rules
// across the whole tree (uniqueness, references).

// at returns the position of a field of an entity, or the entity's own.
func at(fp map[string]Pos, field string, entity Pos) Pos {
	if p, ok := fp[field]; ok {
		return p
	}
	return entity
}

func (p *Partial) addDevice(name string, r *rawDevice, ep *entityPos, first Pos) {
	pos, fp := first, map[string]Pos{}
	if ep != nil {
		pos, fp = ep.pos, ep.fields
	}
	base := devicePath(name)
	var ds Diagnostics
	bad := func(field, format string, args ...any) {
		ds = append(ds, errorf(at(fp, field, pos), join(base, field), format, args...))
	}
	if a, err := netip.ParseAddr(r.Address); err == nil {
		if a.Zone() != "" {
			bad("address", "invalid address %q: an IPv6 zone is not allowed", r.Address)
		}
	} else if !isHostname(r.Address) {
		bad("address", "invalid address %q: must be an IP address or a DNS name", r.Address)
	}
	nets := make([]netip.Prefix, 0, len(r.VIPNetworks))
	for i, s := range r.VIPNetworks {
		field := fmt.Sprintf("vipNetworks[%d]", i)
		pf, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad(field, "invalid IP prefix %q", s)
		case pf != pf.Masked():
			bad(field, "invalid IP prefix %q: host bits set (did you mean %q?)", s, pf.Masked().String())
		default:
			nets = append(nets, pf)
		}
	}
	for _, f := range []struct {
		field, value string
		check        func(string) error
	}{
		{"haproxy.config", r.HAProxy.Config, CheckPath},
		{"keepalived.config", r.Keepalived.Config, CheckPath},
		{"stateDir", r.StateDir, CheckStateDir},
	} {
		if err := f.check(f.value); err != nil {
			bad(f.field, "%v", err)
		}
	}
	if len(ds) > 0 {
		p.reject("devices/"+name, pos, ds)
		return
	}
	if p.Devices == nil {
		p.Devices = map[string]*Device{}
	}
	p.Devices[name] = &Device{
		Name:         name,
		Pos:          pos,
		Address:      r.Address,
		SSH:          SSH{User: r.SSH.User, Port: r.SSH.Port, Sudo: r.SSH.Sudo},
		Zone:         r.Zone,
		Capacity:     Capacity{Balancers: r.Capacity.Balancers, Maxconn: r.Capacity.Maxconn},
		Tags:         r.Tags,
		VIPInterface: r.VIPInterface,
		VIPNetworks:  nets,
		HAProxy:      HAProxy(r.HAProxy),
		Keepalived:   Keepalived(r.Keepalived),
		StateDir:     r.StateDir,
		FieldPos:     fp,
	}
}

func (p *Partial) reject(key string, pos Pos, ds Diagnostics) {
	p.Diagnostics = append(p.Diagnostics, ds...)
	p.rejected[key] = pos
}

func (p *Partial) addBalancer(name string, r *rawBalancer, ep *entityPos, first Pos) {
	pos, fp := first, map[string]Pos{}
	if ep != nil {
		pos, fp = ep.pos, ep.fields
	}
	base := balancerPath(name)
	var ds Diagnostics
	bad := func(field, format string, args ...any) {
		ds = append(ds, errorf(at(fp, field, pos), join(base, field), format, args...))
	}
	b := &Balancer{
		Name:      name,
		Pos:       pos,
		Tenant:    r.Tenant,
		Protocol:  r.Protocol,
		Algorithm: r.Algorithm,
		Maxconn:   r.Maxconn,
		Placement: Placement{Zones: r.Placement.Zones, Tags: r.Placement.Tags, Device: r.Placement.Device, HA: r.Placement.HA},
		Failback:  r.Failback,
		FieldPos:  fp,
	}

	if len(r.VIPs) == 0 {
		bad("vips", "at least one VIP is required")
	}
	seen := map[netip.AddrPort]int{}
	for i, v := range r.VIPs {
		field := fmt.Sprintf("vips[%d].address", i)
		a, ok := parseIP(v.Address, func(msg string) { bad(field, "%s", msg) })
		if !ok {
			continue
		}
		if err := CheckVIP(a); err != nil {
			bad(field, "invalid VIP %s: %v", Quote(v.Address), err)
			continue
		}
		ap := netip.AddrPortFrom(a.Unmap(), uint16(v.Port))
		if j, dup := seen[ap]; dup {
			bad(fmt.Sprintf("vips[%d]", i), "duplicate VIP %s (also vips[%d])", ap, j)
			continue
		}
		seen[ap] = i
		vip := VIP{Address: a, Port: v.Port}
		if v.TLS != nil {
			vip.TLS = checkTLS(r.Protocol, i, v.TLS, fp, pos, base, bad)
		}
		b.VIPs = append(b.VIPs, vip)
	}

	b.Nodes, b.HealthMonitor, b.Persistence, b.Timeouts = checkBackend(r.Protocol, r.Nodes, r.HealthMonitor, r.Persistence, r.Timeouts, bad)
	b.DrainTimeout = duration(r.Drain.Timeout, func(msg string) { bad("drain.timeout", "%s", msg) })
	if b.DrainTimeout > maxDrainTimeout {
		bad("drain.timeout", "drain timeout %q is longer than 24h", r.Drain.Timeout)
	}
	if r.Algorithm == "uri" && r.Protocol != "http" {
		bad("algorithm", "algorithm uri needs protocol http")
	}
	if r.Placement.HA && r.Placement.Device != "" {
		bad("placement.device", "placement.device cannot be combined with placement.ha: the scheduler picks both devices of an HA pair")
	}
	if r.NodeTLS != nil {
		b.NodeTLS = checkNodeTLS(r.NodeTLS, fp, pos, base, bad)
	}
	checkL7(b, r, func(key string) Pos {
		if ep != nil {
			ep.resolve()
		}
		return at(fp, key, pos)
	}, base, &ds)
	if len(ds) > 0 {
		p.reject("balancers/"+name, pos, ds)
		return
	}
	if p.Balancers == nil {
		p.Balancers = map[string]*Balancer{}
	}
	p.Balancers[name] = b
}

// checkBackend parses and checks what a balancer and each of its pools
// have: nodes, health monitor, persistence and timeouts. bad reports a
// problem at a field path relative to the balancer or pool.
func checkBackend(protocol string, rn []rawNode, hm rawHealth, rp *rawPersistence, rt *rawTimeouts, bad func(field, format string, args ...any)) (nodes []Node, h HealthMonitor, pers *Persistence, tos *Timeouts) {
	if len(rn) == 0 {
		bad("nodes", "at least one node is required")
	}
	enabled, parsed := false, true
	for i, n := range rn {
		a, ok := parseIP(n.Address, func(msg string) { bad(fmt.Sprintf("nodes[%d].address", i), "%s", msg) })
		if !ok {
			parsed = false
			continue
		}
		node := Node{Address: a, Port: n.Port, Weight: n.Weight, Maxconn: n.Maxconn, Backup: n.Backup, State: n.State}
		if node.TakesTraffic() {
			enabled = true
		}
		nodes = append(nodes, node)
	}
	if len(rn) > 0 && parsed && !enabled {
		bad("nodes", "no enabled node: at least one node must be active, not backup and of weight above 0")
	}

	h = HealthMonitor{Type: hm.Type, Rise: hm.Rise, Fall: hm.Fall}
	if hm.Type == "http" {
		h.Method, h.Path, h.Expect = hm.Method, hm.Path, hm.Expect
	} else {
		for _, f := range hm.httpSet {
			bad("healthMonitor."+f, "%s is for health monitors of type http only", f)
		}
	}
	h.Interval = duration(hm.Interval, func(msg string) { bad("healthMonitor.interval", "%s", msg) })
	h.Timeout = duration(hm.Timeout, func(msg string) { bad("healthMonitor.timeout", "%s", msg) })

	if t := rt; t != nil {
		tos = &Timeouts{}
		for _, f := range []struct {
			field, value string
			dst          *time.Duration
		}{{"connect", t.Connect, &tos.Connect}, {"client", t.Client, &tos.Client}, {"server", t.Server, &tos.Server}} {
			if f.value != "" {
				*f.dst = duration(f.value, func(msg string) { bad("timeouts."+f.field, "%s", msg) })
			}
		}
	}
	if ps := rp; ps != nil {
		pers = &Persistence{Type: ps.Type}
		if ps.Type == "cookie" {
			pers.Cookie = ps.Cookie
		} else if ps.cookieSet {
			bad("persistence.cookie", "cookie is for persistence of type cookie only")
		}
		if ps.Type == "cookie" && protocol != "http" {
			bad("persistence.type", "cookie persistence needs protocol http")
		}
	}
	return nodes, h, pers, tos
}

func (p *Partial) addScheduler(r *rawScheduler) {
	seen := map[string]bool{}
	for i, f := range r.Filters {
		if seen[f] {
			field := fmt.Sprintf("filters[%d]", i)
			p.Diagnostics = append(p.Diagnostics, errorf(at(p.schedulerFields, field, p.SchedulerPos), "scheduler."+field, "duplicate filter %q", f))
			p.rejected["scheduler"] = p.SchedulerPos
			return
		}
		seen[f] = true
	}
	p.Scheduler = &Scheduler{Filters: r.Filters, Costs: r.Costs}
}

// maxDrainTimeout bounds how long apply may wait for one node to drain.
const maxDrainTimeout = 24 * time.Hour

// parseIP parses a node or VIP address.
func parseIP(s string, bad func(string)) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		bad(fmt.Sprintf("invalid IP address %q", s))
		return netip.Addr{}, false
	}
	if a.Zone() != "" {
		bad(fmt.Sprintf("invalid IP address %q: an IPv6 zone is not allowed", s))
		return netip.Addr{}, false
	}
	return a, true
}

func duration(s string, bad func(string)) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		bad(fmt.Sprintf("invalid duration %s", Quote(s)))
	} else if err := CheckDuration(d); err != nil {
		bad(fmt.Sprintf("invalid duration %s: %v", Quote(s), err))
	}
	return d
}

// isHostname reports whether s is a DNS name: dot-separated labels of
// letters, digits and inner hyphens, at most 253 characters.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// A name of digits and dots only is a malformed IPv4 address, not a name.
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// Merge combines the partials of a tree into a Spec: it reports a device,
// balancer or scheduler defined in two instances (naming both places) and
// runs the checks that span the tree. On any problem it returns
// Diagnostics holding every problem of every partial.
func Merge(parts []*Partial) (*Spec, error) {
	return DefaultLimits.Merge(parts)
}

// Merge is the package function Merge within l: the tree may define at
// most l.MaxDevices devices and l.MaxBalancers balancers.
func (l Limits) Merge(parts []*Partial) (*Spec, error) {
	c, err := loadSchema()
	if err != nil {
		return nil, err
	}
	parts = append([]*Partial(nil), parts...)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Dir < parts[j].Dir })
	spec := &Spec{Devices: map[string]*Device{}, Balancers: map[string]*Balancer{}}
	var ds Diagnostics
	seen := map[string]Pos{} // "devices/x" → first definition
	rejected := map[string]bool{}
	claim := func(key, path string, pos Pos) bool {
		if prev, dup := seen[key]; dup {
			kind, name, _ := strings.Cut(key, "/")
			what := strings.TrimSuffix(kind, "s")
			if key == "scheduler" {
				ds = append(ds, errorf(pos, path, "scheduler is also set at %s: set it in one directory only", prev))
			} else {
				ds = append(ds, errorf(pos, path, "duplicate %s %q: also defined at %s", what, name, prev))
			}
			return false
		}
		seen[key] = pos
		return true
	}
	for _, p := range parts {
		ds = append(ds, p.Diagnostics...)
		type ent struct {
			key, path string
			pos       Pos
			add       func()
		}
		var ents []ent
		for name, d := range p.Devices {
			ents = append(ents, ent{"devices/" + name, devicePath(name), d.Pos, func() { spec.Devices[name] = d }})
		}
		for name, b := range p.Balancers {
			ents = append(ents, ent{"balancers/" + name, balancerPath(name), b.Pos, func() { spec.Balancers[name] = b }})
		}
		for key, pos := range p.rejected {
			rejected[key] = true
			kind, name, _ := strings.Cut(key, "/")
			pth := kind
			if name != "" {
				pth += "." + label(name)
			}
			ents = append(ents, ent{key, pth, pos, nil})
		}
		if p.Scheduler != nil {
			sc := p.Scheduler
			ents = append(ents, ent{"scheduler", "scheduler", p.SchedulerPos, func() { spec.Scheduler = *sc }})
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].key < ents[j].key })
		for _, e := range ents {
			if claim(e.key, e.path, e.pos) && e.add != nil {
				e.add()
			}
		}
	}
	if spec.Scheduler.Filters == nil && !rejected["scheduler"] {
		spec.Scheduler = Scheduler{
			Filters: append([]string(nil), c.scheduler.Filters...),
			Costs:   map[string]float64{},
		}
		for k, v := range c.scheduler.Costs {
			spec.Scheduler.Costs[k] = v
		}
	}
	ds = append(ds, l.countTree(parts)...)
	ds = append(ds, crossCheck(spec, rejected)...)
	if ds = ds.sorted(); ds.HasErrors() {
		return nil, ds
	}
	return spec, nil
}

// crossCheck runs the checks that relate entities to each other.
func crossCheck(spec *Spec, rejected map[string]bool) Diagnostics {
	var ds Diagnostics
	anyNetworks, anyDeviceRejected := false, false
	for _, d := range spec.Devices {
		if len(d.VIPNetworks) > 0 {
			anyNetworks = true
		}
	}
	for k := range rejected {
		if strings.HasPrefix(k, "devices/") {
			anyDeviceRejected = true
		}
	}
	nets := vipNetworks(spec)
	// Balancers in file order, so that the first definition of a VIP wins.
	bs := make([]*Balancer, 0, len(spec.Balancers))
	for _, b := range spec.Balancers {
		bs = append(bs, b)
	}
	sort.Slice(bs, func(i, j int) bool { return less(bs[i].Pos, bs[j].Pos, bs[i].Name, bs[j].Name) })
	type use struct {
		b *Balancer
		i int
	}
	vips := make(map[netip.AddrPort]use, len(bs))
	for _, b := range bs {
		base := balancerPath(b.Name)
		if dev := b.Placement.Device; dev != "" && spec.Devices[dev] == nil && !rejected["devices/"+dev] {
			ds = append(ds, errorf(b.PosOf("placement.device"), join(base, "placement.device"), "unknown device %q", dev))
		}
		for i, v := range b.VIPs {
			field := fmt.Sprintf("vips[%d]", i)
			ap := netip.AddrPortFrom(v.Address.Unmap(), uint16(v.Port))
			if prev, dup := vips[ap]; dup {
				pf := fmt.Sprintf("vips[%d]", prev.i)
				ds = append(ds, errorf(at(b.FieldPos, field, b.Pos), join(base, field),
					"duplicate VIP %s: also used by %s at %s", ap, join(balancerPath(prev.b.Name), pf), at(prev.b.FieldPos, pf, prev.b.Pos)))
			} else {
				vips[ap] = use{b, i}
			}
			if n, ok := broadcastOf(nets, v.Address); ok {
				f := field + ".address"
				ds = append(ds, errorf(b.PosOf(f), join(base, f), "invalid VIP %q: %v", v.Address.String(), CheckVIPInNetwork(v.Address, n)))
			}
			if anyNetworks && !anyDeviceRejected && !inSomeNetwork(nets, v.Address) {
				f := field + ".address"
				ds = append(ds, errorf(b.PosOf(f), join(base, f), "VIP %s is inside no device's vipNetworks", v.Address))
			}
		}
	}
	ds = append(ds, redirectClashes(bs, func(ap netip.AddrPort) (string, Pos, bool) {
		u, ok := vips[ap]
		if !ok {
			return "", Pos{}, false
		}
		pf := fmt.Sprintf("vips[%d]", u.i)
		return join(balancerPath(u.b.Name), pf), at(u.b.FieldPos, pf, u.b.Pos), true
	})...)
	return ds
}

// vipNetworks returns the distinct VIP networks of spec's devices, the
// longest prefix first, then the lowest address. A fleet has a few
// networks and many devices: checking each VIP against the distinct
// networks, not against every device's, keeps the check linear in the
// VIPs (it was VIPs × devices: 0.8 s of a 1.2 s warm compile of 10,000
// balancers on 1,000 devices).
func vipNetworks(spec *Spec) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var nets []netip.Prefix
	for _, d := range spec.Devices {
		for _, n := range d.VIPNetworks {
			if !seen[n] {
				seen[n] = true
				nets = append(nets, n)
			}
		}
	}
	sort.Slice(nets, func(i, j int) bool {
		if nets[i].Bits() != nets[j].Bits() {
			return nets[i].Bits() > nets[j].Bits()
		}
		return nets[i].Addr().Less(nets[j].Addr())
	})
	return nets
}

// broadcastOf returns a VIP network of nets (see vipNetworks) whose
// broadcast address a is: the longest prefix, then the lowest.
func broadcastOf(nets []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	for _, n := range nets {
		if CheckVIPInNetwork(a, n) != nil {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

func inSomeNetwork(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func less(a, b Pos, an, bn string) bool {
	switch {
	case a.File != b.File:
		return a.File < b.File
	case a.Line != b.Line:
		return a.Line < b.Line
	case a.Col != b.Col:
		return a.Col < b.Col
	}
	return an < bn
}
