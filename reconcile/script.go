package reconcile

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A script is one remote command made of named steps, so that a
// transaction costs a few round trips instead of one per step while each
// step stays a unit that is reported, and that tests can fail or cut.
//
// Every step is written as
//
//	lbc_step NAME
//	{ BODY; } || exit 1
//	# end of step NAME
//
// lbc_step prints "==lbc step NAME" before the body runs; the controller
// reads these markers as the script runs, to report progress and to name
// the step that failed. A step whose failure is only a warning sends its
// stderr as its output and prints "==lbc warn-failed" instead of ending
// the script.
//
// Scripts run in the lock holder's shell, one after another (see
// holderPrologue and holderTransport): a script never runs at the same time
// as another of its transaction or as the rollback that the holder runs
// when its session ends. A script has no stdin (/dev/null): what it writes
// on the host comes in its own text. From the holder it inherits lbc_step,
// $sd (the state directory) and the ignored SIGHUP and SIGPIPE, so a lost
// connection does not stop it half way: it ends, and the holder then rolls
// the host back if the transaction is still armed.
type script struct {
	b     strings.Builder
	steps []string
	// warnings maps a warnStep's name to its warning.
	warnings map[string]string
}

// exitSessionEnded is the exit code of a rollback script that found the
// transaction disarmed (the host has rolled back already).
const exitSessionEnded = 75

const stepFunc = `lbc_step() { echo "==lbc step $1" || :; }` + "\n"

// newScript starts a script, which runs in the lock holder's shell (see
// holderPrologue); armed requires the rollback script to be in place.
func newScript(armed bool) *script {
	s := &script{}
	if armed {
		fmt.Fprintf(&s.b, `[ -s "$sd/txn.sh" ] || { echo "the transaction is not armed any more" >&2; exit %d; }`+"\n", exitSessionEnded)
	}
	return s
}

// step adds a step whose failure ends the script. body is shell code whose
// exit status is the step's.
func (s *script) step(name, body string) {
	fmt.Fprintf(&s.b, "lbc_step %s\n{ %s\n} || exit 1\n# end of step %s\n", name, body, name)
	s.steps = append(s.steps, name)
}

// warnStep adds a step whose failure is reported as a warning, with what
// the body wrote on stderr (sent as the step's output: no subshell).
func (s *script) warnStep(name, body, warning string) {
	fmt.Fprintf(&s.b, "lbc_step %s\n{ %s\n} 2>&1 >/dev/null || echo '%s'\n# end of step %s\n", name, body, warnFailed, name)
	s.steps = append(s.steps, name)
	if s.warnings == nil {
		s.warnings = map[string]string{}
	}
	s.warnings[name] = warning
}

// warnFailed is the line a failed warnStep prints.
const warnFailed = "==lbc warn-failed"

// String is the script's text. Its body is a function called on the last
// line: a text cut short anywhere fails to parse or does not call it, so
// nothing of a partial script runs.
func (s *script) String() string {
	return "lbc_main() {\n" + s.b.String() + "exit 0\n}\nlbc_main\n"
}

// scriptResult is what a script reported.
type scriptResult struct {
	done     []string          // steps that completed, in order
	failed   string            // the step that failed ("" when none)
	output   map[string][]byte // stdout of each step, markers removed
	warnings []string
}

// run runs the script on t (a lock session's holderTransport), calling
// progress as each step starts. On failure it returns the failed step (the
// first one when the script failed before any) and an error without the
// script's text.
func (s *script) run(ctx context.Context, t Transport, progress func(string)) (*scriptResult, error) {
	res := &scriptResult{output: map[string][]byte{}}
	res.failed = s.steps[0]
	cmd := s.String()
	st, err := t.Stream(ctx, cmd)
	if err != nil {
		return res, shortError(cmd, err)
	}
	defer st.Close()
	cur := ""
	sc := bufio.NewScanner(st.Stdout())
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "==lbc step "); ok {
			if cur != "" {
				res.done = append(res.done, cur)
			}
			cur = name
			res.failed = name
			progress(name)
			continue
		}
		if line == warnFailed && s.warnings[cur] != "" {
			w := s.warnings[cur]
			if msg := strings.Join(strings.Fields(string(res.output[cur])), " "); msg != "" {
				w += ": " + msg
			}
			res.warnings = append(res.warnings, w)
			continue
		}
		if cur != "" {
			res.output[cur] = append(append(res.output[cur], line...), '\n')
		}
	}
	io.Copy(io.Discard, st.Stdout())
	if err := st.Wait(); err != nil {
		return res, shortError(cmd, err)
	}
	if cur != "" {
		res.done = append(res.done, cur)
	}
	if len(res.done) != len(s.steps) {
		return res, fmt.Errorf("script ended after %d of %d steps", len(res.done), len(s.steps))
	}
	res.failed = ""
	return res, nil
}

// errSessionEnded is a script that found its lock session gone.
var errSessionEnded = errors.New("the lock session has ended")

// shortError drops the script text from an error: it says the exit status
// and what the script wrote on stderr.
func shortError(cmd string, err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(ee.Stderr)
		if ee.Code == exitSessionEnded {
			return fmt.Errorf("%w: %s", errSessionEnded, msg)
		}
		if msg == "" {
			return fmt.Errorf("exit status %d", ee.Code)
		}
		return fmt.Errorf("exit status %d: %s", ee.Code, msg)
	}
	if errors.Is(err, ErrConnectionLost) {
		return ErrConnectionLost
	}
	if msg, ok := strings.CutPrefix(err.Error(), cmd+": "); ok {
		return &trimmedError{msg, err}
	}
	return err
}

// trimmedError is err with a shorter message.
type trimmedError struct {
	msg string
	err error
}

func (e *trimmedError) Error() string { return e.msg }
func (e *trimmedError) Unwrap() error { return e.err }

// newToken returns a random session token (hex).
func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
