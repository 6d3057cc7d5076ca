package compiler

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"lbc/schema"
)

// recompileFleet is a small fleet in three zones with unicast HA pairs,
// shared VIP addresses and capacity tight enough that edits move things.
// With pairs, it is three devices (one per zone) carrying 90 HA VIPs on
// the three pairs instead, so that virtual_router_ids collide and shift on
// one pair as VIPs of another come and go.
func recompileFleet(r *rand.Rand, pairs bool) *schema.Spec {
	zs := []string{"az-a", "az-b", "az-c"}
	if pairs {
		var devs []*schema.Device
		for i, z := range zs {
			devs = append(devs, testDevice(fmt.Sprintf("lb-%02d", i), fmt.Sprintf("192.0.2.%d", 10+i), z))
		}
		var bals []*schema.Balancer
		for i := 0; i < 90; i++ {
			x := randomBalancer(r, fmt.Sprintf("t%d-svc-%02d", i%4, i), i)
			z := r.IntN(3)
			x.Placement = schema.Placement{HA: true, Zones: []string{zs[z], zs[(z+1)%3]}}
			bals = append(bals, x)
		}
		return testSpec(devs, bals)
	}
	var devs []*schema.Device
	for i := 0; i < 12; i++ {
		d := testDevice(fmt.Sprintf("lb-%02d", i), fmt.Sprintf("192.0.2.%d", 10+i), zs[i%3])
		d.Capacity = schema.Capacity{Balancers: 12, Maxconn: 60000}
		d.Tags = []string{[]string{"public", "internal"}[i%2]}
		d.Pos = schema.Pos{File: "devices/d.cue", Line: 1 + i, Col: 2}
		devs = append(devs, d)
	}
	var bals []*schema.Balancer
	for i := 0; i < 60; i++ {
		bals = append(bals, randomBalancer(r, fmt.Sprintf("t%d-svc-%02d", i%4, i), i))
	}
	return testSpec(devs, bals)
}

func randomBalancer(r *rand.Rand, name string, i int) *schema.Balancer {
	zs := []string{"az-a", "az-b", "az-c"}
	b := testBalancer(name, fmt.Sprintf("203.0.113.%d", 1+i%120), 80+i/120)
	b.Tenant = name[:2]
	b.Pos = schema.Pos{File: "balancers/" + b.Tenant + ".cue", Line: 1 + i, Col: 2}
	b.FieldPos = map[string]schema.Pos{"vips[0].address": {File: b.Pos.File, Line: 2 + i, Col: 9}}
	b.Nodes = nil
	for n := 0; n < 1+r.IntN(3); n++ {
		b.Nodes = append(b.Nodes, schema.Node{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(n + 1)}),
			Port: 8080, Weight: 1 + r.IntN(100), Maxconn: 100 * r.IntN(5)})
	}
	switch x := r.IntN(10); {
	case x < 2:
		b.Placement = schema.Placement{HA: true, Zones: []string{zs[x], zs[(x+1)%3]}}
		b.Failback = r.IntN(2) == 0
	case x < 4:
		b.Placement.Zones = []string{zs[r.IntN(3)]}
	case x < 5:
		b.Placement.Tags = []string{"public"}
	}
	return b
}

// edit changes spec (copy on write: the values it changes are copies, the
// others are shared with the spec before, as the watch loader shares the
// balancers of instances it did not reload) and sometimes lock and opts.
func edit(r *rand.Rand, spec *schema.Spec, lock Lock, opts Options, step int) (*schema.Spec, Lock, Options, string) {
	s := &schema.Spec{Devices: maps.Clone(spec.Devices), Balancers: maps.Clone(spec.Balancers), Scheduler: spec.Scheduler}
	names := s.BalancerNames()
	bal := func() *schema.Balancer { // a copy of a random balancer, put in place
		b := *s.Balancers[names[r.IntN(len(names))]]
		b.Nodes = slices.Clone(b.Nodes)
		b.VIPs = slices.Clone(b.VIPs)
		s.Balancers[b.Name] = &b
		return &b
	}
	dev := func() *schema.Device {
		dn := s.DeviceNames()
		d := *s.Devices[dn[r.IntN(len(dn))]]
		s.Devices[d.Name] = &d
		return &d
	}
	switch r.IntN(14) {
	case 0:
		b := bal()
		b.Nodes[0].Weight = 1 + r.IntN(256)
		return s, lock, opts, "weight of " + b.Name
	case 1:
		b := bal()
		b.Pos.Line += 3
		b.FieldPos = map[string]schema.Pos{"vips[0].address": {File: b.Pos.File, Line: b.Pos.Line + 1}}
		return s, lock, opts, "position of " + b.Name
	case 2:
		b := bal()
		b.Maxconn = 1000 * r.IntN(20)
		return s, lock, opts, "maxconn of " + b.Name
	case 3:
		b := bal()
		b.Tenant = fmt.Sprintf("t%d", r.IntN(4))
		return s, lock, opts, "tenant of " + b.Name
	case 4:
		b := randomBalancer(r, fmt.Sprintf("t%d-new-%03d", r.IntN(4), step), r.IntN(200))
		s.Balancers[b.Name] = b
		return s, lock, opts, "new " + b.Name
	case 5:
		n := names[r.IntN(len(names))]
		delete(s.Balancers, n)
		return s, lock, opts, "removed " + n
	case 6:
		b := bal()
		b.Failback = !b.Failback
		return s, lock, opts, "failback of " + b.Name
	case 7:
		b := bal()
		b.Placement.HA = !b.Placement.HA
		if b.Placement.HA && len(b.Placement.Zones) < 2 {
			b.Placement.Zones = []string{"az-a", "az-c"}
		}
		return s, lock, opts, "ha of " + b.Name
	case 8:
		d := dev()
		d.Address = fmt.Sprintf("192.0.2.%d", 100+r.IntN(100))
		if r.IntN(3) == 0 {
			d.Address = d.Name + ".example.net" // multicast VRRP
		}
		return s, lock, opts, "address of " + d.Name
	case 9:
		d := dev()
		d.Capacity.Balancers = 8 + r.IntN(8)
		return s, lock, opts, "capacity of " + d.Name
	case 10:
		d := dev()
		d.Pos.Line += 7
		return s, lock, opts, "position of " + d.Name
	case 11:
		// The lock as compile writes it, or with some entries dropped or moved.
		l := Lock{}
		for n, p := range lock {
			if r.IntN(10) > 0 {
				l[n] = p
			}
		}
		if len(l) > 0 && r.IntN(2) == 0 {
			n := slices.Sorted(maps.Keys(l))[0]
			p := l[n]
			p.Primary = "lb-0" + fmt.Sprint(r.IntN(10))
			l[n] = p
		}
		return s, l, opts, "lock edited"
	case 12:
		opts.Revision = fmt.Sprintf("rev%d", r.IntN(3))
		return s, lock, opts, "revision " + opts.Revision
	default:
		b := bal()
		b.HealthMonitor.Interval = time.Duration(1+r.IntN(5)) * time.Second
		return s, lock, opts, "health interval of " + b.Name
	}
}

// sameResult compares two results as files and placement.
func sameResult(t *testing.T, what string, got, want *Result) {
	t.Helper()
	if !got.Placement.Equal(want.Placement) || got.Stats != want.Stats || got.Revision != want.Revision {
		t.Fatalf("%s: placement %v %+v, want %v %+v", what, DiffLocks(want.Placement, got.Placement), got.Stats, nil, want.Stats)
	}
	if len(got.Devices) != len(want.Devices) {
		t.Fatalf("%s: %d devices, want %d", what, len(got.Devices), len(want.Devices))
	}
	for name, w := range want.Devices {
		g := got.Devices[name]
		if g == nil || !bytes.Equal(g.HAProxyCfg, w.HAProxyCfg) || !bytes.Equal(g.VIPsJSON, w.VIPsJSON) ||
			!bytes.Equal(g.Keepalived, w.Keepalived) || !slices.Equal(g.Balancers, w.Balancers) || !slices.Equal(g.VIPs, w.VIPs) {
			t.Fatalf("%s: device %s differs from Compile's", what, name)
		}
	}
}

// TestRecompileEqualsCompile makes random edits and checks that Recompile
// from the last good result returns what Compile returns, byte for byte,
// and errors where Compile errors; and that it renders again only devices
// whose inputs changed.
func TestRecompileEqualsCompile(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		spec := recompileFleet(r, seed > 4)
		opts := Options{Version: "v1", Revision: "rev0"}
		prev, err := Compile(spec, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		lock := prev.Placement
		if seed%2 == 1 {
			lock = nil // no lock file: every balancer is placed afresh
		}
		reused, failed := 0, 0
		for step := 0; step < 150; step++ {
			nspec, nlock, nopts, what := edit(r, spec, lock, opts, step)
			what = fmt.Sprintf("seed %d step %d (%s)", seed, step, what)
			want, werr := Compile(nspec, nlock, nopts)
			got, gerr := Recompile(nspec, nlock, prev, nopts)
			if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
				t.Fatalf("%s: Recompile error %v, Compile error %v", what, gerr, werr)
			}
			if werr != nil {
				failed++
				continue // prev stays the last good result, as in watch
			}
			sameResult(t, what, got, want)
			n := 0
			for name, a := range got.Devices {
				if prev.Devices[name] == a {
					n++
				}
			}
			if n > 0 {
				reused++
			}
			spec, lock, opts, prev = nspec, nlock, nopts, got
			switch r.IntN(8) {
			case 0:
				lock = got.Placement // as after lbc compile writes the lock
			case 1:
				lock = nil // as after the lock file is deleted
			}
		}
		t.Logf("seed %d: %d of 150 steps reused some device's files, %d failed to compile", seed, reused, failed)
		if reused == 0 || failed == 150 {
			t.Errorf("seed %d: %d steps reused some device, %d failed", seed, reused, failed)
		}
	}
}

// TestRecompileRendersOnlyWhatChanged checks the work Recompile saves:
// a weight edit renders the devices of that balancer, a move of a
// balancer's position in its file renders nothing.
func TestRecompileRendersOnlyWhatChanged(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	spec := recompileFleet(r, false)
	opts := Options{Version: "v1", Revision: "rev0"}
	prev, err := Compile(spec, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	rendered := func(res *Result) []string {
		var out []string
		for name, a := range res.Devices {
			if prev.Devices[name] != a {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	var ha, single string
	for _, n := range spec.BalancerNames() {
		if spec.Balancers[n].Placement.HA {
			ha = n
		} else {
			single = n
		}
	}
	for _, c := range []struct {
		name   string
		change func(b *schema.Balancer)
		want   func(p Placement) []string
	}{
		{single, func(b *schema.Balancer) { b.Nodes[0].Weight++ }, func(p Placement) []string { return []string{p.Primary} }},
		{ha, func(b *schema.Balancer) { b.Nodes[0].Weight++ }, func(p Placement) []string {
			return slices.Sorted(slices.Values([]string{p.Primary, p.Standby}))
		}},
		{single, func(b *schema.Balancer) { b.Pos.Line += 10; b.FieldPos = nil }, func(Placement) []string { return nil }},
	} {
		s := &schema.Spec{Devices: spec.Devices, Balancers: maps.Clone(spec.Balancers), Scheduler: spec.Scheduler}
		b := *s.Balancers[c.name]
		b.Nodes = slices.Clone(b.Nodes)
		c.change(&b)
		s.Balancers[c.name] = &b
		got, err := Recompile(s, nil, prev, opts)
		if err != nil {
			t.Fatal(err)
		}
		if r, w := rendered(got), c.want(prev.Placement[c.name]); !slices.Equal(r, w) {
			t.Errorf("%s: rendered %v, want %v", c.name, r, w)
		}
		want, _ := Compile(s, nil, opts)
		sameResult(t, c.name, got, want)
	}
}
