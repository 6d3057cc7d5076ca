package schema

import (
	"context"
	"strings"
	"testing"
)

func TestCheckDevices(t *testing.T) {
	good := &Device{Name: "lb-a1", Address: "192.0.2.11", SSH: SSH{User: "root", Port: 22}, StateDir: "/var/lib/lbc",
		HAProxy:    HAProxy{Config: "/etc/haproxy/haproxy.cfg", Reload: "systemctl reload haproxy", Check: "haproxy -c -f"},
		Keepalived: Keepalived{Config: "/etc/keepalived/keepalived.conf", Reload: "systemctl reload-or-restart keepalived", Check: "keepalived -t -f"}}
	if err := CheckDevices(context.Background(), []*Device{good}); err != nil {
		t.Fatalf("a spec's device: %v", err)
	}
	for _, tc := range []struct {
		edit func(d *Device)
		want string
	}{
		{func(d *Device) { d.HAProxy.Reload = "systemctl reload haproxy; $(touch /x)" }, `devices."lb-a1".haproxy.reload: `},
		{func(d *Device) { d.HAProxy.Check = "haproxy -c\ntouch /x -f" }, `devices."lb-a1".haproxy.check: `},
		{func(d *Device) { d.StateDir = "/var/lib/lbc'; touch /x; '" }, `devices."lb-a1".stateDir: `},
		{func(d *Device) { d.StateDir = "/var/lib/../lbc" }, `devices."lb-a1".stateDir: path "/var/lib/../lbc" is not clean`},
		{func(d *Device) { d.Address = "192.0.2.11 -oProxyCommand=x" }, `devices."lb-a1".address: `},
		{func(d *Device) { d.SSH.User = "root\nx" }, `devices."lb-a1".ssh.user: `},
		{func(d *Device) { d.Name = "lb\nglobal" }, `devices."lb\nglobal": invalid name`},
	} {
		d := *good
		tc.edit(&d)
		err := CheckDevices(context.Background(), []*Device{&d})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", d, err, tc.want)
		}
	}
}

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		def, s string
		ok     bool
	}{
		{DefPath, "/usr/sbin/ip", true},
		{DefPath, "touch /x; ip", false},
		{DefName, "shop-web", true},
		{DefName, "shop web", false},
		{DefInterface, "eth0", true},
		{DefInterface, "eth0;x", false},
	} {
		err := CheckValue(tc.def, tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("CheckValue(%s, %q): %v", tc.def, tc.s, err)
		}
	}
}
