package host

import (
	"bufio"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// runSh runs text with /bin/sh and returns its stdout lines and whether it
// exited 0.
func runSh(t *testing.T, text string) ([]string, bool) {
	t.Helper()
	cmd := exec.Command("sh", "-c", text)
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, err == nil
}

// A script's markers, as a real shell prints them, tell the steps done,
// the one that failed, and a warning step's warning with its stderr; the
// script stops at the failed step.
func TestReportOfARealRun(t *testing.T) {
	s := newScript(false)
	s.step("one", "echo out-of-one")
	s.warnStep("two", "echo 'no socket' >&2; false", "two failed")
	s.step("three", "false")
	s.step("four", "echo never")
	lines, ok := runSh(t, stepFunc+s.String())
	if ok {
		t.Fatal("the script exited 0 with a failed step")
	}
	rep := s.NewReport()
	var started []string
	for _, l := range lines {
		if st := rep.Line(l); st != "" {
			started = append(started, st)
		}
	}
	if !slices.Equal(started, []string{"one", "two", "three"}) || !slices.Equal(rep.Done, []string{"one", "two"}) || rep.Failed != "three" {
		t.Errorf("started %q, done %q, failed %q", started, rep.Done, rep.Failed)
	}
	if !slices.Equal(rep.Warnings, []string{"two failed: no socket"}) {
		t.Errorf("warnings %q", rep.Warnings)
	}
	if got := string(rep.Output["one"]); got != "out-of-one\n" {
		t.Errorf("output of one %q", got)
	}

	// Every step ran: End clears Failed; one missing step is an error.
	s2 := newScript(false)
	s2.step("a", ":")
	s2.step("b", ":")
	lines, ok = runSh(t, stepFunc+s2.String())
	rep = s2.NewReport()
	for _, l := range lines {
		rep.Line(l)
	}
	if err := rep.End(); !ok || err != nil || rep.Failed != "" || !slices.Equal(rep.Done, []string{"a", "b"}) {
		t.Errorf("full run: ok %v, End %v, done %q, failed %q", ok, err, rep.Done, rep.Failed)
	}
	rep = s2.NewReport()
	rep.Line(StepMarker("a"))
	if err := rep.End(); err == nil {
		t.Error("End after one of two steps: no error")
	}
}

// A script cut short on its way to the host runs nothing: its body is a
// function called on its last line.
func TestScriptCutShortRunsNothing(t *testing.T) {
	s := newScript(false)
	s.step("one", "echo ran")
	text := Frame(s.String())
	for _, n := range []int{len(text) / 3, len(text) / 2, len(text) - 2} {
		lines, _ := runSh(t, stepFunc+"lbc_run() { lbc_script; }\n"+text[:n])
		if len(lines) > 0 {
			t.Errorf("cut at %d of %d: printed %q", n, len(text), lines)
		}
	}
}

func TestParseStepAndExit(t *testing.T) {
	if name, ok := ParseStep(StepMarker(StepSwap)); !ok || name != StepSwap {
		t.Errorf("ParseStep(StepMarker(swap)) = %q %v", name, ok)
	}
	if _, ok := ParseStep("==lbc stepswap"); ok {
		t.Error("ParseStep read a line that is no marker")
	}
	for _, c := range []struct {
		line string
		code int
		ok   bool
	}{
		{"==lbc exit 5eed 0", 0, true},
		{"==lbc exit 5eed 75", 75, true},
		{"==lbc exit 5eed x", 1, true},
		{"==lbc exit other 0", 0, false},
		{"==lbc exit 5eed0", 0, false},
	} {
		if code, ok := ParseExit(c.line, "5eed"); code != c.code || ok != c.ok {
			t.Errorf("ParseExit(%q) = %d %v, want %d %v", c.line, code, ok, c.code, c.ok)
		}
	}
}

// ParseRead takes anything a host may send without panicking, and what it
// accepts has its address list sorted.
func FuzzParseRead(f *testing.F) {
	f.Add([]byte("==lbc config present\naGVsbG8K\n==lbc config end\n==lbc state absent\n==lbc addr\n[]\n"))
	f.Add([]byte("==lbc state present\ne30K\n==lbc state end\n==lbc addr\n[{\"ifname\":\"lo\",\"addr_info\":[{\"local\":\"127.0.0.1\",\"prefixlen\":8}]}]\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		l, err := ParseRead(out)
		if err != nil {
			return
		}
		if !slices.IsSorted(l.Addresses) {
			t.Errorf("addresses not sorted: %q", l.Addresses)
		}
	})
}
