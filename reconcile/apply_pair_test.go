package reconcile

import (
	"context"
	"strings"
	"testing"

	"lbc/compiler"
)

// A pair is changed standby first; when the standby's change fails, the
// primary is not touched and keeps serving its old config.
func TestFailedStandbyStopsItsPrimary(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	standbyState := th.dev.StateDir
	ps := th.plan("rev1", testConfig(18080, 10))
	th.init("lb-b1")
	pp := th.plan("rev1", testConfig(18081, 10))
	primaryBefore := th.snap()
	p := &Plan{Format: PlanFormat, Revision: "rev1", Devices: []DevicePlan{ps.Devices[0], pp.Devices[0]},
		HAPairs: []compiler.Placement{{Balancer: "web", Primary: "lb-b1", Standby: "lb-a1"}}}
	// The standby's swap step fails (after its script staged and armed).
	f := func(cmd string) string {
		if !strings.Contains(cmd, standbyState) {
			return cmd
		}
		return strings.Replace(cmd, "lbc_step "+StepSwap+"\n{ ", "lbc_step "+StepSwap+"\n{ echo 'disk full' >&2; false; } && { ", 1)
	}
	th.inject.Store(&f)
	o := applyOpts("test")
	o.Waves = HAWaves(&compiler.Result{Placement: compiler.Lock{"web": p.HAPairs[0]}})
	r, err := Apply(context.Background(), p, th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Devices[0].Outcome != OutcomeRolledBack {
		t.Fatalf("standby: %s (%v), want rolled-back", r.Devices[0].Outcome, r.Devices[0].Err)
	}
	if r.Devices[1].Outcome != OutcomeSkipped || !strings.Contains(r.Devices[1].Err.Error(), "HA standby lb-a1 failed") {
		t.Fatalf("primary: %s (%v), want skipped because its standby failed", r.Devices[1].Outcome, r.Devices[1].Err)
	}
	if after := th.snap(); after != primaryBefore {
		t.Errorf("primary changed although its standby failed:\nbefore %v\nafter  %v", primaryBefore, after)
	}
}
