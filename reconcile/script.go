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
	"time"

	"lbc/reconcile/host"
)

// runScript runs s in the lock session ls, calling progress as each step
// starts, and returns what its output reported. On failure the report
// names the failed step (the first one when the script failed before any)
// and the error leaves out the script's text.
//
// It waits for the script's end, the session's, or ctx's. When ctx ends
// first it closes the lock session: the host then runs the script on to
// its end, and the holder's armed rollback (txn.sh) unless the script
// committed. A ctx ended by scriptDeadline is reported as a timeout
// (errScriptTimeout, naming the step and the limit); a cancelled one as
// ErrConnectionLost, as a cut connection, which it is to the host.
func runScript(ctx context.Context, s *host.Script, ls *lockSession, progress func(string)) (*host.Report, error) {
	rep := s.NewReport()
	cmd := s.String()
	if ctx.Err() != nil {
		return rep, ctxError(ctx, rep)
	}
	st, err := ls.send(cmd)
	if err != nil {
		return rep, shortError(cmd, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { ls.Close() })
	defer stop()
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
	err = st.Wait()
	if !stop() && ctx.Err() != nil {
		// ctx ended first, and closed the session (a script that ended
		// meanwhile is reported as cut short: its exit line may be lost).
		return rep, ctxError(ctx, rep)
	}
	if err != nil {
		return rep, shortError(cmd, err)
	}
	return rep, rep.End()
}

// scriptDeadline is ctx bounded by d, for runScript: when d runs out, the
// script is reported as timed out at its step (see ctxError), with limit
// (the flag, or the bound) named.
func scriptDeadline(ctx context.Context, d time.Duration, limit string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, &scriptTimeout{d: d, limit: limit})
}

// scriptTimeout is the cause of a ctx that scriptDeadline ended.
type scriptTimeout struct {
	d     time.Duration
	limit string
}

func (e *scriptTimeout) Error() string { return "" }

// errScriptTimeout is a script that did not end within its deadline; its
// lock session was closed.
var errScriptTimeout = fmt.Errorf("%w", ErrTimeout)

// ctxError is the error of a script whose ctx ended before it did.
func ctxError(ctx context.Context, rep *host.Report) error {
	var to *scriptTimeout
	if errors.As(context.Cause(ctx), &to) {
		return fmt.Errorf("%w: step %s did not end within %s (%s); the lock session was closed: "+
			"the host finishes the script on its own, and its lock holder then rolls back "+
			"what is left armed (txn.sh); run lbc plan to see what it runs", errScriptTimeout, rep.Failed, to.d, to.limit)
	}
	return fmt.Errorf("%w (%w)", ErrConnectionLost, context.Cause(ctx))
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
