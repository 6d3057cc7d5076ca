package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"lbc/internal/exitcode"
	"lbc/reconcile"
)

// applyExitCode is the exit code of an apply: 0 when every device was
// applied or had nothing to do; 4 (partial) when some device changed while
// another failed, was refused or skipped, or when a rollback failed; 3
// when devices were rolled back and none applied; 1 when nothing changed
// anywhere.
func applyExitCode(r *reconcile.ApplyResult) int {
	n := applyCounts(r)
	bad := n[reconcile.OutcomeRolledBack] + n[reconcile.OutcomeFailedBeforeChange] + n[reconcile.OutcomeFailed] +
		n[reconcile.OutcomeSkipped] + n[reconcile.OutcomeRefused]
	switch {
	case bad == 0:
		return exitcode.OK
	case n[reconcile.OutcomeApplied] > 0 || n[reconcile.OutcomeFailed] > 0:
		return exitcode.Partial
	case n[reconcile.OutcomeRolledBack] > 0:
		return exitcode.RolledBack
	}
	return exitcode.Error
}

func applyCounts(r *reconcile.ApplyResult) map[reconcile.Outcome]int {
	n := map[reconcile.Outcome]int{}
	for _, d := range r.Devices {
		n[d.Outcome]++
	}
	return n
}

// applyDeviceRecord is one device line of apply --json.
type applyDeviceRecord struct {
	Type     string            `json:"type"` // "device"
	Device   string            `json:"device"`
	Outcome  reconcile.Outcome `json:"outcome"`
	Steps    []string          `json:"steps"` // completed, in order
	Warnings []string          `json:"warnings,omitempty"`
	Error    string            `json:"error,omitempty"`
	// Runtime, for a device applied without a reload: its operations and
	// its worker's pid, the same before and after.
	Runtime *reconcile.RuntimeApply `json:"runtime,omitempty"`
}

// applySummaryRecord is the last line of apply --json.
type applySummaryRecord struct {
	Type               string `json:"type"` // "summary"
	Revision           string `json:"revision"`
	Applied            int    `json:"applied"`
	Unchanged          int    `json:"unchanged"`
	RolledBack         int    `json:"rolledBack"`
	FailedBeforeChange int    `json:"failedBeforeChange"`
	Failed             int    `json:"failed"`
	Skipped            int    `json:"skipped"`
	Refused            int    `json:"refused"`
	ExitCode           int    `json:"exitCode"`
}

// writeApplyJSON writes one JSON object a line: one per device (type
// "device"), then the summary (type "summary").
func writeApplyJSON(w io.Writer, p *reconcile.Plan, r *reconcile.ApplyResult) error {
	enc := json.NewEncoder(w)
	for _, d := range r.Devices {
		rec := applyDeviceRecord{Type: "device", Device: d.Device, Outcome: d.Outcome, Steps: d.Steps, Warnings: d.Warnings, Runtime: d.Runtime}
		if rec.Steps == nil {
			rec.Steps = []string{}
		}
		if d.Err != nil {
			rec.Error = d.Err.Error()
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	n := applyCounts(r)
	return enc.Encode(applySummaryRecord{Type: "summary", Revision: p.Revision,
		Applied: n[reconcile.OutcomeApplied], Unchanged: n[reconcile.OutcomeUnchanged],
		RolledBack: n[reconcile.OutcomeRolledBack], FailedBeforeChange: n[reconcile.OutcomeFailedBeforeChange],
		Failed: n[reconcile.OutcomeFailed], Skipped: n[reconcile.OutcomeSkipped], Refused: n[reconcile.OutcomeRefused],
		ExitCode: applyExitCode(r)})
}

// compactAbove is how many devices an apply lists one a line on a
// terminal; above it the applied and unchanged ones (without warnings)
// are only counted.
const compactAbove = 20

// writeApplyText writes the human view of an apply: on out, one line per
// device ("lb-a1: applied", "lb-a2: rolled back") with its warnings, then
// the summary; on errs, each device's error ("apply lb-a2: reload: ...").
// Warnings and errors carry what hosts said: escaped (term.go). compact
// leaves out the lines of applied and unchanged devices without warnings.
func writeApplyText(out, errs io.Writer, p *reconcile.Plan, r *reconcile.ApplyResult, compact bool) error {
	quiet := 0
	for _, d := range r.Devices {
		if compact && (d.Outcome == reconcile.OutcomeApplied || d.Outcome == reconcile.OutcomeUnchanged) && len(d.Warnings) == 0 {
			quiet++
			continue
		}
		outcome := string(d.Outcome)
		if d.Outcome == reconcile.OutcomeRolledBack {
			outcome = "rolled back"
		}

		// A device name may come from a saved plan, a file: escaped too.
		dev := termLine(d.Device)
		if _, err := fmt.Fprintf(out, "%s: %s\n", dev, outcome); err != nil {
			return err
		}
		if rt := d.Runtime; rt != nil && d.Outcome == reconcile.OutcomeApplied {
			fmt.Fprintf(out, "%s: at runtime, no reload: %d operation(s); worker pid %d, the same before and after\n", dev, len(rt.Ops), rt.Pid)
		}
		for _, w := range d.Warnings {
			fmt.Fprintf(out, "%s: warning: %s\n", dev, indentText(w, "    "))
		}
		if d.Err != nil {
			fmt.Fprintln(errs, termText(d.Err.Error()))
		}
	}
	n := applyCounts(r)
	sum := fmt.Sprintf("%d applied, %d unchanged, %d rolled back, %d failed, %d skipped",
		n[reconcile.OutcomeApplied], n[reconcile.OutcomeUnchanged], n[reconcile.OutcomeRolledBack],
		n[reconcile.OutcomeFailed]+n[reconcile.OutcomeFailedBeforeChange], n[reconcile.OutcomeSkipped])
	if k := n[reconcile.OutcomeRefused]; k > 0 {
		sum += fmt.Sprintf(", %d refused", k)
	}
	if quiet > 0 {
		fmt.Fprintf(out, "(%d applied or unchanged devices not listed; --json or output to a pipe lists every device)\n", quiet)
	}
	_, err := fmt.Fprintf(out, "apply: %s (revision %s)\n", sum, termLine(orNone(p.Revision)))
	return err
}
