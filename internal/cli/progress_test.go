package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"lbc/reconcile"
)

// TestProgressView: 1,000 devices applied 10 at a time stay a display of
// at most three lines, redrawn in place at most every 200 ms: the counts,
// the devices working longest, the failed ones, with the rest counted.
func TestProgressView(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1e9, 0)
	now := func() time.Time { return clock }
	v := newProgressView(&out, 1000, now)
	draws := 0
	for i := range 1000 {
		dev := fmt.Sprintf("lb-%04d", i)
		for _, step := range []string{reconcile.StepConnect, reconcile.StepLock, reconcile.StepReload, reconcile.StepVerify} {
			v.Step(dev, step)
			clock = clock.Add(time.Millisecond)
		}
		r := reconcile.DeviceResult{Device: dev, Outcome: reconcile.OutcomeApplied}
		if i%250 == 7 {
			r.Outcome, r.Err = reconcile.OutcomeRolledBack, errors.New("reload: failed")
		}
		if i == 999 {
			v.Step("lb-slow", reconcile.StepVerify) // still working at the end
		}
		v.Done(r)
	}
	clock = clock.Add(2 * time.Second)
	v.Finish()
	// Frames are separated by "ESC[nA ESC[J": up over the n lines drawn, clear.
	frames := strings.Split(out.String(), "\x1b[J")
	for i, f := range frames {
		if i < len(frames)-1 {
			up := f[strings.LastIndex(f, "\x1b["):]
			f = strings.TrimSuffix(f, up)
			if want := fmt.Sprintf("\x1b[%dA", strings.Count(f, "\n")); up != want {
				t.Fatalf("frame %d: %d lines, then %q: want %q", i, strings.Count(f, "\n"), up, want)
			}
		}
		if n := strings.Count(f, "\n"); n > 3 || n < 1 {
			t.Fatalf("a frame of %d lines:\n%s", n, f)
		}
		draws++
	}
	// 5,000 events over 6 s of the fake clock: about 30 redraws, not 5,000.
	if draws > 35 {
		t.Errorf("%d redraws for 5,000 events in 6 s", draws)
	}
	last := frames[len(frames)-1]
	for _, want := range []string{
		"apply: 1000/1000 done in 6.0s: 996 applied, 4 rolled-back; 1 working\n",
		"  slowest: lb-slow verify 2.0s\n",
		"  not applied: lb-0007, lb-0257, lb-0507 (+1 more)\n",
	} {
		if !strings.Contains(last, want) {
			t.Errorf("final frame lacks %q:\n%s", want, last)
		}
	}
}

// TestApplyTextCompact: on a terminal, a large apply lists only the devices
// that were not applied (or have warnings) and counts the rest.
func TestApplyTextCompact(t *testing.T) {
	p := &reconcile.Plan{Revision: "abc"}
	r := &reconcile.ApplyResult{}
	for i := range 30 {
		d := reconcile.DeviceResult{Device: fmt.Sprintf("lb-%02d", i), Outcome: reconcile.OutcomeApplied}
		switch i {
		case 3:
			d.Outcome, d.Err = reconcile.OutcomeRolledBack, errors.New("apply lb-03: reload: failed")
		case 4:
			d.Warnings = []string{"save server state failed"}
		}
		r.Devices = append(r.Devices, d)
	}
	var out, errs bytes.Buffer
	if err := writeApplyText(&out, &errs, p, r, true); err != nil {
		t.Fatal(err)
	}
	want := "lb-03: rolled back\nlb-04: applied\nlb-04: warning: save server state failed\n" +
		"(28 applied or unchanged devices not listed; --json or output to a pipe lists every device)\n" +
		"apply: 29 applied, 0 unchanged, 1 rolled back, 0 failed, 0 skipped (revision abc)\n"
	if out.String() != want {
		t.Errorf("compact view:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	writeApplyText(&out, &errs, p, r, false)
	if n := strings.Count(out.String(), "\n"); n != 32 {
		t.Errorf("full view: %d lines, want 30 devices, a warning and the summary:\n%s", n, out.String())
	}
}

// The progress display goes to the terminal under the CLI's escaping
// stderr (termWriter), so its cursor movements redraw it instead of
// showing as text; what it shows is escaped by the display itself.
func TestProgressViewRawTerminal(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1e9, 0)
	v := newProgressView(rawTerm(termWriter{&out}), 2, func() time.Time { return clock })
	v.Step("lb-a1", reconcile.StepPlan)
	clock = clock.Add(time.Second)
	v.Step("lb-a1\x1b]0;x\a", reconcile.StepLock)
	v.Finish()
	s := out.String()
	if !strings.Contains(s, "\x1b[2A\x1b[J") {
		t.Errorf("no raw redraw (ESC[2A ESC[J) in %q", s)
	}
	if strings.Contains(s, `\x1b[`) {
		t.Errorf("the display's own escapes were escaped: %q", s)
	}
	if strings.Contains(s, "\x1b]0;") || !strings.Contains(s, `lb-a1\x1b]0;x`) {
		t.Errorf("a device name's control characters reached the terminal: %q", s)
	}
}
