package fleetsim

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// VIPNetwork holds the simulated balancers' VIPs (RFC 2544's benchmark
// range, as the lab's; the simulator never adds them to this machine).
const VIPNetwork = "198.18.0.0/15"

// WriteSpecs writes DIR/devices/sim.cue (every host) and
// DIR/balancers/sim.cue: one balancer a host, pinned to it, with one VIP
// and two nodes, the first of weight w.
func (f *Fleet) WriteSpecs(dir string, w int) error {
	for _, d := range []string{"devices", "balancers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "devices", "sim.cue"), []byte(f.DevicesCUE(VIPNetwork)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "balancers", "sim.cue"), []byte(f.BalancersCUE(w)), 0o644)
}

// BalancersCUE is one balancer a host (see WriteSpecs).
func (f *Fleet) BalancersCUE(w int) string {
	var b strings.Builder
	b.WriteString("package spec\n\n")
	vip := netip.MustParsePrefix(VIPNetwork).Addr()
	for _, h := range f.Hosts {
		vip = vip.Next()
		fmt.Fprintf(&b, "balancers: %q: {\n\ttenant: \"sim\"\n\tprotocol: \"http\"\n", "b-"+h.Name)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n", vip)
		fmt.Fprintf(&b, "\tnodes: [{address: \"198.51.100.11\", port: 8080, weight: %d}, {address: \"198.51.100.12\", port: 8080}]\n", w)
		fmt.Fprintf(&b, "\thealthMonitor: {type: \"http\", path: \"/\", expect: 200}\n\tplacement: device: %q\n}\n", h.Name)
	}
	return b.String()
}
