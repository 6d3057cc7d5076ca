package shard

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"lbc/compiler"
	"lbc/schema"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Shard
		err  bool
	}{
		{"0/1", Shard{0, 1}, false},
		{"3/4", Shard{3, 4}, false},
		{"4/4", Shard{}, true},
		{"-1/4", Shard{}, true},
		{"0/0", Shard{}, true},
		{"1", Shard{}, true},
		{"a/4", Shard{}, true},
		{"0/4/5", Shard{}, true},
		{"0/10001", Shard{}, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// fleet is a random compile result: devices devs, a fraction of balancers
// in HA pairs between random devices (pairs may chain into larger units),
// and now and then a VIP address carried by two devices.
func fleet(r *rand.Rand, devs int, haFrac float64) *compiler.Result {
	res := &compiler.Result{Devices: map[string]*compiler.DeviceArtifacts{}, Placement: compiler.Lock{}}
	name := func(i int) string { return fmt.Sprintf("lb-%05d", i) }
	for i := range devs {
		res.Devices[name(i)] = &compiler.DeviceArtifacts{Device: name(i)}
	}
	addr := uint32(0) // VIPs from 2001:db8::/32, the documentation prefix
	vip := func(dev string, role string, a netip.Addr, b string) {
		d := res.Devices[dev]
		d.VIPs = append(d.VIPs, compiler.VIP{Address: a, Prefix: 32, Balancer: b, Role: role})
	}
	for b := range devs * 2 {
		bn := fmt.Sprintf("b-%05d", b)
		addr++
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(addr >> 24), 13: byte(addr >> 16), 14: byte(addr >> 8), 15: byte(addr)})
		p := name(r.IntN(devs))
		switch x := r.Float64(); {
		case x < haFrac && devs > 1:
			s := name(r.IntN(devs))
			for s == p {
				s = name(r.IntN(devs))
			}
			res.Placement[bn] = compiler.Placement{Balancer: bn, Primary: p, Standby: s}
			vip(p, compiler.VIPRolePrimary, a, bn)
			vip(s, compiler.VIPRoleStandby, a, bn)
		case x < haFrac+0.01 && devs > 1:
			// a VIP on two devices that no placement pairs
			res.Placement[bn] = compiler.Placement{Balancer: bn, Primary: p}
			vip(p, compiler.VIPRoleSingle, a, bn)
			vip(name(r.IntN(devs)), compiler.VIPRoleSingle, a, bn)
		default:
			res.Placement[bn] = compiler.Placement{Balancer: bn, Primary: p}
			vip(p, compiler.VIPRoleSingle, a, bn)
		}
	}
	return res
}

// shardOf maps each device to the shard whose Devices holds it; it fails
// the test when a device is in none or in two.
func shardOf(t *testing.T, res *compiler.Result, n int) map[string]int {
	t.Helper()
	of := map[string]int{}
	for i := range n {
		for d := range Devices(res, Shard{i, n}) {
			if j, ok := of[d]; ok {
				t.Fatalf("n=%d: device %s in shards %d and %d", n, d, j, i)
			}
			if res.Devices[d] == nil {
				t.Fatalf("n=%d: shard %d has %s, which the fleet does not", n, i, d)
			}
			of[d] = i
		}
	}
	for d := range res.Devices {
		if _, ok := of[d]; !ok {
			t.Fatalf("n=%d: device %s in no shard", n, d)
		}
	}
	return of
}

// TestEveryDeviceOnceUnitsTogether: over random fleets and shard counts,
// every device is in exactly one shard, both devices of every HA pair and
// every device carrying one VIP address are in the same shard, and no
// shard holds more than the bound.
func TestEveryDeviceOnceUnitsTogether(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	for trial := range 30 {
		devs := 1 + r.IntN(400)
		res := fleet(r, devs, r.Float64()*0.3)
		units := Units(res)
		for _, n := range []int{1, 2, 3, 5, 8, 13, 40} {
			of := shardOf(t, res, n)
			for _, pl := range res.Placement {
				if pl.Standby != "" && of[pl.Primary] != of[pl.Standby] {
					t.Fatalf("trial %d n=%d: pair %s split: %s in %d, %s in %d", trial, n, pl.Balancer, pl.Primary, of[pl.Primary], pl.Standby, of[pl.Standby])
				}
			}
			carriers := map[netip.Addr]int{}
			for d, art := range res.Devices {
				for _, v := range art.VIPs {
					if s, ok := carriers[v.Address]; ok && s != of[d] {
						t.Fatalf("trial %d n=%d: VIP %s on devices in shards %d and %d", trial, n, v.Address, s, of[d])
					}
					carriers[v.Address] = of[d]
				}
			}
			load := make([]int, n)
			for _, s := range of {
				load[s]++
			}
			if b := Bound(units, n); slices.Max(load) > b {
				t.Fatalf("trial %d n=%d: a shard holds %d devices, bound %d (loads %v)", trial, n, slices.Max(load), b, load)
			}
		}
	}
}

// TestBound: the bound is (1+Epsilon)·average when units are small next
// to it, and never less than the average plus the largest unit less one.
func TestBound(t *testing.T) {
	single := make([]Unit, 1000)
	for i := range single {
		single[i] = Unit{Key: fmt.Sprint(i), Devices: []string{fmt.Sprint(i)}}
	}
	if got, want := Bound(single, 10), 125; got != want {
		t.Errorf("Bound(1000 devices, 10) = %d, want %d", got, want)
	}
	big := append(slices.Clone(single[:10]), Unit{Key: "big", Devices: make([]string, 50)})
	if got, want := Bound(big, 2), 30+50-1; got != want {
		t.Errorf("Bound(10 singles + one unit of 50, 2) = %d, want %d", got, want)
	}
}

// moved returns the fraction of units whose shard differs between n and n+1.
func moved(units []Unit, n int) float64 {
	a, b := Assign(units, n), Assign(units, n+1)
	m := 0
	for i := range a {
		if a[i] != b[i] {
			m++
		}
	}
	return float64(m) / float64(len(units))
}

// TestMovement10k: on a fleet of 10,000 devices (a fifth of the balancers
// in HA pairs), going from n to n+1 shards moves close to 1/(n+1) of the
// units, the least any assignment can, and every shard stays within
// (1+Epsilon) of the average. go test -v prints the table.
func TestMovement10k(t *testing.T) {
	res := fleet(rand.New(rand.NewPCG(10000, 1)), 10000, 0.1)
	units := Units(res)
	t.Logf("10,000 devices in %d units", len(units))
	t.Logf("%-8s %-8s %-8s %-6s %s", "n→n+1", "moved", "ideal", "ratio", "largest shard / average (n+1)")
	for n := 1; n <= 16; n++ {
		f := moved(units, n)
		ideal := 1 / float64(n+1)
		load := make([]int, n+1)
		for i, s := range Assign(units, n+1) {
			load[s] += len(units[i].Devices)
		}
		over := float64(slices.Max(load)) / (10000 / float64(n+1))
		t.Logf("%2d→%-5d %.4f   %.4f   %.2f   %.3f", n, n+1, f, ideal, f/ideal, over)
		if f > 1.15*ideal {
			t.Errorf("%d→%d shards moved %.4f of the units, more than 1.15 × 1/(n+1) = %.4f", n, n+1, f, 1.15*ideal)
		}
		if over > 1+Epsilon+0.001 {
			t.Errorf("%d shards: largest shard %.3f × the average", n+1, over)
		}
	}
}

// TestMovementSmallFleets: over many random fleets of 200 to 3,000
// devices, the movement from n to n+1 shards averages at most 1.15 times
// the least possible, and no single case exceeds twice it.
func TestMovementSmallFleets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var sum float64
	cases := 0
	for range 20 {
		units := Units(fleet(r, 200+r.IntN(2800), 0.15))
		for n := 1; n <= 10; n++ {
			ratio := moved(units, n) * float64(n+1)
			sum += ratio
			cases++
			if ratio > 2 {
				t.Errorf("%d units, %d→%d shards: moved %.2f × the least possible", len(units), n, n+1, ratio)
			}
		}
	}
	if avg := sum / float64(cases); avg > 1.15 || math.IsNaN(avg) {
		t.Errorf("average movement %.3f × the least possible, want at most 1.15", avg)
	} else {
		t.Logf("average movement over %d cases: %.3f × 1/(n+1)", cases, avg)
	}
}

// TestPinned: the assignment is part of lbc's interface (copies of lbc
// on different machines must agree): a fixed fleet's assignment is pinned.
func TestPinned(t *testing.T) {
	var units []Unit
	for i := range 12 {
		d := fmt.Sprintf("lb-%02d", i)
		units = append(units, Unit{Key: d, Devices: []string{d}})
	}
	got := Assign(units, 3)
	want := []int{1, 1, 1, 2, 0, 0, 1, 2, 0, 1, 0, 0}
	if !slices.Equal(got, want) {
		t.Errorf("Assign(lb-00..lb-11, 3) = %v, want %v", got, want)
	}
}

// TestExampleFleet: the HA pairs the scheduler makes for examples/fleet
// stay together in every shard count.
func TestExampleFleet(t *testing.T) {
	spec, err := schema.LoadDir(context.Background(), filepath.Join("..", "..", "examples", "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compiler.Compile(spec, nil, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for n := 1; n <= len(res.Devices); n++ {
		of := shardOf(t, res, n)
		for _, pl := range res.Placement {
			if pl.Standby == "" {
				continue
			}
			pairs++
			if of[pl.Primary] != of[pl.Standby] {
				t.Errorf("n=%d: %s split: %s in %d, %s in %d", n, pl.Balancer, pl.Primary, of[pl.Primary], pl.Standby, of[pl.Standby])
			}
		}
	}
	if pairs == 0 {
		t.Fatal("examples/fleet has no HA pair: the test proves nothing")
	}
}

// TestUnits: a unit is what the placement pairs or a shared address links,
// transitively; every other device is a unit of its own.
func TestUnits(t *testing.T) {
	res := &compiler.Result{Devices: map[string]*compiler.DeviceArtifacts{}, Placement: compiler.Lock{
		"x": {Balancer: "x", Primary: "a", Standby: "b"},
		"y": {Balancer: "y", Primary: "c", Standby: "b"},
		"z": {Balancer: "z", Primary: "d"},
		"w": {Balancer: "w", Primary: "a", Standby: "gone"}, // a device the compile lacks
	}}
	v := netip.MustParseAddr("2001:db8::1")
	for _, d := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		res.Devices[d] = &compiler.DeviceArtifacts{Device: d}
	}
	res.Devices["e"].VIPs = []compiler.VIP{{Address: v}}
	res.Devices["g"].VIPs = []compiler.VIP{{Address: v}}
	got := Units(res)
	want := []Unit{{"a", []string{"a", "b", "c"}}, {"d", []string{"d"}}, {"e", []string{"e", "g"}}, {"f", []string{"f"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Units = %v, want %v", got, want)
	}
}
