package compiler

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TestVIPJSONIsJSONMarshal: vips.json's hand-written lines are what
// encoding/json writes, for plain values and for those it escapes.
func TestVIPJSONIsJSONMarshal(t *testing.T) {
	addrs := []string{"203.0.113.7", "2001:db8::1", "::ffff:203.0.113.7", "0.0.0.0"}
	strs := []string{"eth0", "a<b", "x&y", `q"`, `b\s`, "é", "tab\there", "lb-a1.t000-svc-001", ""}
	for _, a := range addrs {
		for _, s := range strs {
			v := VIP{Address: netip.MustParseAddr(a), Prefix: 128, Interface: s, Balancer: s + "b", Role: s}
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendVIPJSON(nil, v)
			if err != nil || string(got) != "  "+string(want) {
				t.Errorf("appendVIPJSON(%+v) = %q, %v; want %q", v, got, err, "  "+string(want))
			}
		}
	}
	var zero VIP
	want, _ := json.Marshal(zero)
	if got, _ := appendVIPJSON(nil, zero); string(got) != "  "+string(want) {
		t.Errorf("zero VIP: %q, want %q", got, want)
	}
}

// TestRenderParallelSameAsSerial: devices rendered by renderAll (in
// parallel) are byte for byte those rendered one at a time, and the error
// of a bad fleet is the one of its first bad device by name, every time.
func TestRenderParallelSameAsSerial(t *testing.T) {
	sp := benchSpec(40, 400)
	lock, _, err := Schedule(sp, Lock{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Version: "v1", Revision: "r1"}
	devs, lay, err := renderAll(sp, lock, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sp.DeviceNames() {
		one, err := lay.render(sp, name, opts)
		if err != nil {
			t.Fatal(err)
		}
		d := devs[name]
		if string(d.HAProxyCfg) != string(one.HAProxyCfg) || string(d.VIPsJSON) != string(one.VIPsJSON) || string(d.Keepalived) != string(one.Keepalived) {
			t.Fatalf("%s: parallel and serial rendering differ", name)
		}
	}

	// Break the stateDir of every fifth device: the error names lb-0005.
	for i := 5; i < 40; i += 5 {
		sp.Devices[fmt.Sprintf("lb-%04d", i)].StateDir = "/var/lib/lbc x"
	}
	for range 20 {
		got, _, err := renderAll(sp, lock, opts)
		if err == nil || got != nil || !strings.HasPrefix(err.Error(), "render lb-0005: ") {
			t.Fatalf("renderAll = %d devices, %v; want the error of lb-0005", len(got), err)
		}
	}
}
