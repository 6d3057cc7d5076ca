package reconcile

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"lbc/reconcile/host"
)

// runScript runs s in the lock session ls, calling progress as each step
// starts, and returns what its output reported. On failure the report
// names the failed step (the first one when the script failed before any)
// and the error leaves out the script's text. It waits for the script's
// end, or the session's: the host bounds every step.
func runScript(s *host.Script, ls *lockSession, progress func(string)) (*host.Report, error) {
	rep := s.NewReport()
	cmd := s.String()
	st, err := ls.send(cmd)
	if err != nil {
		return rep, shortError(cmd, err)
	}
	defer st.Close()
	sc := bufio.NewScanner(st.Stdout())
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if p, ok := host.ParseProgress(sc.Text()); ok {
			progress(rep.Failed + ": " + p)
			continue
		}
		if step := rep.Line(sc.Text()); step != "" {
			progress(step)
		}
	}
	io.Copy(io.Discard, st.Stdout())
	if err := st.Wait(); err != nil {
		return rep, shortError(cmd, err)
	}
	return rep, rep.End()
}

// errSessionEnded is a script that found its lock session gone.
var errSessionEnded = errors.New("the lock session has ended")

// shortError drops the script text from an error: it says the exit status
// and what the script wrote on stderr.
func shortError(cmd string, err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(ee.Stderr)
		if ee.Code == host.ExitNotArmed {
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
