package lab

import (
	"context"
	"path/filepath"
	"testing"

	"lbc/schema"
)

// TestDevicesCUE checks that the devices file the lab writes passes lbc's
// own schema and says what the lab runs.
func TestDevicesCUE(t *testing.T) {
	l := &Lab{Name: "demo", Index: 7, Dir: "/tmp/lbc-lab-demo-123"}
	l.Prefix, l.VIPNetwork, l.Gateway = addressing(l.Index)
	zones := []string{"az-a", "az-b", "az-c"}
	for i := 1; i <= 4; i++ {
		l.Devices = append(l.Devices, l.newDevice(i, zones[(i-1)%3]))
	}
	dir := t.TempDir()
	if err := l.WriteDevices(filepath.Join(dir, "devices.cue")); err != nil {
		t.Fatal(err)
	}
	spec, err := schema.LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("schema rejects the lab's devices:\n%v\n%s", err, l.DevicesCUE())
	}
	if len(spec.Devices) != 4 {
		t.Fatalf("%d devices, want 4", len(spec.Devices))
	}
	d := spec.Devices["demo-d4"]
	if d == nil {
		t.Fatal("no device demo-d4")
	}
	want := l.Devices[3]
	if d.Address != "198.18.14.14" || d.Zone != "az-a" || d.VIPInterface != "eth0" ||
		len(d.VIPNetworks) != 1 || d.VIPNetworks[0].String() != "198.18.15.0/24" ||
		d.HAProxy.Config != want.Config || d.HAProxy.Reload != want.Reload || d.HAProxy.Check != "haproxy -c -f" ||
		d.Keepalived.Config != want.KeepalivedConfig || d.Keepalived.Reload != want.KeepalivedReload ||
		d.StateDir != want.StateDir || d.Capacity.Balancers != Capacity || d.SSH.User != "root" || d.SSH.Port != 22 {
		t.Errorf("device demo-d4 = %+v\nfrom:\n%s", d, l.DevicesCUE())
	}
}
