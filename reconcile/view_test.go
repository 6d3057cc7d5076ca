package reconcile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func samplePlan() *Plan {
	// The diff without the header line, as the golden files were made.
	body := func(cfg []byte) []byte { return cfg[bytes.IndexByte(cfg, '\n')+1:] }
	oldCfg, newCfg := testConfig(8080, 10), testConfig(8080, 20)
	h := Host{Address: "192.0.2.11", User: "root", Port: 22, StateDir: "/var/lib/lbc",
		Config: "/etc/haproxy/haproxy.cfg", Reload: "systemctl reload haproxy", Check: "haproxy -c -f", IP: "ip"}
	h2 := h
	h2.Address = "192.0.2.12"
	return &Plan{Format: PlanFormat, Revision: "0123abc", Devices: []DevicePlan{
		{
			Device: "lb-a1", Address: "192.0.2.11", Status: StatusChanges,
			ConfigDiff: UnifiedDiff("live/lb-a1/haproxy.cfg", "new/lb-a1/haproxy.cfg", body(oldCfg), body(newCfg)),
			VIPsAdd:    []string{"203.0.113.11/32 dev eth0"}, VIPsRemove: []string{"203.0.113.10/32 dev eth0"},
			Notes:        []string{"live haproxy.cfg is not the one lbc applied last (edited by hand, or an apply was interrupted)"},
			LiveRevision: "fedcba9",
			Fingerprints: map[string]string{"/etc/haproxy/haproxy.cfg": sha256Hex(body(oldCfg)), "/var/lib/lbc/state.json": "", addressesKey: sha256Hex(nil)},
			Desired:      Desired{Config: string(newCfg), VIPs: []string{"203.0.113.11/32 dev eth0"}, Wanted: []string{"203.0.113.11/32 dev eth0"}},
			Host:         h,
		},
		{Device: "lb-a2", Address: "192.0.2.12", Status: StatusUnchanged, Host: h2, Desired: Desired{Config: string(oldCfg)}},
		{Device: "lb-b1", Address: "192.0.2.13", Status: StatusUnreachable, Error: "plan lb-b1: connect lb-b1 (192.0.2.13:22): dial tcp 192.0.2.13:22: i/o timeout"},
	}}
}

func TestPlanFileRoundTrip(t *testing.T) {
	p := samplePlan()
	var b bytes.Buffer
	if err := p.Save(&b); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPlan(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	bad := strings.Replace(b.String(), `"format": 1`, `"format": 99`, 1)
	if _, err := LoadPlan(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("other format: %v", err)
	}
	if _, err := LoadPlan(strings.NewReader(`{"format":1,"devices":[],"secret":"x"}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

// TestPlanFileHoldsNoSecret saves a plan made over SSH with a key file and
// checks that neither the key nor its path is in it.
func TestPlanFileHoldsNoSecret(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	p := th.plan("rev1", testConfig(18080, 10), "203.0.113.10")
	var b bytes.Buffer
	p.Save(&b)
	key, _ := os.ReadFile(th.srv.KeyFile())
	for _, s := range []string{string(key), th.srv.KeyFile(), "PRIVATE KEY", filepath.Base(th.srv.KnownHostsFile())} {
		if strings.Contains(b.String(), s) {
			t.Errorf("plan file holds %q", s)
		}
	}
	// The loaded plan applies exactly.
	lp, err := LoadPlan(&b)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, th, lp)
	if th.read("etc/haproxy.cfg") != string(testConfig(18080, 10)) {
		t.Error("saved plan did not apply its config")
	}
}
