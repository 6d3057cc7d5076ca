package compiler

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"lbc/schema"
)

// Schedule places every balancer of spec on a device (two for an HA
// balancer), keeping the placement of prev wherever it still passes the
// filters.
//
// Balancers that share a VIP address (on different ports) must run on one
// device or one HA pair, since an address lives on one host: the scheduler
// places each group — the connected set of balancers linked by shared
// addresses, most often one balancer alone — as one. The devices must pass
// every filter for every member, and capacity for the sum of the group;
// the members must all be HA or all not (else a *SharedAddressError per
// address, positioned at the first HA member's placement.ha).
//
// It runs in two passes. First it keeps every group of prev, in order of
// its first member's name, on the device (and standby) where the lock has
// most of its members, when all the members the lock has still pass the
// filters there together, counting their capacity as it goes. Then the
// members new to a kept group join it there, each when it fits (else an
// error naming why: the group does not move for it), and the other groups
// are placed in order: the devices that pass every filter are scored by
// Σ weight × cost, each cost normalized min-max across them; the lowest
// total wins, ties going to the first device name. The primary of an HA
// group prefers the placement.zones[0] of its first member that has zones;
// its standby is then chosen the same way among the devices in another
// zone. Capacity is consumed as balancers are placed, so no device is ever
// overbooked. Adding or removing one balancer therefore never moves
// another, except that a balancer sharing addresses with two groups placed
// apart merges them.
//
// When some balancers cannot be placed, the error joins one
// *UnplaceableError per unplaceable balancer or group (and one
// *SharedAddressError per disagreement on HA), sorted by balancer name, and
// the Lock is nil.
//
// Recompile reuses a placement when what sameForScheduling compares is
// unchanged: a scheduler that reads more of a balancer must compare it there.
func Schedule(spec *schema.Spec, prev Lock) (Lock, Stats, error) {
	s, err := newSched(spec)
	if err != nil {
		return nil, Stats{}, err
	}
	lock, stats, errs := s.run(prev, "", nil)
	if len(errs) > 0 {
		return nil, Stats{}, errors.Join(errs...)
	}
	return lock, stats, nil
}

// UnplaceableError says that no device fits a balancer (or the standby of
// an HA balancer), and why each device was turned down: Reasons counts, per
// filter name, the devices whose first failing filter it was, so the counts
// add up to Total.
//
// Balancers that share VIP addresses are placed together (see Schedule):
// With then names the others placed with Balancer, Shared the addresses.
// When Balancer is new to a group that stays where the lock has it and does
// not fit there, Join is that placement, JoinDevice the device it does not
// fit and Why the reason; Reasons then counts that device under its filter
// and every other under "group".
type UnplaceableError struct {
	Balancer   string
	Pos        schema.Pos
	Role       string // "standby" for the standby of an HA balancer, else ""
	Total      int    // devices in the spec
	Reasons    map[string]int
	With       []string
	Shared     []netip.Addr
	Join       *Placement
	JoinDevice string
	Why        string
	Note       string // e.g. that the group's members pin different devices
}

// writeBalancerPrefix starts an error about a balancer the way the schema's
// diagnostics do: "file:line:col: balancers.NAME[.field]: ".
func writeBalancerPrefix(b *strings.Builder, pos schema.Pos, name, field string) {
	if pos.IsValid() {
		b.WriteString(pos.String())
		b.WriteString(": ")
	}
	b.WriteString("balancers.")
	b.WriteString(pathLabel(name))
	b.WriteString(field)
	b.WriteString(": ")
}

func (e *UnplaceableError) Error() string {
	var b strings.Builder
	writeBalancerPrefix(&b, e.Pos, e.Balancer, "")
	if e.Join != nil {
		fmt.Fprintf(&b, "%s shares %s with %s, kept on %s, but does not fit", e.Balancer, addrList(e.Shared), andList(e.With), placementString(*e.Join))
		if e.Role == roleStandby {
			fmt.Fprintf(&b, " its standby %s: %s", e.JoinDevice, e.Why)
		} else {
			fmt.Fprintf(&b, " %s: %s", e.JoinDevice, e.Why)
		}
		return b.String()
	}
	what := e.Balancer
	if len(e.With) > 0 {
		what = andList(append([]string{e.Balancer}, e.With...))
	}
	if e.Role == roleStandby {
		what = "the standby of " + what
	}
	fmt.Fprintf(&b, "0/%d devices fit %s", e.Total, what)
	if len(e.With) > 0 {
		fmt.Fprintf(&b, " (together: they share %s)", addrList(e.Shared))
	}
	type rc struct {
		name string
		n    int
	}
	var rs []rc
	for k, n := range e.Reasons {
		rs = append(rs, rc{k, n})
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].n != rs[j].n {
			return rs[i].n > rs[j].n
		}
		return rs[i].name < rs[j].name
	})
	for i, r := range rs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", r.n, r.name)
	}
	if e.Note != "" {
		b.WriteString("; ")
		b.WriteString(e.Note)
	}
	return b.String()
}

// pathLabel formats a name as a CUE path element, as schema diagnostics do:
// identifiers bare, anything else quoted (balancers."shop-web").
func pathLabel(s string) string {
	for i, r := range s {
		if r == '_' || r == '$' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return strconv.Quote(s)
	}
	if s == "" || s[0] == '_' {
		return strconv.Quote(s)
	}
	return s
}

const (
	rolePrimary = "primary"
	roleStandby = "standby"
)

const noPin int32 = -1

// schedDevice is the scheduler's view of one device: fixed attributes and load.
type schedDevice struct {
	name  string
	d     *schema.Device
	zone  int32 // index into sched.zoneNames
	class int32 // index into sched.classes
}

// unboundedConn stands for no maxconn limit; a sum of real maxconns never reaches it.
const unboundedConn = math.MaxInt64 / 4

// devLoad is what is placed on a device, updated as balancers are placed,
// kept apart from device for the inner loop's sake.
type devLoad struct {
	count     int32
	maxCount  int32 // capacity.balancers; MaxInt32 when unbounded or not filtered
	committed int64
	maxConn   int64   // capacity.maxconn; unboundedConn when unbounded or not filtered
	ratio     float64 // committed / capacity.maxconn, 0 when unbounded
}

// devClass groups devices with the same zone, tags and vipNetworks: the
// static filters give every device of a class the same verdict.
type devClass struct {
	zone int32
	tags []uint64 // bit set of tag ids
	nets []netip.Prefix
	// netMask: the bits of nets in sched.prefixes (when that is not nil)
	netMask uint64
	devs    []int32 // ascending
}

// bal is the scheduler's view of one balancer.
type bal struct {
	name       string
	b          *schema.Balancer
	zones      []int32 // zone ids; -2 for a zone no device has
	tags       []uint64
	unknownTag bool
	pin        int32 // noPin, a device index, or -2 for an unknown device
	maxconn    int64
	tenant     *tenantLoad // the balancer's tenant; nil when it has none
	prefZone   int32       // HA: zone id of placement.zones[0], or -1
	// vipNets: per VIP, the bits of sched.prefixes that hold it (nil when
	// sched.prefixes is)
	vipNets []uint64
	vipNet1 [1]uint64 // vipNets' storage for one VIP
}

type sched struct {
	spec      *schema.Spec
	devs      []schedDevice
	load      []devLoad
	devIndex  map[string]int32
	zoneNames []string
	zoneIndex map[string]int32
	tagIndex  map[string]int
	tagWords  int
	classes   []devClass
	enabled   [numFilters]bool
	haZones   bool // the ha filter is listed: standby in another zone
	w         [numCosts]float64
	tenants   map[string]*tenantLoad
	// the tenant balancer looked up last (names of one tenant often follow each other)
	lastTenant string
	lastLoad   *tenantLoad
	index      []classIndex    // by class: the devices by load (see choose)
	classOf    []int32         // by device: its class, packed for choose
	noFast     bool            // choose always scans (the reference, in tests)
	fastN      int             // decisions choose took without scanning (tests)
	bals       map[string]*bal // filled by run only when it traces (Explain)
	noTags     []uint64        // the tag set of a balancer wishing none
	// prefixes: every device's vipNetworks, each once; nil when more than 64
	prefixes []netip.Prefix

	// scratch of one decision, reused
	classOK []bool
	n       int  // candidates in cand
	cu      unit // the unit of cand
	cand    []int32
	c0, c1  []float64 // raw costs of cand, by index
	c2      []float64
	raw     [][numCosts]float64 // Explain only: raw costs of cand, by score
	total   []float64           // Explain only: totals of cand, by score
	lo, hi  [numCosts]float64

	gs []*group // the groups of the last run
}

func newSched(spec *schema.Spec) (*sched, error) {
	if spec == nil {
		return nil, errors.New("schedule: no spec")
	}
	s := &sched{
		spec:      spec,
		devIndex:  make(map[string]int32, len(spec.Devices)),
		zoneIndex: map[string]int32{},
		tagIndex:  map[string]int{},
		tenants:   map[string]*tenantLoad{},
		bals:      map[string]*bal{},
	}
	if err := s.setFilters(spec.Scheduler.Filters); err != nil {
		return nil, err
	}
	w, err := costWeights(spec.Scheduler.Costs)
	if err != nil {
		return nil, err
	}
	s.w = w

	names := spec.DeviceNames()
	for _, n := range names {
		for _, t := range spec.Devices[n].Tags {
			if _, ok := s.tagIndex[t]; !ok {
				s.tagIndex[t] = len(s.tagIndex)
			}
		}
	}
	s.tagWords = (len(s.tagIndex) + 63) / 64
	classIndex := map[string]int32{}
	s.devs = make([]schedDevice, len(names))
	s.load = make([]devLoad, len(names))
	for i, n := range names {
		d := spec.Devices[n]
		if d == nil {
			return nil, fmt.Errorf("schedule: device %s is nil", n)
		}
		z, ok := s.zoneIndex[d.Zone]
		if !ok {
			z = int32(len(s.zoneNames))
			s.zoneIndex[d.Zone] = z
			s.zoneNames = append(s.zoneNames, d.Zone)
		}
		tags := s.tagSet(d.Tags)
		nets := append([]netip.Prefix(nil), d.VIPNetworks...)
		sort.Slice(nets, func(i, j int) bool { return nets[i].String() < nets[j].String() })
		key := classKey(z, tags, nets)
		c, ok := classIndex[key]
		if !ok {
			c = int32(len(s.classes))
			classIndex[key] = c
			s.classes = append(s.classes, devClass{zone: z, tags: tags, nets: nets})
		}
		s.classes[c].devs = append(s.classes[c].devs, int32(i))
		s.devs[i] = schedDevice{name: n, d: d, zone: z, class: c}
		s.classOf = append(s.classOf, c)
		l := devLoad{maxCount: math.MaxInt32, maxConn: unboundedConn}
		if s.enabled[fCapacity] && d.Capacity.Balancers > 0 {
			l.maxCount = int32(min(d.Capacity.Balancers, math.MaxInt32))
		}
		if s.enabled[fCapacity] && d.Capacity.Maxconn > 0 {
			l.maxConn = int64(min(d.Capacity.Maxconn, unboundedConn))
		}
		s.load[i] = l
		s.devIndex[n] = int32(i)
	}
	s.prefixes = []netip.Prefix{}
	pi := map[netip.Prefix]int{}
	for c := range s.classes {
		cl := &s.classes[c]
		for _, p := range cl.nets {
			i, ok := pi[p]
			if !ok {
				i = len(s.prefixes)
				pi[p] = i
				s.prefixes = append(s.prefixes, p)
			}
			if i < 64 {
				cl.netMask |= 1 << i
			}
		}
	}
	if len(s.prefixes) > 64 {
		s.prefixes = nil // vipsOK compares addresses with networks
	}
	s.classOK = make([]bool, len(s.classes))
	s.initIndex()
	s.cand = make([]int32, len(names))
	s.c0, s.c1, s.c2 = make([]float64, len(names)), make([]float64, len(names)), make([]float64, len(names))
	s.total = make([]float64, len(names))
	s.raw = make([][numCosts]float64, len(names))
	return s, nil
}

func classKey(zone int32, tags []uint64, nets []netip.Prefix) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d|", zone)
	for _, w := range tags {
		fmt.Fprintf(&b, "%x,", w)
	}
	b.WriteString("|")
	for _, p := range nets {
		b.WriteString(p.String())
		b.WriteString(",")
	}
	return b.String()
}

func (s *sched) tagSet(tags []string) []uint64 {
	set := make([]uint64, s.tagWords)
	for _, t := range tags {
		if i, ok := s.tagIndex[t]; ok {
			set[i/64] |= 1 << (i % 64)
		}
	}
	return set
}

func (s *sched) setFilters(list []string) error {
	if list == nil {
		for f := range s.enabled {
			s.enabled[f] = true
		}
		s.haZones = true
		return nil
	}
	for _, name := range list {
		found := false
		for f, n := range filterOrder {
			if n == name {
				s.enabled[f] = true
				found = true
			}
		}
		if !found {
			return fmt.Errorf("scheduler.filters: unknown filter %q", name)
		}
	}
	s.haZones = s.enabled[fHA]
	s.enabled[fDevice] = true // always: see filterOrder
	s.enabled[fHA] = true
	return nil
}

// balancerList returns the names of the spec's balancers, sorted, and the
// balancers in the same order.
func (s *sched) balancerList() ([]string, []*schema.Balancer) {
	type nb struct {
		n string
		b *schema.Balancer
	}
	list := make([]nb, 0, len(s.spec.Balancers))
	for n, b := range s.spec.Balancers {
		list = append(list, nb{n, b})
	}
	slices.SortFunc(list, func(x, y nb) int { return strings.Compare(x.n, y.n) })
	names := make([]string, len(list))
	bs := make([]*schema.Balancer, len(list))
	for i, e := range list {
		names[i], bs[i] = e.n, e.b
	}
	return names, bs
}

// balancer fills b with the scheduler's view of sb, the balancer named n.
func (s *sched) balancer(n string, sb *schema.Balancer, b *bal) {
	*b = bal{name: n, b: sb, pin: noPin, prefZone: -1, maxconn: int64(sb.TotalMaxconn())}
	for _, z := range sb.Placement.Zones {
		id, ok := s.zoneIndex[z]
		if !ok {
			id = -2
		}
		b.zones = append(b.zones, id)
	}
	if sb.Placement.HA && len(b.zones) > 0 {
		b.prefZone = b.zones[0]
	}
	for _, t := range sb.Placement.Tags {
		if _, ok := s.tagIndex[t]; !ok {
			b.unknownTag = true
		}
	}
	if s.prefixes != nil {
		b.vipNets = b.vipNet1[:]
		if len(sb.VIPs) != 1 {
			b.vipNets = make([]uint64, len(sb.VIPs))
		}
		for i, v := range sb.VIPs {
			for j, p := range s.prefixes {
				if p.Contains(v.Address) {
					b.vipNets[i] |= 1 << j
				}
			}
		}
	}
	if len(sb.Placement.Tags) == 0 {
		if s.noTags == nil {
			s.noTags = make([]uint64, s.tagWords)
		}
		b.tags = s.noTags // shared, never written
	} else {
		b.tags = s.tagSet(sb.Placement.Tags)
	}
	if sb.Placement.Device != "" {
		if d, ok := s.devIndex[sb.Placement.Device]; ok {
			b.pin = d
		} else {
			b.pin = -2
		}
	}
	if sb.Tenant != "" {
		if sb.Tenant != s.lastTenant {
			t := s.tenants[sb.Tenant]
			if t == nil {
				t = &tenantLoad{n: make([]int32, len(s.devs))}
				s.tenants[sb.Tenant] = t
			}
			s.lastTenant, s.lastLoad = sb.Tenant, t
		}
		b.tenant = s.lastLoad
	}
}

// commit records every member of u as placed on d.
func (s *sched) commit(u *unit, d int32) {
	for _, b := range u.ms {
		s.addLoad(b, d, 1)
	}
}

func (s *sched) addLoad(b *bal, d int32, sign int32) {
	l := &s.load[d]
	ci := &s.index[s.devs[d].class]
	ci.remove(d, l.count)
	l.count += sign
	l.committed += int64(sign) * b.maxconn
	if c := s.devs[d].d.Capacity.Maxconn; c > 0 {
		l.ratio = float64(l.committed) / float64(c)
	}
	ci.insert(s.load, d)
	if sign > 0 {
		ci.slackN = min(ci.slackN, l.maxCount-l.count)
		ci.slackC = min(ci.slackC, l.maxConn-l.committed)
	} else {
		ci.slackDirty = true
	}
	if b.tenant != nil {
		b.tenant.add(d, sign)
	}
}

// uncommit undoes commit.
func (s *sched) uncommit(u *unit, d int32) {
	for _, b := range u.ms {
		s.addLoad(b, d, -1)
	}
}

// candidates fills s.cand[:s.n] with the devices that pass every enabled
// filter for u in the given role, and s.lo/s.hi with the range of each
// cost. It is the inner loop of the scheduler: the static filters are
// decided once per device class, the rest inline.
func (s *sched) candidates(u *unit, primary int32) {
	s.n = 0
	s.cu = *u
	for k := range s.lo {
		s.lo[k], s.hi[k] = math.Inf(1), math.Inf(-1)
	}
	if primary == noPrimary && u.pin != noPin {
		if u.pin >= 0 && s.fits(u, u.pin, primary) {
			s.addCand(u, u.pin)
		}
		return
	}
	standby := primary != noPrimary
	pz := int32(-1)
	if standby && s.haZones {
		pz = s.devs[primary].zone
	}
	var tenant []int32
	if u.tenant != nil {
		tenant = u.tenant.n[:len(s.load)]
	}
	multi := u.tenants != nil
	mc, cnt := u.maxconn, u.n
	cand := s.cand[:len(s.load)]
	c0, c1, c2 := s.c0[:len(cand)], s.c1[:len(cand)], s.c2[:len(cand)]
	lo0, hi0, lo1, hi1, lo2, hi2 := s.lo[0], s.hi[0], s.lo[1], s.hi[1], s.lo[2], s.hi[2]
	n := 0
	for c := range s.classes {
		cl := &s.classes[c]
		if cl.zone == pz || !s.staticOK(u, int32(c)) {
			continue
		}
		for _, d := range cl.devs {
			l := &s.load[d]
			if l.count+cnt > l.maxCount || l.committed+mc > l.maxConn {
				continue
			}
			if standby && d == primary {
				continue
			}
			v0, v1, v2 := costsOf(l, tenant, d)
			if multi {
				v2 = u.spread(d)
			}
			cand[n] = d
			c0[n], c1[n], c2[n] = v0, v1, v2
			n++
			// Plain comparisons: costs are never NaN, and the builtin
			// min/max on floats pay for NaN handling.
			if v0 < lo0 {
				lo0 = v0
			}
			if v0 > hi0 {
				hi0 = v0
			}
			if v1 < lo1 {
				lo1 = v1
			}
			if v1 > hi1 {
				hi1 = v1
			}
			if v2 < lo2 {
				lo2 = v2
			}
			if v2 > hi2 {
				hi2 = v2
			}
		}
	}
	s.n = n
	s.lo[0], s.hi[0], s.lo[1], s.hi[1], s.lo[2], s.hi[2] = lo0, hi0, lo1, hi1, lo2, hi2
}

func (s *sched) addCand(u *unit, d int32) {
	v0, v1, v2 := s.costs(u, d)
	v := [numCosts]float64{v0, v1, v2}
	s.cand[s.n] = d
	s.c0[s.n], s.c1[s.n], s.c2[s.n] = v0, v1, v2
	for k := range v {
		s.lo[k], s.hi[k] = min(s.lo[k], v[k]), max(s.hi[k], v[k])
	}
	s.n++
}

// costsOf returns the raw costs of placing a balancer of the tenant whose
// per-device counts are tenant (nil: none) on device d of load l.
func costsOf(l *devLoad, tenant []int32, d int32) (balancers, maxconn, spread float64) {
	if tenant != nil {
		spread = float64(tenant[d])
	}
	return float64(l.count), l.ratio, spread
}

// costs returns the raw costs of placing u on device d.
func (s *sched) costs(u *unit, d int32) (balancers, maxconn, spread float64) {
	l := &s.load[d]
	return float64(l.count), l.ratio, u.spread(d)
}

// best scores the candidates (see score) and returns the one with the
// lowest total, ties going to the lowest device index (the first name),
// restricted to zone pref when any candidate is in it; -1 when there is none.
func (s *sched) best(pref int32) int32 {
	w, lo, scale := s.scaling()
	bd, bt := int32(-1), math.Inf(1)
	pd, pt := int32(-1), math.Inf(1)
	cand := s.cand[:s.n]
	c0, c1, c2 := s.c0[:len(cand)], s.c1[:len(cand)], s.c2[:len(cand)]
	for i, d := range cand {
		t := total(&w, &lo, &scale, c0[i], c1[i], c2[i])
		if bd < 0 || t < bt || (t == bt && d < bd) {
			bd, bt = d, t
		}
		if pref >= 0 && s.devs[d].zone == pref && (pd < 0 || t < pt || (t == pt && d < pd)) {
			pd, pt = d, t
		}
	}
	if pd >= 0 {
		return pd
	}
	return bd
}

// unplaceable builds the error for u in a role, counting for every device
// the first filter it fails.
func (s *sched) unplaceable(u *unit, primary int32) *UnplaceableError {
	b := u.ms[0]
	e := &UnplaceableError{Balancer: b.name, Pos: b.b.Pos, Total: len(s.devs), Reasons: map[string]int{}}
	if primary != noPrimary {
		e.Role = roleStandby
	}
	if len(u.ms) > 1 {
		for _, m := range u.ms[1:] {
			e.With = append(e.With, m.name)
		}
		e.Shared = u.g.shared
		if u.pin == -2 && primary == noPrimary {
			var pins []string
			for _, m := range u.ms {
				if p := m.b.Placement.Device; p != "" {
					pins = append(pins, m.name+" on "+p)
				}
			}
			if len(pins) > 1 {
				e.Note = "placement.device pins " + andList(pins)
			}
		}
	}
	for d := range s.devs {
		f, failed := s.firstFailure(u, int32(d), primary)
		name := f.String()
		if !failed {
			name = "unknown" // cannot happen: d would have been a candidate
		}
		e.Reasons[name]++
	}
	return e
}

// joinError builds the error for b, new to group g, which stays on
// primary (and standby) where the lock has it, when b does not fit there:
// f failed on device d.
func (s *sched) joinError(g *group, b *bal, f filterID, d, standby int32, why string) *UnplaceableError {
	e := &UnplaceableError{Balancer: b.name, Pos: b.b.Pos, Total: len(s.devs), Reasons: map[string]int{f.String(): 1},
		Join: &Placement{Primary: s.devs[g.primary].name}, JoinDevice: s.devs[d].name, Why: f.String() + ": " + why}
	if d == standby {
		e.Role = roleStandby
	}
	if standby != noPrimary {
		e.Join.Standby = s.devs[standby].name
	}
	if e.Total > 1 {
		e.Reasons["group"] = e.Total - 1
	}
	for _, m := range g.members {
		if m != b {
			e.With = append(e.With, m.name)
		}
	}
	for _, a := range g.shared {
		if holds(b.b, a) {
			e.Shared = append(e.Shared, a)
		}
	}
	return e
}

// tracer is told about the decisions on one balancer (Explain).
type tracer interface {
	// decide is called before the device for a role is checked or chosen
	// for u, a unit holding the traced balancer: primary is noPrimary, or
	// the primary's device when the standby is chosen; lockDevice is the
	// device being checked (the lock's, or the group's when join), ""
	// when choosing afresh.
	decide(s *sched, u *unit, primary int32, lockDevice string, join bool)
	// placed reports the outcome (Primary "" when unplaceable).
	placed(s *sched, p Placement, err *UnplaceableError)
}

// mostCommon returns the value of key over ms held by the most members,
// ties going to the first member's; "" when key gives "" for every member.
func mostCommon(ms []*bal, key func(*bal) string) string {
	if len(ms) == 1 {
		return key(ms[0])
	}
	count := map[string]int{}
	best, bn := "", 0
	for _, m := range ms {
		k := key(m)
		if k == "" {
			continue
		}
		count[k]++
		if count[k] > bn {
			best, bn = k, count[k]
		}
	}
	// The first to reach the highest count may not be the first member's;
	// prefer the first member among those at the highest count.
	for _, m := range ms {
		if k := key(m); k != "" && count[k] == bn {
			return k
		}
	}
	return best
}

// run schedules every balancer; trace, when not nil, is told about the
// balancer named traced.
func (s *sched) run(prev Lock, traced string, trace tracer) (Lock, Stats, []error) {
	names, specs := s.balancerList()
	out := make(Lock, len(names))
	var st Stats
	for n := range prev {
		if _, ok := s.spec.Balancers[n]; !ok {
			st.Removed++
		}
	}
	groups, errs := s.groups(names, specs)
	s.gs = groups
	var tg *group
	if trace != nil {
		for _, g := range groups {
			for _, m := range g.members {
				s.bals[m.name] = m
			}
		}
		tb := s.bals[traced]
		for _, g := range groups {
			if slices.Contains(g.members, tb) {
				tg = g
			}
		}
	}

	// Pass 1: keep what still fits. A group is kept on the primary (and
	// standby) where the lock has most of its members, when every member
	// the lock has fits there together.
	for _, g := range groups {
		if g.conflict {
			continue
		}
		tr := g == tg
		locked := g.members
		if len(g.members) > 1 {
			locked = nil
			for _, m := range g.members {
				if _, ok := prev[m.name]; ok {
					locked = append(locked, m)
				}
			}
		} else if _, ok := prev[g.members[0].name]; !ok {
			continue
		}
		if len(locked) == 0 {
			continue
		}
		pn := mostCommon(locked, func(m *bal) string {
			if _, ok := s.devIndex[prev[m.name].Primary]; ok {
				return prev[m.name].Primary
			}
			return ""
		})
		if pn == "" {
			pn = prev[locked[0].name].Primary // gone: explained as such
		}
		u := s.unit(g, locked)
		if tr {
			trace.decide(s, &u, noPrimary, pn, false)
		}
		pd, ok := s.devIndex[pn]
		if !ok || !s.fits(&u, pd, noPrimary) {
			continue
		}
		s.commit(&u, pd)
		g.kept, g.locked, g.primary = true, locked, pd
		if !g.ha {
			continue
		}
		sn := mostCommon(locked, func(m *bal) string {
			if p := prev[m.name]; p.Primary == pn {
				return p.Standby
			}
			return ""
		})
		if sn == "" {
			continue
		}
		if tr {
			trace.decide(s, &u, pd, sn, false)
		}
		if sd, ok := s.devIndex[sn]; ok && s.fits(&u, sd, pd) {
			s.commit(&u, sd)
			g.standby = sd
		}
	}

	// Pass 2: the members new to a kept group join it where they fit; a
	// kept HA group without a standby gets one; the others are placed.
	for _, g := range groups {
		if g.conflict {
			continue
		}
		tr := g == tg
		var uerr *UnplaceableError
		var placed []*bal // members placed on primary (and standby)
		primary, standby := noPrimary, noPrimary
		if g.kept {
			primary, standby = g.primary, g.standby
			placed = g.locked
			if len(g.locked) < len(g.members) {
				placed = append([]*bal(nil), g.locked...)
				for _, m := range g.members {
					if slices.Contains(g.locked, m) {
						continue
					}
					ju := s.unit(g, []*bal{m})
					jt := tr && m.name == traced
					if jt {
						trace.decide(s, &ju, noPrimary, s.devs[primary].name, true)
					}
					if f, failed := s.firstFailure(&ju, primary, noPrimary); failed {
						errs = append(errs, s.joinError(g, m, f, primary, standby, s.why(f, &ju, primary, noPrimary)))
						continue
					}
					if standby != noPrimary {
						if jt {
							trace.decide(s, &ju, primary, s.devs[standby].name, true)
						}
						if f, failed := s.firstFailure(&ju, standby, primary); failed {
							errs = append(errs, s.joinError(g, m, f, standby, standby, s.why(f, &ju, standby, primary)))
							continue
						}
						s.commit(&ju, standby)
					}
					s.commit(&ju, primary)
					placed = append(placed, m)
				}
				slices.SortFunc(placed, func(a, b *bal) int { return strings.Compare(a.name, b.name) })
			}
			if g.ha && standby == noPrimary {
				u := s.unit(g, placed)
				if tr {
					trace.decide(s, &u, primary, "", false)
				}
				if sd := s.choose(&u, primary, -1); sd < 0 {
					uerr = s.unplaceable(&u, primary)
					s.uncommit(&u, primary)
				} else {
					standby = sd
					s.commit(&u, sd)
				}
			}
		} else {
			u := s.unit(g, g.members)
			placed = g.members
			if tr {
				trace.decide(s, &u, noPrimary, "", false)
			}
			if d := s.choose(&u, noPrimary, u.prefZone); d < 0 {
				uerr = s.unplaceable(&u, noPrimary)
			} else {
				primary = d
			}
			if uerr == nil && g.ha {
				if tr {
					trace.decide(s, &u, primary, "", false)
				}
				if sd := s.choose(&u, primary, -1); sd < 0 {
					uerr = s.unplaceable(&u, primary)
				} else {
					standby = sd
					s.commit(&u, sd)
				}
			}
			if uerr == nil {
				s.commit(&u, primary)
			}
		}
		if uerr != nil {
			errs = append(errs, uerr)
			if tr {
				trace.placed(s, Placement{}, uerr)
			}
			continue
		}
		for _, m := range placed {
			p := Placement{Balancer: m.name, Primary: s.devs[primary].name}
			if standby != noPrimary {
				p.Standby = s.devs[standby].name
			}
			out[m.name] = p
		}
		if tr {
			p, ok := out[traced]
			var jerr *UnplaceableError
			if !ok {
				for _, e := range errs {
					if ue, isU := e.(*UnplaceableError); isU && ue.Balancer == traced {
						jerr = ue
					}
				}
			}
			trace.placed(s, p, jerr)
		}
	}

	for _, n := range names {
		q, ok := prev[n]
		switch {
		case !ok:
			st.New++
		case q.Primary == out[n].Primary && q.Standby == out[n].Standby:
			st.Kept++
		default:
			st.Moved++
		}
	}
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(errBalancer(a), errBalancer(b)) })
	return out, st, errs
}

// errBalancer is the balancer an error of run names.
func errBalancer(err error) string {
	switch e := err.(type) {
	case *UnplaceableError:
		return e.Balancer
	case *SharedAddressError:
		return e.Balancer
	}
	return ""
}
