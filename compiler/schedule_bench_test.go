package compiler

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"lbc/schema"
)

// fleet builds a tree shaped like internal/gen's: devices in three zones,
// 3/4 public and 1/2 internal, capacity about 3× the average load; most
// balancers placed freely, some by zone or tag, 3% HA pairs.
func scFleet(nDev, nBal, nTenants int) *schema.Spec {
	r := rand.New(rand.NewPCG(7, 7))
	zs := []string{"az-a", "az-b", "az-c"}
	public := netip.MustParsePrefix("198.18.0.0/17")
	internal := netip.MustParsePrefix("198.18.128.0/17")
	s := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{}}
	capB := 3*(nBal+nDev-1)/nDev + 10
	for i := 0; i < nDev; i++ {
		d := &schema.Device{Name: fmt.Sprintf("lb-%04d", i), Zone: zs[i%3],
			Capacity: schema.Capacity{Balancers: capB, Maxconn: capB * 10000}}
		switch i % 4 {
		case 2:
			d.Tags, d.VIPNetworks = []string{"internal"}, []netip.Prefix{internal}
		case 3:
			d.Tags, d.VIPNetworks = []string{"public", "internal"}, []netip.Prefix{public, internal}
		default:
			d.Tags, d.VIPNetworks = []string{"public"}, []netip.Prefix{public}
		}
		s.Devices[d.Name] = d
	}
	for i := 0; i < nBal; i++ {
		in := r.IntN(10) < 3
		p, tag := public, "public"
		if in {
			p, tag = internal, "internal"
		}
		a := p.Addr().As4()
		a[2], a[3] = byte(i>>8), byte(i)
		b := &schema.Balancer{Name: fmt.Sprintf("t%03d-svc-%04d", i%nTenants, i), Tenant: fmt.Sprintf("t%03d", i%nTenants),
			VIPs:  []schema.VIP{{Address: netip.AddrFrom4(a), Port: 80}},
			Nodes: []schema.Node{{Port: 8080, Weight: 1, Maxconn: 100 * r.IntN(10)}, {Port: 8080, Weight: 1}}}
		switch x := r.IntN(100); {
		case x < 3:
			z := r.IntN(3)
			b.Placement = schema.Placement{HA: true, Zones: []string{zs[z], zs[(z+1)%3]}}
		case x < 13:
			b.Placement.Zones = []string{zs[r.IntN(3)]}
		case x < 23:
			b.Placement.Tags = []string{tag}
		}
		s.Balancers[b.Name] = b
	}
	return s
}

func BenchmarkSchedule(b *testing.B) {
	s := scFleet(1000, 10000, 100)
	var prev Lock
	b.Run("fresh", func(b *testing.B) {
		c := cpuTime()
		for b.Loop() {
			l, _, err := Schedule(s, nil)
			if err != nil {
				b.Fatal(err)
			}
			prev = l
		}
		reportCPU(b, c)
	})
	b.Run("locked", func(b *testing.B) {
		c := cpuTime()
		for b.Loop() {
			if _, _, err := Schedule(s, prev); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, c)
	})
}

func TestScheduleFleetFits(t *testing.T) {
	if testing.Short() {
		t.Skip("large tree")
	}
	s := scFleet(1000, 10000, 100)
	l, st, err := Schedule(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.New != 10000 || len(l) != 10000 {
		t.Fatalf("stats %+v", st)
	}
	scCheckCapacity(t, s, l)
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}
