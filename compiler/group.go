package compiler

import (
	"net/netip"
	"slices"
	"strings"

	"lbc/schema"
)

// group is a connected set of balancers linked by shared VIP addresses: an
// address lives on one host, so they all run on one device (or one HA
// pair) and the scheduler places them as one. Most groups have one member.
type group struct {
	members []*bal       // sorted by name; members[0] names the group
	shared  []netip.Addr // addresses held by two members or more, sorted
	ha      bool         // the members' placement.ha (they agree unless conflict)
	// conflict: the members disagree on placement.ha; the group is not placed.
	conflict bool

	// state of a run
	locked  []*bal // members kept where the lock has them (pass 1)
	kept    bool   // pass 1 kept the locked members on primary
	primary int32
	standby int32 // noPrimary when none kept
}

// unit is what one decision places: a group, or part of one (the members
// the lock had, or one member joining its group), with summed demands.
type unit struct {
	g        *group
	ms       []*bal
	n        int32 // len(ms)
	maxconn  int64 // Σ maxconn
	pin      int32 // the pin the members agree on: noPin, a device, or -2 (unknown device, or pins disagree)
	prefZone int32 // HA: zone id of the first member's placement.zones[0] that has one, or -1
	tenant   *tenantLoad
	// tenants: when members belong to several tenants, the per-device
	// counts of each distinct one (tenant is then nil); spread sums them.
	tenants []*tenantLoad
}

// unit sums the demands of ms, members of g.
func (s *sched) unit(g *group, ms []*bal) unit {
	u := unit{g: g, ms: ms, n: int32(len(ms)), pin: noPin, prefZone: -1}
	for i, b := range ms {
		u.maxconn += b.maxconn
		if b.pin != noPin {
			if u.pin == noPin {
				u.pin = b.pin
			} else if u.pin != b.pin {
				u.pin = -2
			}
		}
		if u.prefZone == -1 && b.prefZone != -1 {
			u.prefZone = b.prefZone
		}
		if i == 0 {
			u.tenant = b.tenant
			continue
		}
		if u.tenants == nil && b.b.Tenant == ms[0].b.Tenant {
			continue
		}
		if u.tenants == nil {
			u.tenant = nil
			if ms[0].tenant != nil {
				u.tenants = []*tenantLoad{ms[0].tenant}
			} else {
				u.tenants = []*tenantLoad{}
			}
		}
		if b.tenant != nil && !slices.ContainsFunc(ms[:i], func(o *bal) bool { return o.b.Tenant == b.b.Tenant }) {
			u.tenants = append(u.tenants, b.tenant)
		}
	}
	return u
}

// spread is the spread cost of u on device d.
func (u *unit) spread(d int32) float64 {
	if u.tenant != nil {
		return float64(u.tenant.n[d])
	}
	var v int32
	for _, t := range u.tenants {
		v += t.n[d]
	}
	return float64(v)
}

// groups links the balancers named names (sorted) by shared VIP addresses
// and returns the groups in order of their first member, and one
// *SharedAddressError per shared address whose holders disagree on
// placement.ha.
func (s *sched) groups(names []string, specs []*schema.Balancer) ([]*group, []error) {
	bals := make([]*bal, len(names))
	parent := make([]int32, len(names))
	// first holder of each address: IPv4 ones keyed cheaper
	first4 := make(map[uint32]int32, len(names))
	var first6 map[netip.Addr]int32
	var shared map[netip.Addr]bool
	find := func(i int32) int32 {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	store := make([]bal, len(names))
	for i, n := range names {
		bals[i] = &store[i]
		s.balancer(n, specs[i], bals[i])
		parent[i] = int32(i)
		for _, v := range bals[i].b.VIPs {
			var j int32
			var ok bool
			if v.Address.Is4() {
				a4 := v.Address.As4()
				k := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
				if j, ok = first4[k]; !ok {
					first4[k] = int32(i)
				}
			} else {
				if first6 == nil {
					first6 = map[netip.Addr]int32{}
				}
				if j, ok = first6[v.Address]; !ok {
					first6[v.Address] = int32(i)
				}
			}
			if !ok {
				continue
			}
			if shared == nil {
				shared = map[netip.Addr]bool{}
			}
			shared[v.Address] = true
			a, b := find(int32(i)), find(j)
			if a != b {
				parent[max(a, b)] = min(a, b) // the root is the first member
			}
		}
	}
	// Roots come first in name order; a group's slot is its root's.
	size := make([]int32, len(names))
	for i := range names {
		size[find(int32(i))]++
	}
	var gs []*group
	buf := make([]*bal, len(names))
	gstore := make([]group, 0, len(names))
	off := int32(0)
	for i := range names {
		if parent[i] != int32(i) {
			continue
		}
		gstore = append(gstore, group{members: buf[off : off : off+size[i]], ha: bals[i].b.Placement.HA, primary: noPrimary, standby: noPrimary})
		gs = append(gs, &gstore[len(gstore)-1])
		off += size[i]
	}
	gi := make([]int32, len(names)) // root -> index in gs
	for i, k := 0, int32(0); i < len(names); i++ {
		if parent[i] == int32(i) {
			gi[i] = k
			k++
		}
	}
	for i := range names {
		g := gs[gi[find(int32(i))]]
		g.members = append(g.members, bals[i])
	}
	var errs []error
	for _, g := range gs {
		if len(g.members) == 1 {
			continue
		}
		seen := map[netip.Addr]bool{}
		for _, m := range g.members {
			if m.b.Placement.HA != g.ha {
				g.conflict = true
			}
			for _, v := range m.b.VIPs {
				if shared[v.Address] && !seen[v.Address] {
					seen[v.Address] = true
					g.shared = append(g.shared, v.Address)
				}
			}
		}
		slices.SortFunc(g.shared, netip.Addr.Compare)
		if g.conflict {
			errs = append(errs, haConflicts(g)...)
		}
	}
	return gs, errs
}

// haConflicts returns an error for each shared address of g whose holders
// disagree on placement.ha.
func haConflicts(g *group) []error {
	var errs []error
	for _, a := range g.shared {
		var ha, single []*bal
		for _, m := range g.members {
			if !holds(m.b, a) {
				continue
			}
			if m.b.Placement.HA {
				ha = append(ha, m)
			} else {
				single = append(single, m)
			}
		}
		if len(ha) == 0 || len(single) == 0 {
			continue
		}
		e := &SharedAddressError{Balancer: ha[0].name, Pos: ha[0].b.PosOf("placement.ha"), Address: a}
		for _, m := range ha {
			e.HA = append(e.HA, m.name)
		}
		for _, m := range single {
			e.NotHA = append(e.NotHA, m.name)
		}
		errs = append(errs, e)
	}
	return errs
}

func holds(b *schema.Balancer, a netip.Addr) bool {
	for _, v := range b.VIPs {
		if v.Address == a {
			return true
		}
	}
	return false
}

// SharedAddressError says that balancers sharing a VIP address disagree on
// placement.ha. An address lives on one host, so balancers that share one
// run on one device or on one HA pair: either all of them are HA or none.
// It is positioned at the first HA balancer's placement.ha.
type SharedAddressError struct {
	Balancer string // the first (by name) of HA
	Pos      schema.Pos
	Address  netip.Addr
	HA       []string // the balancers on Address that set placement.ha, sorted
	NotHA    []string // those that do not, sorted
}

func (e *SharedAddressError) Error() string {
	var b strings.Builder
	writeBalancerPrefix(&b, e.Pos, e.Balancer, ".placement.ha")
	all := append(append([]string(nil), e.HA...), e.NotHA...)
	slices.Sort(all)
	b.WriteString(andList(all))
	b.WriteString(" share ")
	b.WriteString(e.Address.String())
	b.WriteString(", but only ")
	b.WriteString(andList(e.HA))
	if len(e.HA) == 1 {
		b.WriteString(" is HA")
	} else {
		b.WriteString(" are HA")
	}
	b.WriteString(": balancers sharing an address run on one device or one HA pair, so all of them or none must set placement.ha")
	return b.String()
}

// andList joins names as "a", "a and b", "a, b and c".
func andList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// addrList joins addresses with ", ".
func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// GroupMember is another balancer of an explained balancer's group: they
// share VIP addresses, so they are placed together.
type GroupMember struct {
	Balancer string
	// Shares: the addresses it shares with the explained balancer; when
	// none (linked through others), Via names a member it shares Shares with.
	Shares []netip.Addr
	Via    string
}

// groupOf describes the group of the balancer b for Explain.
func groupOf(g *group, b *bal) []GroupMember {
	var out []GroupMember
	common := func(x, y *bal) []netip.Addr {
		var as []netip.Addr
		for _, a := range g.shared {
			if holds(x.b, a) && holds(y.b, a) {
				as = append(as, a)
			}
		}
		return as
	}
	for _, m := range g.members {
		if m == b {
			continue
		}
		gm := GroupMember{Balancer: m.name, Shares: common(b, m)}
		if len(gm.Shares) == 0 {
			for _, o := range g.members {
				if o != m && o != b {
					if as := common(m, o); len(as) > 0 {
						gm.Shares, gm.Via = as, o.name
						break
					}
				}
			}
		}
		out = append(out, gm)
	}
	return out
}
