package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"lbc/reconcile"
)

// progressView shows an apply's progress on a terminal in three lines at
// most, redrawn in place (at most every redrawEvery), whatever the number
// of devices: how many are done, by outcome, and how many are working;
// the devices working the longest, with their step; the devices that
// failed (the first few, then how many more). The per-device lines are
// for --json and for output that is not a terminal.
type progressView struct {
	mu       sync.Mutex
	w        io.Writer
	total    int
	now      func() time.Time
	start    time.Time
	started  map[string]time.Time // devices working → when they started
	step     map[string]string    // their current step
	outcomes map[reconcile.Outcome]int
	failed   []string
	drawn    int       // lines drawn last
	last     time.Time // when
}

const (
	redrawEvery  = 200 * time.Millisecond
	progressShow = 3 // slowest and failed devices named
)

func newProgressView(w io.Writer, total int, now func() time.Time) *progressView {
	return &progressView{w: w, total: total, now: now, start: now(),
		started: map[string]time.Time{}, step: map[string]string{}, outcomes: map[reconcile.Outcome]int{}}
}

// Step records that dev started step (ApplyOptions.Progress).
func (v *progressView) Step(dev, step string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.started[dev]; !ok {
		v.started[dev] = v.now()
	}
	v.step[dev] = step
	v.draw(false)
}

// Done records a device's result (ApplyOptions.Done).
func (v *progressView) Done(r reconcile.DeviceResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.started, r.Device)
	delete(v.step, r.Device)
	v.outcomes[r.Outcome]++
	if r.Outcome != reconcile.OutcomeApplied && r.Outcome != reconcile.OutcomeUnchanged {
		v.failed = append(v.failed, r.Device)
	}
	v.draw(false)
}

// above clears the display, calls write (which prints above it, on the
// same terminal) and draws the display again below.
func (v *progressView) above(write func() error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.drawn > 0 {
		fmt.Fprintf(v.w, "\x1b[%dA\x1b[J", v.drawn) // up, and clear to the end
		v.drawn = 0
	}
	err := write()
	v.draw(true)
	return err
}

// Finish draws the final state.
func (v *progressView) Finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.draw(true)
}

// draw replaces the lines drawn last by the current ones, unless it drew
// less than redrawEvery ago. Call with v.mu held.
func (v *progressView) draw(force bool) {
	now := v.now()
	if !force && v.drawn > 0 && now.Sub(v.last) < redrawEvery {
		return
	}
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.drawn) // up, and clear to the end
	}
	lines := v.lines(now)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	io.WriteString(v.w, b.String())
	v.drawn, v.last = len(lines), now
}

// lines is the display at now. Device names come from the spec (the
// schema's names) or a saved plan (checked with the same rules) and steps
// from reconcile; they are escaped all the same, as the display is
// written to the terminal itself (rawTerm).
func (v *progressView) lines(now time.Time) []string {
	done := 0
	for _, n := range v.outcomes {
		done += n
	}
	var parts []string
	for _, o := range []reconcile.Outcome{reconcile.OutcomeApplied, reconcile.OutcomeUnchanged, reconcile.OutcomeRolledBack,
		reconcile.OutcomeFailedBeforeChange, reconcile.OutcomeFailed, reconcile.OutcomeRefused, reconcile.OutcomeSkipped} {
		if n := v.outcomes[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	head := fmt.Sprintf("apply: %d/%d done in %.1fs", done, v.total, now.Sub(v.start).Seconds())
	if len(parts) > 0 {
		head += ": " + strings.Join(parts, ", ")
	}
	head += fmt.Sprintf("; %d working", len(v.started))
	out := []string{head}
	if len(v.started) > 0 {
		devs := make([]string, 0, len(v.started))
		for d := range v.started {
			devs = append(devs, d)
		}
		sort.Slice(devs, func(i, j int) bool {
			ti, tj := v.started[devs[i]], v.started[devs[j]]
			if !ti.Equal(tj) {
				return ti.Before(tj)
			}
			return devs[i] < devs[j]
		})
		var s []string
		for _, d := range devs[:min(progressShow, len(devs))] {
			s = append(s, fmt.Sprintf("%s %s %.1fs", termLine(d), termLine(v.step[d]), now.Sub(v.started[d]).Seconds()))
		}
		out = append(out, "  slowest: "+strings.Join(s, ", "))
	}
	if len(v.failed) > 0 {
		l := "  not applied: " + termLine(strings.Join(v.failed[:min(progressShow, len(v.failed))], ", "))
		if n := len(v.failed) - progressShow; n > 0 {
			l += fmt.Sprintf(" (+%d more)", n)
		}
		out = append(out, l)
	}
	return out
}
