package reconcile

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/schema"
)

// TestNoMoreHAEmptiesKeepalived: a device that carried HA balancers and
// carries none now gets a keepalived.conf without instances (its old
// instances would keep claiming VIPs HAProxy no longer serves there), and
// the plan after that apply is empty.
func TestNoMoreHAEmptiesKeepalived(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	th.dev.Keepalived = schema.Keepalived{Config: filepath.Join(th.dir, "etc/keepalived.conf"), Check: "test -s"}
	cfg := testConfig(18080, 10)
	ka := string(withHeader([]byte("vrrp_instance vi_203.0.113.20 {\n    virtual_router_id 7\n}\n")))
	plan := func(rev string, ka string) *Plan {
		spec, res := th.result(rev, cfg)
		if ka != "" {
			res.Devices[th.dev.Name].Keepalived = []byte(ka)
		}
		p, err := BuildPlan(context.Background(), spec, res, th.dial, PlanOptions{IPCommand: th.ipCmd})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustApply(t, th, plan("rev1", ka))
	if th.read("etc/keepalived.conf") != ka {
		t.Fatalf("keepalived.conf: %q", th.read("etc/keepalived.conf"))
	}
	p := plan("rev2", "")
	d := p.Devices[0]
	if d.Status != StatusChanges || !d.Desired.ManageKeepalived || !strings.Contains(d.KeepalivedDiff, "-vrrp_instance vi_203.0.113.20 {") ||
		!strings.Contains(strings.Join(d.Notes, "\n"), "no HA balancer on this device any more") {
		t.Fatalf("plan: %s manage %v notes %q\n%s", d.Status, d.Desired.ManageKeepalived, d.Notes, d.KeepalivedDiff)
	}
	mustApply(t, th, p)
	if got := th.read("etc/keepalived.conf"); strings.Contains(got, "vrrp_instance") || !strings.Contains(got, "no HA balancer") {
		t.Errorf("keepalived.conf after: %q", got)
	}
	if d := plan("rev2", "").Devices[0]; d.Status != StatusUnchanged || len(d.Notes) != 0 {
		t.Errorf("plan after apply: %s %q %s", d.Status, d.Notes, d.KeepalivedDiff)
	}
	// A device that never had lbc's keepalived.conf is left alone.
	th.init("lb-b1")
	th.dev.Keepalived = schema.Keepalived{Config: filepath.Join(th.dir, "etc/keepalived.conf")}
	if d := plan("rev1", "").Devices[0]; d.Desired.ManageKeepalived || d.KeepalivedDiff != "" {
		t.Errorf("never-HA device: manage %v diff %q", d.Desired.ManageKeepalived, d.KeepalivedDiff)
	}
}

func TestGoneDevicesNoted(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	spec, res := th.result("rev1", testConfig(18080, 10))
	prev := compiler.Lock{
		"web": {Balancer: "web", Primary: "lb-a1"},
		"old": {Balancer: "old", Primary: "lb-gone", Standby: "lb-gone2"},
		"ha":  {Balancer: "ha", Primary: "lb-a1", Standby: "lb-gone"},
	}
	p, err := BuildPlan(context.Background(), spec, res, th.dial, PlanOptions{IPCommand: th.ipCmd, Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"device lb-gone not in the spec any more: not touched (its HAProxy, VIPs and state stay as they are)",
		"device lb-gone2 not in the spec any more: not touched (its HAProxy, VIPs and state stay as they are)",
	}
	if !slices.Equal(p.Notes, want) {
		t.Errorf("notes %q", p.Notes)
	}
}

// TestSubnetVIPRemovalReaddsWanted: a VIP an older lbc added with a
// subnet's prefix may be a subnet's primary, whose deletion deletes the
// secondaries: remove-vips then puts the wanted VIPs back. With /32 VIPs
// only, it does not.
func TestSubnetVIPRemovalReaddsWanted(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	cfg := testConfig(18080, 10)
	mustApply(t, th, th.plan("rev1", cfg, "203.0.113.10", "203.0.113.12"))
	finish := func() string {
		t.Helper()
		// The remove-vips step of the last change script (which also
		// carries the rollback script, with its own addr commands), as
		// the lock holder received it.
		in := th.srv.Input()
		i := strings.LastIndex(in, "lbc_step "+StepRemoveVIPs+"\n")
		if i < 0 {
			t.Fatal("no remove-vips script")
		}
		step, _, _ := strings.Cut(in[i+len("lbc_step "+StepRemoveVIPs+"\n"):], "# end of step "+StepRemoveVIPs)
		return step
	}
	// /32 only: .12 goes, nothing is re-added.
	mustApply(t, th, th.plan("rev2", cfg, "203.0.113.10"))
	if f := finish(); !strings.Contains(f, "addr del 203.0.113.12/32") || strings.Contains(f, "addr replace") {
		t.Errorf("remove-vips of a /32:\n%s", f)
	}
	// state.json as an older lbc wrote it: .10 as a /24.
	th.write("addrs", "127.0.0.1/8 lo\n192.0.2.99/24 eth0\n203.0.113.10/24 eth0\n", 0o644)
	th.write("state/state.json", strings.Replace(th.read("state/state.json"), "203.0.113.10/32", "203.0.113.10/24", 1), 0o644)
	p := th.plan("rev3", cfg, "203.0.113.10", "203.0.113.11")
	if d := p.Devices[0]; !slices.Equal(d.VIPsRemove, []string{"203.0.113.10/24 dev eth0"}) {
		t.Fatalf("remove %q add %q", d.VIPsRemove, d.VIPsAdd)
	}
	mustApply(t, th, p)
	if f := finish(); !strings.Contains(f, "addr del 203.0.113.10/24") || !strings.Contains(f, "addr replace 203.0.113.10/32") {
		t.Errorf("remove-vips of a /24 does not re-add the wanted VIPs:\n%s", f)
	}
	if got := th.read("addrs"); !strings.Contains(got, "203.0.113.10/32 eth0") || !strings.Contains(got, "203.0.113.11/32 eth0") || strings.Contains(got, "203.0.113.10/24") {
		t.Errorf("addresses: %q", got)
	}
}
