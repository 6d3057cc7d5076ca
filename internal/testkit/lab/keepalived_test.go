package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestKeepalived runs keepalived on two devices with unicast VRRP peers and
// checks that the VIP fails over when the master stops.
func TestKeepalived(t *testing.T) {
	l := ForTest(t, Options{Devices: 2, Keepalived: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vip := l.VIP(2)
	for i, d := range l.Devices {
		peer := l.Devices[1-i]
		conf := fmt.Sprintf(`global_defs {
	router_id %s
	enable_script_security
}
vrrp_instance lab {
	state BACKUP
	interface eth0
	virtual_router_id 51
	priority %d
	advert_int 1
	unicast_src_ip %s
	unicast_peer {
		%s
	}
	virtual_ipaddress {
		%s/24 dev eth0
	}
}
`, d.Name, 150-50*i, d.Address, peer.Address, vip)
		if err := os.WriteFile(d.KeepalivedConfig, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Exec(ctx, i+1, "sh", "-c", d.KeepalivedCheck+" "+d.KeepalivedConfig); err != nil {
			t.Fatalf("%s: %v\n%s", d.KeepalivedCheck, err, out)
		}
	}
	// Device 1 through StartKeepalived; device 2 through its reload
	// command, as lbc's first apply of an HA config runs it: it must start
	// keepalived.
	if err := l.StartKeepalived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, 2, "sh", "-c", l.Devices[1].KeepalivedReload); err != nil {
		t.Fatalf("reload (start): %v\n%s", err, out)
	}
	if !l.KeepalivedRunning(2) {
		t.Fatal("the reload command did not start keepalived")
	}
	holder := func() (string, error) {
		var on []string
		for i, d := range l.Devices {
			out, err := l.Exec(ctx, i+1, "ip", "-o", "addr", "show", "dev", "eth0")
			if err != nil {
				return "", err
			}
			if strings.Contains(string(out), " "+vip.String()+"/24") {
				on = append(on, d.Name)
			}
		}
		if len(on) != 1 {
			return "", fmt.Errorf("VIP %s on %v", vip, on)
		}
		return on[0], nil
	}
	waitFor := func(want string) {
		t.Helper()
		start := time.Now()
		err := poll(ctx, 15*time.Second, func() error {
			got, err := holder()
			if err == nil && got != want {
				err = fmt.Errorf("VIP %s on %s", vip, got)
			}
			return err
		})
		if err != nil {
			t.Fatalf("want VIP on %s: %v", want, err)
		}
		t.Logf("VIP %s on %s after %v", vip, want, time.Since(start).Round(10*time.Millisecond))
	}
	waitFor(l.Devices[0].Name)
	// A reload through the spec's command keeps keepalived running.
	if out, err := l.Exec(ctx, 1, "sh", "-c", l.Devices[0].KeepalivedReload); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if err := l.StopKeepalived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(l.Devices[1].Name)
	if err := l.StartKeepalived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(l.Devices[0].Name)
	// Without a config (a rolled-back first apply), the reload command
	// stops keepalived.
	if err := os.Remove(l.Devices[1].KeepalivedConfig); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, 2, "sh", "-c", l.Devices[1].KeepalivedReload); err != nil {
		t.Fatalf("reload (no config): %v\n%s", err, out)
	}
	if err := poll(ctx, 5*time.Second, func() error {
		if l.KeepalivedRunning(2) {
			return fmt.Errorf("keepalived of %s still runs", l.Devices[1].Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
