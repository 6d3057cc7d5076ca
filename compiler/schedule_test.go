package compiler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"lbc/schema"
)

// dev builds a device; opts are applied in order.
func scDev(name, zone string, opts ...func(*schema.Device)) *schema.Device {
	d := &schema.Device{Name: name, Zone: zone, Pos: schema.Pos{File: "devices/devices.cue", Line: 1, Col: 1}}
	for _, o := range opts {
		o(d)
	}
	return d
}

func scCap(b, m int) func(*schema.Device) {
	return func(d *schema.Device) { d.Capacity = schema.Capacity{Balancers: b, Maxconn: m} }
}

func scTags(t ...string) func(*schema.Device) { return func(d *schema.Device) { d.Tags = t } }

func scNets(p ...string) func(*schema.Device) {
	return func(d *schema.Device) {
		for _, s := range p {
			d.VIPNetworks = append(d.VIPNetworks, netip.MustParsePrefix(s))
		}
	}
}

// lb builds a balancer with one VIP and one node of the given maxconn.
func scLB(name, tenant, vip string, maxconn int, opts ...func(*schema.Balancer)) *schema.Balancer {
	b := &schema.Balancer{
		Name: name, Tenant: tenant, Protocol: "http", Algorithm: "roundrobin",
		Pos:   schema.Pos{File: "balancers/" + tenant + "/b.cue", Line: 3, Col: 12},
		VIPs:  []schema.VIP{{Address: netip.MustParseAddr(vip), Port: 80}},
		Nodes: []schema.Node{{Address: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 1, Maxconn: maxconn}},
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

func scZones(z ...string) func(*schema.Balancer) {
	return func(b *schema.Balancer) { b.Placement.Zones = z }
}
func scWant(t ...string) func(*schema.Balancer) {
	return func(b *schema.Balancer) { b.Placement.Tags = t }
}
func scPin(d string) func(*schema.Balancer) {
	return func(b *schema.Balancer) { b.Placement.Device = d }
}
func scHA(b *schema.Balancer) { b.Placement.HA = true }

func scSpec(devs []*schema.Device, bals []*schema.Balancer) *schema.Spec {
	s := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{}}
	for _, d := range devs {
		s.Devices[d.Name] = d
	}
	for _, b := range bals {
		s.Balancers[b.Name] = b
	}
	return s
}

func scMustSchedule(t *testing.T, s *schema.Spec, prev Lock) (Lock, Stats) {
	t.Helper()
	l, st, err := Schedule(s, prev)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	return l, st
}

func TestScheduleSpreadsByCount(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-b1", "az-b"), scDev("lb-c1", "az-c")},
		[]*schema.Balancer{
			scLB("b1", "t1", "203.0.113.1", 0), scLB("b2", "t2", "203.0.113.2", 0),
			scLB("b3", "t3", "203.0.113.3", 0), scLB("b4", "t4", "203.0.113.4", 0),
		})
	l, st := scMustSchedule(t, s, nil)
	got := []string{l["b1"].Primary, l["b2"].Primary, l["b3"].Primary, l["b4"].Primary}
	// Empty devices tie and break by name; then the emptiest wins.
	if w := []string{"lb-a1", "lb-b1", "lb-c1", "lb-a1"}; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("placement %v, want %v", got, w)
	}
	if st != (Stats{New: 4}) {
		t.Errorf("stats %+v, want 4 new", st)
	}
	if l["b1"].Balancer != "b1" {
		t.Errorf("Placement.Balancer = %q", l["b1"].Balancer)
	}
}

func TestFilterZone(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-b1", "az-b"), scDev("lb-c1", "az-c")},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scZones("az-c", "az-b"))})
	l, _ := scMustSchedule(t, s, nil)
	if l["b1"].Primary != "lb-b1" {
		t.Errorf("placed on %s, want lb-b1 (first name in az-b/az-c)", l["b1"].Primary)
	}
	s.Balancers["b1"].Placement.Zones = []string{"az-x"}
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "b1", map[string]int{"zone": 3})
	// Not listed: not applied.
	s.Scheduler.Filters = []string{"capacity"}
	if l, _ := scMustSchedule(t, s, nil); l["b1"].Primary != "lb-a1" {
		t.Errorf("zone filter off: placed on %s, want lb-a1", l["b1"].Primary)
	}
}

func TestFilterTags(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z", scTags("public")), scDev("lb-2", "z", scTags("internal", "ssd")), scDev("lb-3", "z", scTags("public", "ssd"))},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scWant("ssd", "public"))})
	l, _ := scMustSchedule(t, s, nil)
	if l["b1"].Primary != "lb-3" {
		t.Errorf("placed on %s, want lb-3", l["b1"].Primary)
	}
	s.Balancers["b1"].Placement.Tags = []string{"public", "gpu"} // no device has gpu
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "b1", map[string]int{"tags": 3})
}

func TestFilterTagsManyWords(t *testing.T) {
	// More than 64 distinct tags: the bit set spans words.
	var devs []*schema.Device
	for i := 0; i < 70; i++ {
		devs = append(devs, scDev(fmt.Sprintf("lb-%02d", i), "z", scTags(fmt.Sprintf("t%02d", i), "common")))
	}
	s := scSpec(devs, []*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scWant("t67", "common"))})
	if l, _ := scMustSchedule(t, s, nil); l["b1"].Primary != "lb-67" {
		t.Errorf("placed on %s, want lb-67", l["b1"].Primary)
	}
}

func TestFilterVIPNetwork(t *testing.T) {
	s := scSpec(
		[]*schema.Device{
			scDev("lb-1", "z", scNets("198.51.100.0/24")),
			scDev("lb-2", "z", scNets("198.51.100.0/24", "203.0.113.0/25")),
			scDev("lb-3", "z", scNets("2001:db8::/32")),
			scDev("lb-4", "z"), // no vipNetworks: any VIP
		},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, func(b *schema.Balancer) {
			b.VIPs = append(b.VIPs, schema.VIP{Address: netip.MustParseAddr("198.51.100.7"), Port: 80})
		})})
	l, _ := scMustSchedule(t, s, nil)
	if l["b1"].Primary != "lb-2" {
		t.Errorf("placed on %s, want lb-2 (first device holding both VIPs)", l["b1"].Primary)
	}
	s.Devices["lb-2"].VIPNetworks = s.Devices["lb-2"].VIPNetworks[:1]
	s.Devices["lb-4"].VIPNetworks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "b1", map[string]int{"vipNetwork": 4})
}

func TestFilterDevicePinAlwaysApplies(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z"), scDev("lb-2", "z"), scDev("lb-3", "z")},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scPin("lb-3")), scLB("a0", "t", "203.0.113.2", 0)})
	for _, filters := range [][]string{nil, {"capacity"}, {}} {
		s.Scheduler.Filters = filters
		l, _ := scMustSchedule(t, s, nil)
		if l["b1"].Primary != "lb-3" {
			t.Errorf("filters %v: pinned balancer on %s, want lb-3", filters, l["b1"].Primary)
		}
	}
	s.Scheduler.Filters = nil
	s.Devices["lb-3"].Capacity.Balancers = 1
	s.Balancers["a0"].Placement.Device = "lb-3"
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "b1", map[string]int{"device": 2, "capacity": 1})
	s.Balancers["b1"].Placement.Device = "lb-nope"
	_, _, err = Schedule(s, nil)
	scAssertUnplaceable(t, err, "b1", map[string]int{"device": 3})
}

func TestFilterCapacity(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z", scCap(1, 0)), scDev("lb-2", "z", scCap(0, 1500)), scDev("lb-3", "z", scCap(5, 1000))},
		[]*schema.Balancer{
			scLB("b1", "t1", "203.0.113.1", 1000),
			scLB("b2", "t2", "203.0.113.2", 1000),
			scLB("b3", "t3", "203.0.113.3", 1000),
			scLB("b4", "t4", "203.0.113.4", 400),
		})
	l, _ := scMustSchedule(t, s, nil)
	// b1 → lb-1 (ties broken by name), b2 → lb-2 (lb-1 full; lb-2 and lb-3
	// tie at count 0 / maxconn 0), b3 → lb-3 (lb-1 full, lb-2 1000+1000 > 1500),
	// b4 → lb-2 (lb-3 1000+400 > 1000; lb-2 1400 <= 1500).
	w := Lock{"b1": {"b1", "lb-1", ""}, "b2": {"b2", "lb-2", ""}, "b3": {"b3", "lb-3", ""}, "b4": {"b4", "lb-2", ""}}
	if !l.Equal(w) {
		t.Errorf("placement %v, want %v", l, w)
	}
	s.Balancers["b5"] = scLB("b5", "t5", "203.0.113.5", 200)
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "b5", map[string]int{"capacity": 3})
	// Balancer maxconn overrides the nodes' sum.
	s.Balancers["b5"].Maxconn = 0
	s.Balancers["b5"].Nodes[0].Maxconn = 0
	if _, _, err := Schedule(s, nil); err != nil {
		t.Errorf("maxconn 0 balancer: %v", err)
	}
}

func TestCostMaxconnAndSpread(t *testing.T) {
	devs := []*schema.Device{scDev("lb-1", "z", scCap(0, 10000)), scDev("lb-2", "z", scCap(0, 100000))}
	// b1 lands on lb-1 (tie); for b2, counts tie (1 vs 0 → lb-2 cheaper anyway).
	s := scSpec(devs, []*schema.Balancer{scLB("a1", "t", "203.0.113.1", 5000), scLB("a2", "u", "203.0.113.2", 5000), scLB("a3", "u", "203.0.113.3", 5000)})
	s.Scheduler.Costs = map[string]float64{"balancers": 0, "maxconn": 1, "spread": 0}
	l, _ := scMustSchedule(t, s, nil)
	// a1 → lb-1 (tie). a2: lb-1 at 0.5, lb-2 at 0 → lb-2. a3: lb-1 0.5, lb-2 0.05 → lb-2.
	if l["a1"].Primary != "lb-1" || l["a2"].Primary != "lb-2" || l["a3"].Primary != "lb-2" {
		t.Errorf("maxconn only: %v", l)
	}
	// Spread only: same tenant goes elsewhere.
	s.Scheduler.Costs = map[string]float64{"balancers": 0, "maxconn": 0, "spread": 1}
	s.Balancers["a1"].Tenant = "u"
	l, _ = scMustSchedule(t, s, nil)
	if l["a1"].Primary != "lb-1" || l["a2"].Primary != "lb-2" || l["a3"].Primary != "lb-1" {
		t.Errorf("spread only: %v", l)
	}
	s.Scheduler.Costs = map[string]float64{"bogus": 1}
	if _, _, err := Schedule(s, nil); err == nil || !strings.Contains(err.Error(), `unknown cost "bogus"`) {
		t.Errorf("unknown cost: %v", err)
	}
	s.Scheduler.Costs = map[string]float64{"spread": -1}
	if _, _, err := Schedule(s, nil); err == nil {
		t.Errorf("negative weight accepted")
	}
	s.Scheduler.Costs = nil
	s.Scheduler.Filters = []string{"nope"}
	if _, _, err := Schedule(s, nil); err == nil || !strings.Contains(err.Error(), `unknown filter "nope"`) {
		t.Errorf("unknown filter: %v", err)
	}
}

func TestNormalization(t *testing.T) {
	// Each cost is scaled to [0,1] across the candidates before weighting:
	// a large raw spread in one cost must not swamp another.
	raw := [numCosts][]float64{{0, 5, 10}, {0.3, 0.3, 0.3}, {4, 2, 0}}
	s := &sched{w: [numCosts]float64{1, 1, 0.5}, n: 3, cand: []int32{0, 1, 2},
		total: make([]float64, 3), raw: make([][numCosts]float64, 3), cu: unit{tenant: &tenantLoad{n: []int32{4, 2, 0}}}}
	for i := range 3 {
		s.load = append(s.load, devLoad{count: int32(raw[0][i]), ratio: raw[1][i]})
	}
	for k := range raw {
		s.lo[k], s.hi[k] = slices.Min(raw[k]), slices.Max(raw[k])
	}
	s.score()
	want := []float64{0.5, 0.5 + 0.25, 1}
	for i, w := range want {
		if s.total[i] != w {
			t.Errorf("total[%d] = %v, want %v", i, s.total[i], w)
		}
	}
	if s.norm(1, 0) != 0 || s.norm(0, 2) != 1 || s.norm(2, 1) != 0.5 {
		t.Errorf("norm: %v %v %v", s.norm(1, 0), s.norm(0, 2), s.norm(2, 1))
	}
}

func TestHA(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-a2", "az-a"), scDev("lb-b1", "az-b"), scDev("lb-c1", "az-c")},
		[]*schema.Balancer{
			scLB("b1", "t", "203.0.113.1", 0, scHA, scZones("az-c", "az-a")),
			scLB("b2", "t", "203.0.113.2", 0, scHA, scZones("az-a", "az-b")),
		})
	l, _ := scMustSchedule(t, s, nil)
	if p := l["b1"]; p.Primary != "lb-c1" || p.Standby != "lb-a1" {
		t.Errorf("b1 = %+v, want primary lb-c1 (preferred zone) standby lb-a1", p)
	}
	if p := l["b2"]; p.Primary != "lb-a2" || p.Standby != "lb-b1" {
		t.Errorf("b2 = %+v, want primary lb-a2 (emptier in az-a) standby lb-b1", p)
	}
	// Preferred zone full: primary falls back to the other zone.
	s.Devices["lb-c1"].Capacity.Balancers = 1
	s.Balancers["a0"] = scLB("a0", "t", "203.0.113.3", 0, scPin("lb-c1"))
	s.Balancers["b1"].Placement.Zones = []string{"az-c", "az-a", "az-b"}
	l, _ = scMustSchedule(t, s, nil)
	if p := l["b1"]; p.Primary != "lb-a1" || p.Standby != "lb-b1" {
		t.Errorf("b1 with az-c full = %+v, want primary lb-a1, standby lb-b1", p)
	}
	// Only one zone passes: no standby.
	s.Balancers["b1"].Placement.Zones = []string{"az-a"}
	_, _, err := Schedule(s, nil)
	var ue *UnplaceableError
	if !errors.As(err, &ue) || ue.Role != roleStandby || ue.Balancer != "b1" {
		t.Fatalf("one-zone HA: %v", err)
	}
	if ue.Reasons["ha"] != 2 || ue.Reasons["zone"] != 2 {
		t.Errorf("reasons %v, want 2 ha 2 zone", ue.Reasons)
	}
	if !strings.Contains(err.Error(), "0/4 devices fit the standby of b1: 2 ha, 2 zone") {
		t.Errorf("message %q", err)
	}
	// Without the ha filter, two devices of one zone make a pair.
	s.Scheduler.Filters = []string{"capacity", "zone"}
	l, _ = scMustSchedule(t, s, nil)
	if p := l["b1"]; p.Primary == p.Standby || p.Standby == "" {
		t.Errorf("b1 without ha filter = %+v", p)
	}
}

func TestHAPinnedPrimary(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-a2", "az-a"), scDev("lb-b1", "az-b")},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scHA, scPin("lb-a2"))})
	l, _ := scMustSchedule(t, s, nil)
	if p := l["b1"]; p.Primary != "lb-a2" || p.Standby != "lb-b1" {
		t.Errorf("pinned HA = %+v", p)
	}
}

func scAssertUnplaceable(t *testing.T, err error, name string, reasons map[string]int) {
	t.Helper()
	var ue *UnplaceableError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v, want *UnplaceableError", err)
	}
	if ue.Balancer != name || fmt.Sprint(ue.Reasons) != fmt.Sprint(reasons) {
		t.Errorf("unplaceable %s %v, want %s %v", ue.Balancer, ue.Reasons, name, reasons)
	}
	sum := 0
	for _, n := range ue.Reasons {
		sum += n
	}
	if sum != ue.Total {
		t.Errorf("reasons add up to %d, total %d", sum, ue.Total)
	}
}

func TestUnplaceableErrorMessage(t *testing.T) {
	s := scSpec(
		[]*schema.Device{
			scDev("lb-1", "az-b"), scDev("lb-2", "az-b"), scDev("lb-3", "az-c"),
			scDev("lb-4", "az-a", scNets("198.51.100.0/24")),
			scDev("lb-5", "az-a", scCap(1, 0)), scDev("lb-6", "az-a", scCap(1, 0)),
		},
		[]*schema.Balancer{
			scLB("a1", "t", "203.0.113.1", 0, scPin("lb-5")),
			scLB("a2", "t", "203.0.113.2", 0, scPin("lb-6")),
			scLB("shop-web", "shop", "203.0.113.10", 0, scZones("az-a")),
			scLB("shop-api", "shop", "203.0.113.11", 0, scZones("az-x")),
		})
	_, _, err := Schedule(s, nil)
	if err == nil {
		t.Fatal("no error")
	}
	w := "balancers/shop/b.cue:3:12: balancers.\"shop-api\": 0/6 devices fit shop-api: 6 zone\n" +
		"balancers/shop/b.cue:3:12: balancers.\"shop-web\": 0/6 devices fit shop-web: 3 zone, 2 capacity, 1 vipNetwork"
	if err.Error() != w {
		t.Errorf("error:\n%s\nwant:\n%s", err, w)
	}
	if e := (&UnplaceableError{Balancer: "web", Total: 0, Reasons: map[string]int{}}).Error(); e != "balancers.web: 0/0 devices fit web" {
		t.Errorf("no position: %q", e)
	}
}

func TestKeepAndStats(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z", scCap(2, 0)), scDev("lb-2", "z", scCap(2, 0)), scDev("lb-3", "z")},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0), scLB("b2", "t", "203.0.113.2", 0), scLB("b3", "t", "203.0.113.3", 0)})
	prev := Lock{
		"b1":   {"b1", "lb-3", ""},    // kept although lb-1 is emptier
		"b2":   {"b2", "lb-gone", ""}, // device gone: moved
		"gone": {"gone", "lb-1", ""},  // removed
	}
	l, st := scMustSchedule(t, s, prev)
	if l["b1"].Primary != "lb-3" {
		t.Errorf("b1 on %s, want kept on lb-3", l["b1"].Primary)
	}
	if st != (Stats{New: 1, Kept: 1, Moved: 1, Removed: 1}) {
		t.Errorf("stats %+v", st)
	}
	// Capacity shrinks: balancers kept in name order until full.
	prev = Lock{"b1": {"b1", "lb-1", ""}, "b2": {"b2", "lb-1", ""}, "b3": {"b3", "lb-1", ""}}
	s.Devices["lb-1"].Capacity.Balancers = 2
	l, st = scMustSchedule(t, s, prev)
	if l["b1"].Primary != "lb-1" || l["b2"].Primary != "lb-1" || l["b3"].Primary == "lb-1" {
		t.Errorf("shrunk capacity: %v", l)
	}
	if st != (Stats{Kept: 2, Moved: 1}) {
		t.Errorf("stats %+v", st)
	}
	// A filter that now rejects moves the balancer.
	s.Balancers["b1"].Placement.Device = "lb-2"
	l, _ = scMustSchedule(t, s, prev)
	if l["b1"].Primary != "lb-2" {
		t.Errorf("re-pinned b1 on %s", l["b1"].Primary)
	}
}

func TestKeepHA(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-b1", "az-b"), scDev("lb-b2", "az-b"), scDev("lb-c1", "az-c")},
		[]*schema.Balancer{scLB("b1", "t", "203.0.113.1", 0, scHA, scZones("az-a"))})
	s.Balancers["b1"].Placement.Zones = nil
	// Standby now in the primary's zone → only the standby moves.
	prev := Lock{"b1": {"b1", "lb-b1", "lb-b2"}}
	l, st := scMustSchedule(t, s, prev)
	if p := l["b1"]; p.Primary != "lb-b1" || p.Standby == "lb-b2" || p.Standby == "" {
		t.Errorf("HA keep = %+v", p)
	}
	if st.Moved != 1 {
		t.Errorf("stats %+v", st)
	}
	// Was not HA: primary kept, standby added.
	prev = Lock{"b1": {"b1", "lb-c1", ""}}
	l, _ = scMustSchedule(t, s, prev)
	if p := l["b1"]; p.Primary != "lb-c1" || p.Standby != "lb-a1" {
		t.Errorf("HA from single = %+v", p)
	}
	// No longer HA: primary kept, standby dropped.
	s.Balancers["b1"].Placement.HA = false
	prev = Lock{"b1": {"b1", "lb-c1", "lb-a1"}}
	l, st = scMustSchedule(t, s, prev)
	if p := l["b1"]; p.Primary != "lb-c1" || p.Standby != "" {
		t.Errorf("single from HA = %+v", p)
	}
	if st.Moved != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestScheduleNilSpec(t *testing.T) {
	if _, _, err := Schedule(nil, nil); err == nil {
		t.Error("nil spec accepted")
	}
	l, st, err := Schedule(scSpec(nil, nil), Lock{"x": {"x", "lb-1", ""}})
	if err != nil || len(l) != 0 || st != (Stats{Removed: 1}) {
		t.Errorf("empty spec: %v %v %v", l, st, err)
	}
}

// scRandomSpec builds a random tree: a few zones, tags, networks, capacities,
// placement wishes and HA pairs.
func scRandomSpec(r *rand.Rand) *schema.Spec {
	zs := []string{"az-a", "az-b", "az-c"}
	nd, nb := 1+r.IntN(12), r.IntN(40)
	var devs []*schema.Device
	for i := 0; i < nd; i++ {
		var opts []func(*schema.Device)
		if r.IntN(3) > 0 {
			opts = append(opts, scCap(r.IntN(8), 1000*r.IntN(10)))
		}
		if r.IntN(2) == 0 {
			opts = append(opts, scTags("public"))
		}
		if r.IntN(4) == 0 {
			opts = append(opts, scNets("198.51.100.0/24"))
		}
		devs = append(devs, scDev(fmt.Sprintf("lb-%02d", i), zs[r.IntN(len(zs))], opts...))
	}
	var bals []*schema.Balancer
	for i := 0; i < nb; i++ {
		var opts []func(*schema.Balancer)
		switch r.IntN(10) {
		case 0:
			opts = append(opts, scZones(zs[r.IntN(3)]))
		case 1:
			opts = append(opts, scWant("public"))
		case 2:
			opts = append(opts, scPin(fmt.Sprintf("lb-%02d", r.IntN(nd))))
		case 3, 4:
			opts = append(opts, scHA, scZones(zs[r.IntN(3)], zs[r.IntN(3)]))
		}
		vip := fmt.Sprintf("203.0.113.%d", i+1)
		if r.IntN(3) == 0 {
			vip = fmt.Sprintf("198.51.100.%d", i+1)
		}
		b := scLB(fmt.Sprintf("b%03d", r.IntN(1000)), fmt.Sprintf("t%d", r.IntN(4)), vip, 100*r.IntN(20), opts...)
		// One in four shares the address of an earlier balancer (another
		// port), nearly always agreeing with it on HA.
		if i > 0 && r.IntN(4) == 0 {
			o := bals[r.IntN(i)]
			b.VIPs = append(b.VIPs, schema.VIP{Address: o.VIPs[0].Address, Port: 1000 + i})
			if r.IntN(10) > 0 {
				b.Placement.HA = o.Placement.HA
				if b.Placement.HA && len(b.Placement.Zones) == 0 {
					b.Placement.Zones = o.Placement.Zones
				}
			}
		}
		bals = append(bals, b)
	}
	s := scSpec(devs, bals)
	if r.IntN(4) == 0 {
		s.Scheduler.Costs = map[string]float64{"balancers": float64(r.IntN(3)), "maxconn": r.Float64(), "spread": float64(r.IntN(2))}
	}
	return s
}

// scScheduleAll schedules s, dropping the balancers that cannot be placed (so
// the property tests work on trees that fit).
func scScheduleAll(t *testing.T, s *schema.Spec, prev Lock) (Lock, Stats) {
	t.Helper()
	for i := 0; i < 100; i++ {
		l, st, err := Schedule(s, prev)
		if err == nil {
			return l, st
		}
		var ue *UnplaceableError
		var se *SharedAddressError
		switch {
		case errors.As(err, &ue):
			delete(s.Balancers, ue.Balancer)
		case errors.As(err, &se):
			delete(s.Balancers, se.Balancer)
		default:
			t.Fatalf("Schedule: %v", err)
		}
	}
	t.Fatal("scScheduleAll: no progress")
	return nil, Stats{}
}

func scCheckCapacity(t *testing.T, s *schema.Spec, l Lock) {
	t.Helper()
	count := map[string]int{}
	conn := map[string]int{}
	for n, p := range l {
		b := s.Balancers[n]
		for _, d := range []string{p.Primary, p.Standby} {
			if d == "" {
				continue
			}
			count[d]++
			conn[d] += b.TotalMaxconn()
		}
		if b.Placement.HA && (p.Standby == "" || p.Standby == p.Primary ||
			s.Devices[p.Standby].Zone == s.Devices[p.Primary].Zone) {
			t.Errorf("%s: bad HA pair %+v", n, p)
		}
		if !b.Placement.HA && p.Standby != "" {
			t.Errorf("%s: standby without HA", n)
		}
	}
	// Balancers that share an address share the placement.
	holder := map[netip.Addr]string{}
	for _, n := range l.names() {
		for _, v := range s.Balancers[n].VIPs {
			o, ok := holder[v.Address]
			if !ok {
				holder[v.Address] = n
				continue
			}
			if p, q := l[o], l[n]; p.Primary != q.Primary || p.Standby != q.Standby {
				t.Errorf("%s and %s share %s but are placed apart: %+v, %+v", o, n, v.Address, p, q)
			}
		}
	}
	for n, d := range s.Devices {
		if c := d.Capacity.Balancers; c > 0 && count[n] > c {
			t.Errorf("%s: %d balancers > capacity %d", n, count[n], c)
		}
		if c := d.Capacity.Maxconn; c > 0 && conn[n] > c {
			t.Errorf("%s: maxconn %d > capacity %d", n, conn[n], c)
		}
	}
}

func TestScheduleProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	grouped, joined := 0, 0
	defer func() {
		// The property must be exercised on groups, not only singles.
		if grouped == 0 || joined == 0 {
			t.Errorf("trees with a placed group: %d, members joining a kept group: %d; want both > 0", grouped, joined)
		}
	}()
	for iter := 0; iter < 200; iter++ {
		s := scRandomSpec(r)
		l, _ := scScheduleAll(t, s, nil)
		scCheckCapacity(t, s, l)
		for _, n := range l.names() {
			if len(s.Balancers[n].VIPs) > 1 {
				grouped++
				break
			}
		}

		// Same input twice: same output, and scheduling against its own
		// lock keeps everything.
		l2, _ := scMustSchedule(t, s, nil)
		if !l.Equal(l2) {
			t.Fatalf("iter %d: not deterministic", iter)
		}
		l3, st := scMustSchedule(t, s, l)
		if !l.Equal(l3) || st.Kept != len(l) || st.New+st.Moved+st.Removed != 0 {
			t.Fatalf("iter %d: rescheduling with own lock changed it: %v", iter, DiffLocks(l, l3))
		}

		// Add one balancer: no other moves. Half the time it shares the
		// address of a placed one (agreeing on HA), joining its group.
		nb := scLB(fmt.Sprintf("n%03d", r.IntN(1000)), "t0", "203.0.113.250", 100*r.IntN(5))
		if r.IntN(3) == 0 {
			scHA(nb)
		}
		if len(l) > 0 && r.IntN(2) == 0 {
			names := l.names()
			o := s.Balancers[names[r.IntN(len(names))]]
			nb.VIPs = append(nb.VIPs, schema.VIP{Address: o.VIPs[0].Address, Port: 2000})
			nb.Placement.HA = o.Placement.HA
		}
		s.Balancers[nb.Name] = nb
		la, st, err := Schedule(s, l)
		if err == nil {
			scCheckCapacity(t, s, la)
			for n, p := range l {
				if la[n] != p {
					t.Fatalf("iter %d: adding %s moved %s: %v -> %v", iter, nb.Name, n, p, la[n])
				}
			}
			if st.New != 1 || st.Kept != len(l) {
				t.Errorf("iter %d: add stats %+v", iter, st)
			}
			if len(nb.VIPs) > 1 {
				joined++
			}
		} else {
			var ue *UnplaceableError
			if !errors.As(err, &ue) || ue.Balancer != nb.Name {
				t.Fatalf("iter %d: adding %s: %v", iter, nb.Name, err)
			}
		}
		delete(s.Balancers, nb.Name)

		// Remove one balancer: no other moves.
		if len(l) > 0 {
			names := l.names()
			gone := names[r.IntN(len(names))]
			removed := s.Balancers[gone]
			delete(s.Balancers, gone)
			lr, st := scMustSchedule(t, s, l)
			scCheckCapacity(t, s, lr)
			for n, p := range lr {
				if l[n] != p {
					t.Fatalf("iter %d: removing %s moved %s: %v -> %v", iter, gone, n, l[n], p)
				}
			}
			if st.Removed != 1 || st.Kept != len(l)-1 {
				t.Errorf("iter %d: remove stats %+v", iter, st)
			}
			s.Balancers[gone] = removed
		}
	}
}

func TestUnplaceableProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	seen := 0
	for iter := 0; iter < 200; iter++ {
		s := scRandomSpec(r)
		_, _, err := Schedule(s, nil)
		if err == nil {
			continue
		}
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		prevName := ""
		for _, e := range errs {
			if se, ok := e.(*SharedAddressError); ok {
				if se.Balancer < prevName || len(se.HA) == 0 || len(se.NotHA) == 0 || !se.Pos.IsValid() {
					t.Errorf("iter %d: %v", iter, se)
				}
				prevName = se.Balancer
				continue
			}
			ue, ok := e.(*UnplaceableError)
			if !ok {
				t.Fatalf("iter %d: %T %v", iter, e, e)
			}
			seen++
			sum := 0
			for _, n := range ue.Reasons {
				sum += n
			}
			if sum != ue.Total || ue.Total != len(s.Devices) {
				t.Errorf("iter %d: %s reasons %v add to %d, total %d, devices %d", iter, ue.Balancer, ue.Reasons, sum, ue.Total, len(s.Devices))
			}
			if ue.Reasons["unknown"] != 0 {
				t.Errorf("iter %d: %s: device passing every filter counted as rejected", iter, ue.Balancer)
			}
			if ue.Balancer < prevName {
				t.Errorf("iter %d: errors not sorted: %s after %s", iter, ue.Balancer, prevName)
			}
			prevName = ue.Balancer
		}
	}
	if seen == 0 {
		t.Fatal("no unplaceable balancer in 200 random trees")
	}
}
