package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capacity is the balancers capacity each lab device declares.
const Capacity = 100

// WriteDevices writes a CUE file (package spec) declaring every device of
// the lab with lbc's spec field names: address, ssh, zone, capacity,
// vipInterface "eth0", vipNetworks [VIPNetwork], haproxy and keepalived
// (config, reload, check) and stateDir.
func (l *Lab) WriteDevices(path string) error {
	if err := os.WriteFile(path, []byte(l.DevicesCUE()), 0o644); err != nil {
		return fmt.Errorf("lab %s: write devices: %w", l.Name, err)
	}
	return nil
}

// DevicesCUE returns what WriteDevices writes.
func (l *Lab) DevicesCUE() string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "// Devices of lbc lab %q: hosts in %s, VIPs in %s.\n", l.Name, l.Prefix, l.VIPNetwork)
	b.WriteString("// Written by the lab (internal/lab); it is rewritten on every start.\n")
	b.WriteString("package spec\n\n")
	for _, d := range l.Devices {
		fmt.Fprintf(&b, "devices: %s: {\n", q(d.Name))
		fmt.Fprintf(&b, "\taddress: %s\n", q(d.Address.String()))
		b.WriteString("\tssh: {user: \"root\", port: 22}\n")
		fmt.Fprintf(&b, "\tzone: %s\n", q(d.Zone))
		fmt.Fprintf(&b, "\tcapacity: {balancers: %d}\n", Capacity)
		b.WriteString("\tvipInterface: \"eth0\"\n")
		fmt.Fprintf(&b, "\tvipNetworks: [%s]\n", q(l.VIPNetwork.String()))
		fmt.Fprintf(&b, "\thaproxy: {\n\t\tconfig: %s\n\t\treload: %s\n\t\tcheck:  %s\n\t}\n", q(d.Config), q(d.Reload), q(d.Check))
		fmt.Fprintf(&b, "\tkeepalived: {\n\t\tconfig: %s\n\t\treload: %s\n\t\tcheck:  %s\n\t}\n", q(d.KeepalivedConfig), q(d.KeepalivedReload), q(d.KeepalivedCheck))
		fmt.Fprintf(&b, "\tstateDir: %s\n", q(d.StateDir))
		b.WriteString("}\n\n")
	}
	return b.String()
}
