package schema

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary text as a balancer file beside a valid device
// file: Load must not panic, and every diagnostic must name a file of the
// tree with a line and column.
func FuzzLoad(f *testing.F) {
	f.Add(`balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}`)
	f.Add(`balancers: "web\n#x": {vips: [{address: "203.0.113.10", port: 0}], nodes: []}`)
	f.Add(`balancers: web: {healthMonitor: {type: "http", path: "/${X}"}, placement: device: "lb-b1"}`)
	f.Add(`package spec
import "strings"
for i in [1, 2] { balancers: "b\(i)": {vips: [{address: "203.0.113.\(i)", port: 80}], nodes: [{address: strings.ToLower("X"), port: 1}]} }`)
	f.Add(`balancers: web: _|_`)
	f.Add(`devices: "lb-a1": address: "192.0.2.99"`)
	f.Add(`scheduler: costs: spread: -1, loadbalancers: {}`)
	f.Add(`balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}], timeouts: connect: "1m1h"}`)
	f.Fuzz(func(t *testing.T, src string) {
		fsys := fstest.MapFS{
			"devices/d.cue":   {Data: []byte(`devices: "lb-a1": {address: "192.0.2.11", vipNetworks: ["203.0.113.0/24"]}`)},
			"balancers/b.cue": {Data: []byte(src)},
		}
		spec, err := Load(context.Background(), fsys)
		if err == nil {
			if spec == nil || spec.Devices["lb-a1"] == nil {
				t.Fatalf("no error and no spec")
			}
			return
		}
		var ds Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("error is %T, not Diagnostics: %v", err, err)
		}
		if len(ds) == 0 {
			t.Fatal("empty Diagnostics returned as error")
		}
		for _, d := range ds {
			if !d.Pos.IsValid() || fsys[d.File] == nil || d.Col < 1 {
				t.Errorf("diagnostic without a valid position: %q", d.String())
			}
			for _, r := range d.String() {
				if r < 0x20 || r == 0x7f {
					t.Errorf("control character in diagnostic %q", d.String())
				}
			}
		}
	})
}
