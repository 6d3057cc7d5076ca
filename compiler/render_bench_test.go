package compiler

import (
	"fmt"
	"net/netip"
	"testing"

	"lbc/schema"
)

// benchSpec is a fleet of nd devices in 4 zones and nb balancers, one in
// twenty of them HA, each with 4 nodes, an HTTP monitor and cookie or source
// persistence every other one.
func benchSpec(nd, nb int) *schema.Spec {
	var devs []*schema.Device
	for i := 0; i < nd; i++ {
		d := testDevice(fmt.Sprintf("lb-%04d", i), "", fmt.Sprintf("az-%d", i%4))
		d.Address = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		d.VIPNetworks = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}
		devs = append(devs, d)
	}
	var bals []*schema.Balancer
	for i := 0; i < nb; i++ {
		vip := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		b := testBalancer(fmt.Sprintf("t%03d.svc-%05d", i/100, i), vip.String(), 443)
		b.Nodes = nil
		for n := 0; n < 4; n++ {
			b.Nodes = append(b.Nodes, schema.Node{Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Port: 8000 + n, Weight: 1 + n, Maxconn: 100})
		}
		if i%2 == 0 {
			b.Persistence = &schema.Persistence{Type: "cookie", Cookie: "SRV"}
		} else {
			b.Persistence = &schema.Persistence{Type: "source"}
		}
		if i%20 == 0 {
			b.Placement.HA = true
		}
		bals = append(bals, b)
	}
	return testSpec(devs, bals)
}

// BenchmarkRender renders every file of 1k devices carrying 10k balancers
// (500 of them HA pairs), the placement given: rendering only.
func BenchmarkRender(b *testing.B) {
	sp := benchSpec(1000, 10000)
	lock, _, err := Schedule(sp, Lock{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		devs, _, err := renderAll(sp, lock, Options{Version: "v1", Revision: "r1"})
		if err != nil {
			b.Fatal(err)
		}
		if len(devs) != 1000 {
			b.Fatal(len(devs))
		}
	}
}

// BenchmarkCompile is Compile of the same fleet with its lock: schedule + render.
func BenchmarkCompile(b *testing.B) {
	sp := benchSpec(1000, 10000)
	lock, _, err := Schedule(sp, Lock{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(sp, lock, Options{Version: "v1", Revision: "r1"}); err != nil {
			b.Fatal(err)
		}
	}
}
