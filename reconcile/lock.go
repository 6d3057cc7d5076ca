package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"lbc/reconcile/host"
)

// Locks keeps the device locks a plan took (PlanLock.Held), each with its
// connection and what its holder read, for the transactions of Apply
// (ApplyOptions.Locks): what the plan read under a lock is what the
// transaction finds, and the lock and the read cost one round trip.
// Connections are Conns'; a held lock owns the Transport it was taken on
// and closes it when it is released.
type Locks struct {
	mu   sync.Mutex
	held map[string]*heldLock // by device
}

// heldLock is a device lock a plan took, waiting for the device's
// transaction.
type heldLock struct {
	ep   Endpoint
	t    Transport // the connection of the lock session
	ls   *lockSession
	live *Live
}

// NewLocks returns an empty set of held locks.
func NewLocks() *Locks { return &Locks{held: map[string]*heldLock{}} }

// put keeps hl for its device's transaction, releasing one held before.
func (l *Locks) put(hl *heldLock) {
	l.mu.Lock()
	old := l.held[hl.ep.Device]
	l.held[hl.ep.Device] = hl
	l.mu.Unlock()
	if old != nil {
		old.release()
	}
}

// take returns, and forgets, the lock held for device; nil when there is
// none (or l is nil).
func (l *Locks) take(device string) *heldLock {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	hl := l.held[device]
	delete(l.held, device)
	return hl
}

// Release releases the locks held for every device that keep does not
// name (every one when keep is nil), at once.
func (l *Locks) Release(keep func(device string) bool) {
	l.mu.Lock()
	var rel []*heldLock
	for dev, hl := range l.held {
		if keep == nil || !keep(dev) {
			rel = append(rel, hl)
			delete(l.held, dev)
		}
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, hl := range rel {
		wg.Add(1)
		go func() { defer wg.Done(); hl.release() }()
	}
	wg.Wait()
}

// ReleaseUnchanged releases the locks a plan took on the devices that plan
// has nothing to apply to (any status but changes), as soon as the plan is
// known; the others stay held for their transactions.
func (l *Locks) ReleaseUnchanged(plan *Plan) {
	changes := map[string]bool{}
	for _, d := range plan.Devices {
		changes[d.Device] = d.Status == StatusChanges
	}
	l.Release(func(dev string) bool { return changes[dev] })
}

// Close releases every lock still held.
func (l *Locks) Close() error {
	l.Release(nil)
	return nil
}

// release ends the lock session and closes its connection.
func (hl *heldLock) release() {
	release(hl.ls)
	hl.t.Close()
}

// lockedRead parses what a lock holder read under the lock (takeLock's
// read: nil when the read failed on the host).
func lockedRead(read []byte) (*Live, error) {
	if read == nil {
		return nil, errors.New("read live state on the host failed")
	}
	return host.ParseRead(read)
}

// lockSession is the lock holder's session (host.LockCommand): it holds
// the device lock and runs the transaction's scripts (send).
type lockSession struct {
	Stream
	lines chan string // the holder's stdout, line by line; closed at its end
	token string
}

// takeLock takes <stateDir>/lock with flock, held by a session whose stdin
// stays open until it is closed; the lock ends with the session. The
// holder then reads the device (as ReadLive does) in the same round trip;
// read is that output, nil when the read failed on the host.
//
// Every wait is bounded: the holder's start (login, shell, the state
// directory's check) by lim's StartTimeout on top of the lock's own wait,
// the read by its ReadTimeout and MaxRead. The host refuses an unsafe
// state directory before flock (host.ExitUnsafeStateDir): ErrUnsafeStateDir.
func takeLock(ctx context.Context, t Transport, h Host, device, owner, token string, wait time.Duration, keepalived bool, files []string, lim Limits) (*lockSession, []byte, error) {
	st, err := t.Stream(ctx, host.LockCommand(h, wait))
	if err != nil {
		return nil, nil, err
	}
	// The holder's shell reads this once flock has the lock. Should the
	// write fail, the session has ended: the reads below tell why.
	ls := &lockSession{Stream: st, lines: make(chan string, 64), token: token}
	io.WriteString(st.Stdin(), host.Prologue(h, owner, token, keepalived, files))
	tooLong := make(chan struct{})
	go func() {
		defer close(ls.lines)
		br := bufio.NewReaderSize(st.Stdout(), 64<<10)
		var l []byte
		for {
			chunk, err := br.ReadSlice('\n')
			if len(l)+len(chunk) > maxLine {
				close(tooLong) // a host that sends a line without end
				return
			}
			l = append(l, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return
			}
			ls.lines <- strings.TrimSuffix(string(l), "\n")
			l = l[:0]
		}
	}()
	type line struct {
		s   string
		eof bool
	}
	next := func(timer <-chan time.Time) (line, error) {
		select {
		case l, ok := <-ls.lines:
			if !ok {
				select {
				case <-tooLong:
					return line{}, fmt.Errorf("%w: a line of more than %d bytes", ErrOutputTooLarge, maxLine)
				default:
				}
			}
			return line{s: l, eof: !ok}, nil
		case <-tooLong:
			return line{}, fmt.Errorf("%w: a line of more than %d bytes", ErrOutputTooLarge, maxLine)
		case <-timer:
			return line{}, ErrTimeout
		case <-ctx.Done():
			return line{}, ctx.Err()
		}
	}
	start := time.NewTimer(wait + lim.startTimeout())
	defer start.Stop()
	l, err := next(start.C)
	switch {
	case errors.Is(err, ErrTimeout):
		st.Close()
		return nil, nil, fmt.Errorf("%w: the lock holder on %s did not start within %s (its login or shell is slow; raise --start-timeout)",
			ErrTimeout, h.Address, lim.startTimeout()+wait)
	case err != nil:
		st.Close()
		return nil, nil, err
	case l.s == host.LockedLine:
		// The read, ended by host.ReadOKLine (or failed), bounded in
		// time and size.
		read := time.NewTimer(lim.readTimeout())
		defer read.Stop()
		var b bytes.Buffer
		for {
			l, err := next(read.C)
			// A host that sends too much or too slowly is cut off: the
			// session is closed at once (nothing is armed yet), not
			// released, which would wait for a holder that may never end.
			switch {
			case errors.Is(err, ErrTimeout):
				st.Close()
				return nil, nil, fmt.Errorf("%s: %w: %s did not send its read within %s (--read-timeout)", StepStaleCheck, ErrTimeout, h.Address, lim.readTimeout())
			case err != nil:
				st.Close()
				return nil, nil, fmt.Errorf("%s: %w", StepStaleCheck, err)
			case l.eof:
				return ls, nil, fmt.Errorf("%s: the lock holder ended: %w", StepStaleCheck, ErrConnectionLost)
			case l.s == host.StepMarker(StepStaleCheck):
			case l.s == host.ReadOKLine:
				return ls, b.Bytes(), nil
			case l.s == host.ReadFailedLine:
				return ls, nil, nil
			default:
				if int64(b.Len()+len(l.s)+1) > lim.maxRead() {
					st.Close()
					return nil, nil, fmt.Errorf("%s: %w: %s sent more than %d bytes (--max-read)", StepStaleCheck, ErrOutputTooLarge, h.Address, lim.maxRead())
				}
				b.WriteString(l.s)
				b.WriteByte('\n')
			}
		}
	case !l.eof:
		st.Close()
		return nil, nil, fmt.Errorf("lock holder: unexpected first line %q", l.s)
	}
	// The holder ended without taking the lock (flock found it busy, or
	// the state directory was refused): its exit status says why. It may
	// come after the end of its output, and closing the session first
	// would lose it (a busy lock reported as a lost connection): wait for
	// it, bounded.
	werr := make(chan error, 1)
	go func() { werr <- st.Wait() }()
	select {
	case err = <-werr:
	case <-time.After(10 * time.Second):
		err = errors.New("no exit status")
	case <-ctx.Done():
	}
	st.Close()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	var ee *ExitError
	switch {
	case errors.As(err, &ee) && ee.Code == host.ExitUnsafeStateDir:
		return nil, nil, fmt.Errorf("%w: %s", ErrUnsafeStateDir, strings.TrimSpace(ee.Stderr))
	case errors.As(err, &ee) && ee.Code == 1: // flock exits 1 when the lock is busy
	case err == nil:
		return nil, nil, errors.New("lock holder ended without taking the lock")
	default:
		return nil, nil, err
	}
	out, _ := t.Run(ctx, host.OwnerCommand(h), nil)
	who := strings.TrimSpace(string(out))
	if who == "" {
		who = "an unknown owner"
	}
	return nil, nil, &lockedError{device, who}
}

// ErrUnsafeStateDir is a state directory the host refused to trust (see
// host.LockCommand): a symlink, a shared directory, owned by another user,
// or writable by others. Nothing in it ran.
var ErrUnsafeStateDir = errors.New("unsafe state directory")

// send sends script to the lock holder, which runs it with sh
// (host.Frame): a script costs no session, and the holder runs them one
// after another. The returned Stream's stdout is the script's up to the
// holder's exit line; the script has no stdin.
func (ls *lockSession) send(script string) (Stream, error) {
	if _, err := io.WriteString(ls.Stdin(), host.Frame(script)); err != nil {
		return nil, fmt.Errorf("send script: %w", ErrConnectionLost)
	}
	pr, pw := io.Pipe()
	hs := &holderStream{stdout: pr, done: make(chan struct{})}
	stderrLine := host.StderrLine(ls.token)
	go func() {
		defer close(hs.done)
		stderr := false
		var errb strings.Builder
		for l := range ls.lines {
			switch {
			case l == stderrLine:
				stderr = true
			case isExit(l, ls.token):
				code, _ := host.ParseExit(l, ls.token)
				if code != 0 {
					hs.err = &ExitError{Cmd: script, Code: code, Stderr: errb.String()}
				}
				pw.Close()
				return
			case stderr:
				errb.WriteString(l)
				errb.WriteByte('\n')
			default:
				pw.Write([]byte(l + "\n"))
			}
		}
		hs.err = ErrConnectionLost
		pw.CloseWithError(ErrConnectionLost)
	}()
	return hs, nil
}

func isExit(line, token string) bool { _, ok := host.ParseExit(line, token); return ok }

// holderStream is a script running in the lock holder's shell.
type holderStream struct {
	stdout *io.PipeReader
	done   chan struct{}
	err    error
}

// Stdin refuses every write: a script's stdin is /dev/null, and the lock
// session's stdin is the holder's own input.
func (s *holderStream) Stdin() io.WriteCloser { return noStdin{} }
func (s *holderStream) Stdout() io.Reader     { return s.stdout }

// Wait waits for the holder's exit line for the script.
func (s *holderStream) Wait() error { <-s.done; return s.err }

// Close stops reading; the script runs on to its end in the holder.
func (s *holderStream) Close() error {
	s.stdout.CloseWithError(io.ErrClosedPipe)
	return nil
}

// noStdin is the stdin of a script run by the lock holder.
type noStdin struct{}

func (noStdin) Write([]byte) (int, error) {
	return 0, errors.New("a script run by the lock holder has no stdin")
}
func (noStdin) Close() error { return nil }

// lockedError is ErrLocked naming the device and who holds it.
type lockedError struct{ device, owner string }

func (e *lockedError) Error() string        { return "device " + e.device + " is locked by " + e.owner }
func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// release closes a lock session's stdin and waits (bounded) for the holder
// to end: it ends the lock (after a rollback it may have to run).
func release(st Stream) {
	st.Stdin().Close()
	done := make(chan struct{})
	go func() { st.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a rollback run by the holder may take a while
	}
	st.Close()
}
