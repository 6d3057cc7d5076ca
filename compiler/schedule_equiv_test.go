package compiler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"lbc/schema"
)

// scheduleReference is Schedule as it was before choose: every decision
// scans every device (candidates), then scores them all (best).
func scheduleReference(spec *schema.Spec, prev Lock) (Lock, Stats, error) {
	s, err := newSched(spec)
	if err != nil {
		return nil, Stats{}, err
	}
	s.noFast = true
	lock, stats, errs := s.run(prev, "", nil)
	if len(errs) > 0 {
		return nil, Stats{}, errors.Join(errs...)
	}
	return lock, stats, nil
}

// scEquivSpec builds a random tree larger than scRandomSpec's, where
// classes of many devices have room (choose's fast path) as often as
// devices run full (its fallback): zones, tags, networks, capacities,
// weights (zero ones too), filter lists, tenants, pins, HA pairs and
// balancers sharing addresses.
func scEquivSpec(r *rand.Rand) *schema.Spec {
	zs := []string{"az-a", "az-b", "az-c", "az-d"}[:1+r.IntN(4)]
	tagSets := [][]string{nil, {"public"}, {"internal"}, {"public", "internal"}, {"edge", "public"}}
	netSets := [][]string{nil, {"198.51.100.0/24"}, {"203.0.113.0/24"}, {"198.51.100.0/24", "203.0.113.0/24"}}
	nd := 1 + r.IntN(60)
	// Now and then more distinct vipNetworks than the bit masks hold.
	manyNets := r.IntN(8) == 0
	if manyNets {
		nd = 70 + r.IntN(30)
	}
	nb := r.IntN(250)
	tight := r.IntN(3) == 0
	var devs []*schema.Device
	for i := 0; i < nd; i++ {
		var opts []func(*schema.Device)
		switch r.IntN(4) {
		case 0: // unbounded
		case 1:
			opts = append(opts, scCap(0, 1000*(1+r.IntN(50))))
		default:
			b := 2*nb/nd + 2 + r.IntN(20)
			if tight {
				b = r.IntN(1 + 2*nb/nd)
			}
			m := 0
			if r.IntN(2) == 0 {
				m = 500 * (1 + r.IntN(200))
			}
			opts = append(opts, scCap(b, m))
		}
		opts = append(opts, scTags(tagSets[r.IntN(len(tagSets))]...), scNets(netSets[r.IntN(len(netSets))]...))
		if manyNets {
			opts = append(opts, func(d *schema.Device) {
				if len(d.VIPNetworks) > 0 {
					d.VIPNetworks = append(d.VIPNetworks, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32))
				}
			})
		}
		devs = append(devs, scDev(fmt.Sprintf("lb-%03d", r.IntN(1000)), zs[r.IntN(len(zs))], opts...))
	}
	var bals []*schema.Balancer
	for i := 0; i < nb; i++ {
		var opts []func(*schema.Balancer)
		switch r.IntN(14) {
		case 0:
			opts = append(opts, scZones(zs[r.IntN(len(zs))]))
		case 1:
			opts = append(opts, scWant(tagSets[1+r.IntN(len(tagSets)-1)]...))
		case 2:
			opts = append(opts, scPin(devs[r.IntN(nd)].Name))
		case 3:
			opts = append(opts, scPin("lb-gone"))
		case 4, 5:
			opts = append(opts, scHA)
			if r.IntN(3) > 0 {
				opts = append(opts, scZones(zs[r.IntN(len(zs))], zs[r.IntN(len(zs))]))
			}
		case 6:
			opts = append(opts, scWant("unknown-tag"))
		}
		vip := fmt.Sprintf("203.0.113.%d", 1+r.IntN(250))
		if r.IntN(3) == 0 {
			vip = fmt.Sprintf("198.51.100.%d", 1+r.IntN(250))
		}
		tenant := ""
		if r.IntN(5) > 0 {
			tenant = fmt.Sprintf("t%d", r.IntN(1+r.IntN(6)))
		}
		b := scLB(fmt.Sprintf("b%04d", i), tenant, vip, 100*r.IntN(20), opts...)
		b.VIPs[0].Port = 80 + i // addresses drawn twice are shared, not duplicates
		if i > 0 && r.IntN(8) == 0 {
			o := bals[r.IntN(i)]
			b.VIPs = append(b.VIPs, schema.VIP{Address: o.VIPs[0].Address, Port: 5000 + i})
			if r.IntN(10) > 0 {
				b.Placement.HA = o.Placement.HA
			}
		}
		bals = append(bals, b)
	}
	s := scSpec(devs, bals)
	if r.IntN(3) == 0 {
		ws := []float64{0, 0.5, 1, 2, 0.1, 1e-9, 3.7}
		s.Scheduler.Costs = map[string]float64{"balancers": ws[r.IntN(len(ws))], "maxconn": ws[r.IntN(len(ws))], "spread": ws[r.IntN(len(ws))]}
	}
	if r.IntN(4) == 0 {
		s.Scheduler.Filters = []string{}
		for _, f := range filterOrder {
			if r.IntN(2) == 0 {
				s.Scheduler.Filters = append(s.Scheduler.Filters, f)
			}
		}
	}
	return s
}

// scEquivLock returns a previous placement for s: that of an older tree
// (some balancers left out, every device of less capacity), with a few
// stale or odd lines.
func scEquivLock(r *rand.Rand, s *schema.Spec) Lock {
	old := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{}, Scheduler: s.Scheduler}
	for n, d := range s.Devices {
		c := *d
		if c.Capacity.Balancers > 1 && r.IntN(2) == 0 {
			c.Capacity.Balancers--
		}
		old.Devices[n] = &c
	}
	for n, b := range s.Balancers {
		if r.IntN(5) > 0 {
			old.Balancers[n] = b
		}
	}
	prev, _, err := scheduleReference(old, nil)
	if err != nil {
		prev = Lock{}
		names := s.DeviceNames()
		for n := range old.Balancers {
			if r.IntN(2) == 0 {
				prev[n] = Placement{Balancer: n, Primary: names[r.IntN(len(names))]}
			}
		}
	}
	names := s.DeviceNames()
	for n, p := range prev {
		switch r.IntN(12) {
		case 0:
			p.Primary = "lb-gone"
		case 1:
			p.Standby = names[r.IntN(len(names))]
		case 2:
			p.Primary, p.Standby = p.Standby, p.Primary
		}
		prev[n] = p
	}
	prev["zz-removed"] = Placement{Balancer: "zz-removed", Primary: names[0]}
	return prev
}

func TestScheduleMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var placed, failed, locked, fast, noMasks int
	for iter := 0; iter < 400; iter++ {
		s := scEquivSpec(r)
		var prev Lock
		if iter%2 == 1 {
			prev = scEquivLock(r, s)
			locked++
		}
		// Compare, then drop the balancers the errors name and compare
		// again, until the tree fits.
		for round := 0; round < 50; round++ {
			want, wst, werr := scheduleReference(s, prev)
			got, gst, gerr := Schedule(s, prev)
			if sc, err := newSched(s); err == nil {
				sc.run(prev, "", nil)
				fast += sc.fastN
				if sc.prefixes == nil {
					noMasks++
				}
			}
			if string(got.Marshal()) != string(want.Marshal()) || gst != wst {
				t.Fatalf("iter %d round %d: lock differs from the reference: %v (stats %+v, want %+v)", iter, round, DiffLocks(want, got), gst, wst)
			}
			if (gerr == nil) != (werr == nil) || gerr != nil && (gerr.Error() != werr.Error() || !reflect.DeepEqual(gerr, werr)) {
				t.Fatalf("iter %d round %d: error differs from the reference:\n got %v\nwant %v", iter, round, gerr, werr)
			}
			if werr == nil {
				placed += len(want)
				break
			}
			failed++
			for _, e := range werr.(interface{ Unwrap() []error }).Unwrap() {
				delete(s.Balancers, errBalancer(e))
			}
		}
	}
	t.Logf("placed %d balancers, %d runs with errors, %d with a lock, %d decisions by the fast path, %d runs with > 64 vipNetworks", placed, failed, locked, fast, noMasks)
	if failed == 0 || placed == 0 || fast < placed/4 || noMasks == 0 {
		t.Errorf("placed %d, runs with errors %d, fast decisions %d, runs with > 64 vipNetworks %d: want all > 0, fast >= placed/4", placed, failed, fast, noMasks)
	}
}

// TestScheduleMatchesReferenceFleet compares on the benchmark's fleet, fresh
// and against its own lock with a few devices shrunk.
func TestScheduleMatchesReferenceFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("large tree")
	}
	s := scFleet(300, 3000, 30)
	want, _, werr := scheduleReference(s, nil)
	got, _, gerr := Schedule(s, nil)
	if werr != nil || gerr != nil || string(got.Marshal()) != string(want.Marshal()) {
		t.Fatalf("fresh: %v %v %v", werr, gerr, DiffLocks(want, got))
	}
	for i, n := range s.DeviceNames() {
		if i%7 == 0 {
			s.Devices[n].Capacity.Balancers = 3
		}
	}
	want2, _, werr := scheduleReference(s, want)
	got2, _, gerr := Schedule(s, want)
	if werr != nil || gerr != nil || string(got2.Marshal()) != string(want2.Marshal()) {
		t.Fatalf("locked: %v %v %v", werr, gerr, DiffLocks(want2, got2))
	}
	if len(DiffLocks(want, want2)) == 0 {
		t.Error("shrinking devices moved nothing: the lock case tests little")
	}
}
