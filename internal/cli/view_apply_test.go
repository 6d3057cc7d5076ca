package cli

import (
	"bytes"
	"errors"
	"testing"

	"lbc/internal/exitcode"
	"lbc/reconcile"
)

func TestApplyExitCode(t *testing.T) {
	for _, c := range []struct {
		outcomes []reconcile.Outcome
		want     int
	}{
		{nil, exitcode.OK},
		{[]reconcile.Outcome{reconcile.OutcomeApplied, reconcile.OutcomeUnchanged}, exitcode.OK},
		{[]reconcile.Outcome{reconcile.OutcomeFailedBeforeChange, reconcile.OutcomeUnchanged}, exitcode.Error},
		{[]reconcile.Outcome{reconcile.OutcomeSkipped}, exitcode.Error},
		{[]reconcile.Outcome{reconcile.OutcomeRefused, reconcile.OutcomeUnchanged}, exitcode.Error},
		{[]reconcile.Outcome{reconcile.OutcomeRolledBack, reconcile.OutcomeFailedBeforeChange}, exitcode.RolledBack},
		{[]reconcile.Outcome{reconcile.OutcomeApplied, reconcile.OutcomeRolledBack}, exitcode.Partial},
		{[]reconcile.Outcome{reconcile.OutcomeApplied, reconcile.OutcomeSkipped}, exitcode.Partial},
		{[]reconcile.Outcome{reconcile.OutcomeApplied, reconcile.OutcomeRefused}, exitcode.Partial},
		{[]reconcile.Outcome{reconcile.OutcomeFailed}, exitcode.Partial},
	} {
		r := &reconcile.ApplyResult{}
		for _, o := range c.outcomes {
			r.Devices = append(r.Devices, reconcile.DeviceResult{Outcome: o})
		}
		if got := applyExitCode(r); got != c.want {
			t.Errorf("%v: exit %d, want %d", c.outcomes, got, c.want)
		}
	}
}

func sampleApply() (*reconcile.Plan, *reconcile.ApplyResult) {
	p := &reconcile.Plan{Revision: "0123abc"}
	r := &reconcile.ApplyResult{Devices: []reconcile.DeviceResult{
		{Device: "lb-a1", Outcome: reconcile.OutcomeApplied, Steps: []string{"lock", "stale-check"}, Warnings: []string{"save server state: no socket"}},
		{Device: "lb-a2", Outcome: reconcile.OutcomeRolledBack, Steps: []string{"lock"}, Err: errors.New("apply lb-a2: reload: exit 1")},
		{Device: "lb-a3", Outcome: reconcile.OutcomeRefused, Err: errors.New("apply lb-a3: refused: host runs 0123456789ab, applying 0123abc: downgrade")},
		{Device: "lb-b1", Outcome: reconcile.OutcomeUnchanged},
	}}
	return p, r
}

func TestApplyViews(t *testing.T) {
	p, r := sampleApply()
	var out, errs bytes.Buffer
	if err := writeApplyText(&out, &errs, p, r, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply.txt", out.Bytes())
	golden(t, "apply.stderr", errs.Bytes())
	var js bytes.Buffer
	if err := writeApplyJSON(&js, p, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply.jsonl", js.Bytes())
}

// A saved plan is a file anyone may have edited: the names and revision it
// carries reach the apply view escaped; JSON keeps them as JSON.
func TestApplyViewEscapesPlanFileText(t *testing.T) {
	p := &reconcile.Plan{Revision: "rev\x1b]0;x\x07"}
	r := &reconcile.ApplyResult{Devices: []reconcile.DeviceResult{
		{Device: "lb\x1b[2J", Outcome: reconcile.OutcomeFailedBeforeChange, Warnings: []string{"w\x1b[31m"},
			Err: errors.New("apply lb: lock: locked by \x1b[2J")},
	}}
	var out, errs bytes.Buffer
	if err := writeApplyText(&out, &errs, p, r, false); err != nil {
		t.Fatal(err)
	}
	want := "lb\\x1b[2J: failed-before-change\nlb\\x1b[2J: warning: w\\x1b[31m\n" +
		"apply: 0 applied, 0 unchanged, 0 rolled back, 1 failed, 0 skipped (revision rev\\x1b]0;x\\x07)\n"
	if out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if want := "apply lb: lock: locked by \\x1b[2J\n"; errs.String() != want {
		t.Errorf("stderr %q, want %q", errs.String(), want)
	}
	var js bytes.Buffer
	writeApplyJSON(&js, p, r)
	if !bytes.Contains(js.Bytes(), []byte(`"device":"lb\u001b[2J"`)) {
		t.Errorf("JSON %s", js.String())
	}
}
