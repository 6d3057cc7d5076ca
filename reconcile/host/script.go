package host

import (
	"fmt"
	"strings"
	"time"
)

// Script is one remote command made of named steps, so that a
// transaction costs a few round trips instead of one per step while each
// step stays a unit that is reported, and that tests can fail or cut.
//
// Every step is written as
//
//	lbc_step NAME
//	{ BODY
//	} || exit 1
//	# end of step NAME
//
// lbc_step prints the step marker (StepMarker) before the body runs; the
// controller reads the markers as the script runs (Report), to report
// progress and to name the step that failed. A step whose failure is only
// a warning sends its stderr as its output and prints a warn-failed
// marker instead of ending the script.
//
// Scripts run in the lock holder's shell, one after another (see Prologue
// and Frame): a script never runs at the same time as another of its
// transaction or as the rollback that the holder runs when its session
// ends. A script has no stdin (/dev/null): what it writes on the host
// comes in its own text. From the holder it inherits lbc_step, $sd (the
// state directory) and the ignored SIGHUP and SIGPIPE, so a lost
// connection does not stop it half way: it ends, and the holder then rolls
// the host back if the transaction is still armed.
type Script struct {
	b     strings.Builder
	steps []string
	// warnings maps a warning step's name to its warning.
	warnings map[string]string
	// Notes are warnings known when the script was built.
	Notes []string
	// Bound is the longest the script's own waits may take (a drain's
	// timeout, say): the controller waits that long on top of its
	// --script-timeout before it gives the script up.
	Bound time.Duration
}

// ExitNotArmed is the exit code of a rollback script that found the
// transaction disarmed (the lock holder has rolled back already).
const ExitNotArmed = 75

// newScript starts a script; armed requires the rollback script to be in
// place.
func newScript(armed bool) *Script {
	s := &Script{}
	if armed {
		fmt.Fprintf(&s.b, `[ -s "$sd/txn.sh" ] || { echo "the transaction is not armed any more" >&2; exit %d; }`+"\n", ExitNotArmed)
	}
	return s
}

// step adds a step whose failure ends the script. body is shell code whose
// exit status is the step's.
func (s *Script) step(name, body string) {
	fmt.Fprintf(&s.b, "lbc_step %s\n{ %s\n} || exit 1\n# end of step %s\n", name, body, name)
	s.steps = append(s.steps, name)
}

// warnStep adds a step whose failure is reported as a warning, with what
// the body wrote on stderr (sent as the step's output: no subshell).
func (s *Script) warnStep(name, body, warning string) {
	fmt.Fprintf(&s.b, "lbc_step %s\n{ %s\n} 2>&1 >/dev/null || echo '%s'\n# end of step %s\n", name, body, warnFailedLine, name)
	s.steps = append(s.steps, name)
	if s.warnings == nil {
		s.warnings = map[string]string{}
	}
	s.warnings[name] = warning
}

// String is the script's text. Its body is a function called on the last
// line: a text cut short anywhere fails to parse or does not call it, so
// nothing of a partial script runs.
func (s *Script) String() string {
	return "lbc_main() {\n" + s.b.String() + "exit 0\n}\nlbc_main\n"
}

// Steps are the script's steps, in order.
func (s *Script) Steps() []string { return append([]string(nil), s.steps...) }

// Report is what a script's output says, read line by line.
type Report struct {
	s        *Script
	cur      string
	Done     []string          // steps that completed, in order
	Failed   string            // the step that was running (the first before any ran)
	Output   map[string][]byte // stdout of each step, markers removed
	Warnings []string
}

// NewReport starts reading the output of s.
func (s *Script) NewReport() *Report {
	return &Report{s: s, Failed: s.steps[0], Output: map[string][]byte{}}
}

// Line reads one line of the script's output (without its newline); it
// returns the step that starts there, "" when none does.
func (r *Report) Line(line string) (started string) {
	if name, ok := ParseStep(line); ok {
		if r.cur != "" {
			r.Done = append(r.Done, r.cur)
		}
		r.cur, r.Failed = name, name
		return name
	}
	if line == warnFailedLine && r.s.warnings[r.cur] != "" {
		w := r.s.warnings[r.cur]
		if msg := strings.Join(strings.Fields(string(r.Output[r.cur])), " "); msg != "" {
			w += ": " + msg
		}
		r.Warnings = append(r.Warnings, w)
		return ""
	}
	if r.cur != "" {
		r.Output[r.cur] = append(append(r.Output[r.cur], line...), '\n')
	}
	return ""
}

// End closes the report of a script that exited 0: the step running last
// completed, and every step must have run; Failed is then "".
func (r *Report) End() error {
	if r.cur != "" {
		r.Done = append(r.Done, r.cur)
		r.cur = ""
	}
	if len(r.Done) != len(r.s.steps) {
		return fmt.Errorf("script ended after %d of %d steps", len(r.Done), len(r.s.steps))
	}
	r.Failed = ""
	return nil
}
