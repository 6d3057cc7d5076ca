package reconcile

import (
	"context"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/schema"
)

// A device whose handling panics (a bug, or data from a host that trips
// one) fails alone with an error naming it; the other devices of the run
// are planned, applied and read as usual.
func TestWorkerPanicIsAPerDeviceError(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	spec, res := th.result("rev1", testConfig(18080, 10))
	bad := &schema.Device{Name: "lb-bad", Address: "192.0.2.66", StateDir: "/var/lib/lbc", HAProxy: th.dev.HAProxy}
	spec.Devices["lb-bad"] = bad
	res.Devices["lb-bad"] = &compiler.DeviceArtifacts{Device: "lb-bad", HAProxyCfg: testConfig(18081, 10)}
	dial := func(ctx context.Context, ep Endpoint) (Transport, error) {
		if ep.Device == "lb-bad" {
			var m map[string]int
			m["boom"]++ // panics: assignment to a nil map
		}
		return th.dial(ctx, ep)
	}
	p, err := BuildPlan(context.Background(), spec, res, dial, PlanOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Devices[0]; d.Device != "lb-a1" || d.Status != StatusChanges {
		t.Fatalf("plan lb-a1: %s %s", d.Status, d.Error)
	}
	if d := p.Devices[1]; d.Status != StatusError || !strings.HasPrefix(d.Error, "plan lb-bad: internal error (please report it): panic: assignment to entry in nil map (at lbc/reconcile.") {
		t.Fatalf("plan lb-bad: %s %q", d.Status, d.Error)
	}

	// Apply: the panicking device gets a status to apply, as a plan
	// made before the bug would give it.
	p.Devices[1].Status, p.Devices[1].Error = StatusChanges, ""
	p.Devices[1].Host = hostOf(bad, "")
	r, err := Apply(context.Background(), p, dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Errorf("apply lb-a1: %s (%v)", d.Outcome, d.Err)
	}
	if d := r.Devices[1]; d.Outcome != OutcomeFailed || d.Err == nil || !strings.Contains(d.Err.Error(), "apply lb-bad: internal error (please report it): panic") {
		t.Errorf("apply lb-bad: %s (%v)", d.Outcome, d.Err)
	}

	st, err := ReadStatus(context.Background(), spec, res, dial, StatusOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	if s := st[1]; s.Sync != SyncError || !strings.Contains(s.Error, "status lb-bad: internal error (please report it): panic") {
		t.Errorf("status lb-bad: %s %q", s.Sync, s.Error)
	}
	if s := st[0]; s.Error != "" {
		t.Errorf("status lb-a1: %s %q", s.Sync, s.Error)
	}
}
