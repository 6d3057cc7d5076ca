package reconcile

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"lbc/internal/exitcode"
)

// Outcome is how an apply ended on one device.
type Outcome string

const (
	OutcomeApplied            Outcome = "applied"
	OutcomeUnchanged          Outcome = "unchanged"            // the plan had no changes
	OutcomeRolledBack         Outcome = "rolled-back"          // failed after a change; the old state is back
	OutcomeFailedBeforeChange Outcome = "failed-before-change" // nothing on the host changed
	OutcomeFailed             Outcome = "failed"               // failed, and the old state could not be confirmed
	OutcomeSkipped            Outcome = "skipped"              // not started (unplanned device, or --max-failures)
)

// Step names, as reported to Progress and recorded in DeviceResult.Steps.
const (
	StepConnect         = "connect"
	StepLock            = "lock"
	StepStaleCheck      = "stale-check"
	StepStage           = "stage"
	StepKeepLastGood    = "keep-last-good"
	StepArm             = "arm-rollback"
	StepAddVIPs         = "add-vips"
	StepSaveServerState = "save-server-state"
	StepSwap            = "swap"
	StepReload          = "reload"
	StepVerify          = "verify"
	StepRemoveVIPs      = "remove-vips"
	StepCommit          = "write-state"
	StepRollback        = "rollback"
)

// Errors that callers branch on (errors.Is).
var (
	ErrLocked = errors.New("device is locked")
	ErrStale  = errors.New("plan is stale")
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Parallelism int           // devices changed at once; 10 when 0
	MaxFailures int           // stop starting devices after this many failed; 0: no limit
	LockTimeout time.Duration // wait this long for a device lock; 0: fail at once
	Owner       string        // who applies, shown to whoever finds the lock ("user@host pid N")
	LBCVersion  string        // recorded in state.json
	Now         func() time.Time
	Progress    func(device, step string) // called as each step starts; may be called concurrently
	// Verifier confirms a reload; HAProxyVerifier{} when nil.
	Verifier Verifier
	// Adopt lets apply replace a config file that lbc did not write (one
	// without lbc's header, see ErrUnmanaged); without it such a device
	// fails before any change.
	Adopt bool
	// Waves splits the devices to change into groups applied one after
	// another; nil: PairWaves, from the HA pairs the plan records.
	Waves func(p *Plan) [][]string
}

// DeviceResult is how apply went on one device.
type DeviceResult struct {
	Device   string
	Outcome  Outcome
	Steps    []string // the steps that completed, in order
	Warnings []string
	Err      error
}

// ApplyResult is the result of Apply, one entry per device of the plan,
// in the plan's order.
type ApplyResult struct {
	Devices []DeviceResult
}

// ExitCode is the exit code of `lbc apply`: 0 when every device was applied
// or had nothing to do; 4 (partial) when some device is changed while another
// failed or was skipped, or when a rollback failed; 3 when devices were
// rolled back and none applied; 1 when nothing changed anywhere.
func (r *ApplyResult) ExitCode() int {
	n := map[Outcome]int{}
	for _, d := range r.Devices {
		n[d.Outcome]++
	}
	bad := n[OutcomeRolledBack] + n[OutcomeFailedBeforeChange] + n[OutcomeFailed] + n[OutcomeSkipped]
	switch {
	case bad == 0:
		return exitcode.OK
	case n[OutcomeApplied] > 0 || n[OutcomeFailed] > 0:
		return exitcode.Partial
	case n[OutcomeRolledBack] > 0:
		return exitcode.RolledBack
	}
	return exitcode.Error
}

// DefaultOwner names this process to whoever finds a device locked by it.
func DefaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("lbc@%s pid %d", host, os.Getpid())
}

// Apply changes every device of the plan that has changes, each as one
// transaction (see tx), at most Parallelism at once.
func Apply(ctx context.Context, plan *Plan, dial Dialer, opts ApplyOptions) (*ApplyResult, error) {
	if plan == nil {
		return nil, errors.New("apply: no plan")
	}
	if plan.Format != PlanFormat {
		return nil, fmt.Errorf("apply: plan format %d, want %d", plan.Format, PlanFormat)
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Verifier == nil {
		opts.Verifier = HAProxyVerifier{}
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner()
	}
	res := &ApplyResult{Devices: make([]DeviceResult, len(plan.Devices))}
	index := map[string]int{}
	for i, d := range plan.Devices {
		index[d.Device] = i
	}
	if opts.Waves == nil {
		opts.Waves = PairWaves
	}
	waves := opts.Waves(plan)
	// first[d]: the HA partners applied before d, whose failure stops d.
	first, _ := pairOrder(distinctPairs(plan.HAPairs), planNewVRRP(plan))
	var (
		mu       sync.Mutex
		failures int
		done     = map[string]bool{}
	)
	sem := make(chan struct{}, opts.Parallelism)
	for _, wave := range waves {
		var wg sync.WaitGroup
		for _, name := range wave {
			i, ok := index[name]
			if !ok || done[name] {
				continue
			}
			done[name] = true
			dp := &plan.Devices[i]
			// Take the slot here, in plan order, so that with --max-failures
			// a device starts only after the failures before it are counted.
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				mu.Lock()
				stop := opts.MaxFailures > 0 && failures >= opts.MaxFailures
				mu.Unlock()
				mu.Lock()
				partner := failedPartner(res, index, done, first[dp.Device])
				mu.Unlock()
				var r DeviceResult
				switch {
				case stop:
					r = DeviceResult{Device: dp.Device, Outcome: OutcomeSkipped,
						Err: fmt.Errorf("apply %s: not started: %d devices failed (max failures %d)", dp.Device, opts.MaxFailures, opts.MaxFailures)}
				case partner != "":
					r = DeviceResult{Device: dp.Device, Outcome: OutcomeSkipped,
						Err: fmt.Errorf("apply %s: not started: %s, applied before it as its HA partner, failed, so %s keeps the config it runs", dp.Device, partner, dp.Device)}
				default:
					if err := recovered(func() { r = applyDevice(ctx, dp, plan.Revision, dial, &opts) }); err != nil {
						// The transaction's deferred steps (unlock: the
						// holder rolls back what is armed) ran; what the
						// host runs now is not known here.
						r = DeviceResult{Device: dp.Device, Outcome: OutcomeFailed, Err: fmt.Errorf("apply %s: %w", dp.Device, err)}
					}
				}
				mu.Lock()
				if r.Outcome != OutcomeApplied && r.Outcome != OutcomeUnchanged && r.Outcome != OutcomeSkipped {
					failures++
				}
				res.Devices[i] = r
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	for i, d := range plan.Devices {
		if !done[d.Device] {
			res.Devices[i] = DeviceResult{Device: d.Device, Outcome: OutcomeSkipped,
				Err: fmt.Errorf("apply %s: not in any wave", d.Device)}
		}
	}
	return res, nil
}

// failedPartner returns a device of first (the HA partners applied before
// a device, see pairOrder) that was applied earlier in this run and did
// not end applied or unchanged: a change that broke the first device of a
// pair (the standby; the primary of a new pair) must not reach the other.
// Call with the result lock held.
func failedPartner(res *ApplyResult, index map[string]int, done map[string]bool, first map[string]bool) string {
	names := make([]string, 0, len(first))
	for d := range first {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		i, ok := index[d]
		if !ok || !done[d] {
			continue
		}
		switch res.Devices[i].Outcome {
		case OutcomeApplied, OutcomeUnchanged, "":
		default:
			return d
		}
	}
	return ""
}

func applyDevice(ctx context.Context, dp *DevicePlan, rev string, dial Dialer, o *ApplyOptions) DeviceResult {
	r := DeviceResult{Device: dp.Device}
	switch dp.Status {
	case StatusUnchanged:
		r.Outcome = OutcomeUnchanged
		return r
	case StatusChanges:
	default:
		r.Outcome = OutcomeSkipped
		r.Err = fmt.Errorf("apply %s: not planned (%s): %s", dp.Device, dp.Status, dp.Error)
		return r
	}
	progress := func(step string) {
		trace(dp.Device, step)
		if o.Progress != nil {
			o.Progress(dp.Device, step)
		}
	}
	defer func() { trace(dp.Device, "end "+string(r.Outcome)) }()
	progress(StepConnect)
	t, err := dial(ctx, dp.Host.device(dp.Device))
	trace(dp.Device, "connected")
	if err != nil {
		r.Outcome = OutcomeFailedBeforeChange
		r.Err = fmt.Errorf("apply %s: connect: %w", dp.Device, err)
		return r
	}
	defer t.Close()
	x := &tx{t: t, dp: dp, h: dp.Host, rev: rev, o: o, r: &r, progress: progress, token: newToken(),
		redial: func(ctx context.Context) (Transport, error) { return dial(ctx, dp.Host.device(dp.Device)) }}
	x.run(ctx)
	return r
}

// tx is one device's transaction. It is one remote command on one
// connection: the lock holder's session (lockCmd, holderPrologue; when
// lbc apply DIR planned under the lock, the plan's), which reads the
// device and then runs the transaction's scripts as they come on its
// stdin:
//
//	lock, stale-check                       the holder itself
//	stage, keep-last-good, arm,             one script: nothing changes on
//	  add-vips, save-server-state, swap,    the host before add-vips
//	  reload, verify, remove-vips,
//	  write-state
//
// A failure up to arm removes the staged files and reports
// failed-before-change. A failure after it runs the rollback script that
// arm wrote to <stateDir>/txn.sh (restore last-known-good files, re-add
// removed VIPs, reload, remove added VIPs), verifies the old config runs
// again, and reports rolled-back.
//
// Verify decides on the host, so the script commits (write-state writes
// state.json and disarms) only when the new config runs. The holder runs
// txn.sh itself when its session ends while it is armed: when the
// controller dies or loses the connection and the script then fails, the
// host goes back to its old state. A script that was running when the
// connection died ends first (the holder runs one thing at a time); a
// script cut short on its way to the host does not run at all (its body
// is a function called on its last line). Every file the host runs from
// is written beside its target and renamed over it, so each step leaves a
// file old or new, never half written (the server-state file, only read
// at a reload, and txn.sh, only run once the script has ended, are
// written in place). The next plan then shows either the whole change
// again or none of it. After a lost connection, apply reconnects once to
// tell which it was.
type tx struct {
	t        Transport
	dp       *DevicePlan
	h        Host
	rev      string
	o        *ApplyOptions
	r        *DeviceResult
	progress func(string)
	token    string // the lock session's token (marks the holder's lines)
	redial   func(context.Context) (Transport, error)

	lock    *lockSession
	live    *Live  // what the lock holder read under the lock
	readErr error  // why that read failed
	state   []byte // the state.json write-state writes
}

// run runs the transaction and sets the result's outcome.
func (x *tx) run(ctx context.Context) {
	defer x.unlock()
	dev := x.dp.Device
	failBefore := func(step string, err error) {
		x.r.Outcome = OutcomeFailedBeforeChange
		x.r.Err = fmt.Errorf("apply %s: %s: %w", dev, step, err)
		if x.lock != nil && !errors.Is(err, ErrConnectionLost) {
			x.cleanStaged(ctx)
		}
	}
	x.progress(StepLock)
	if err := x.lockDevice(ctx); err != nil {
		failBefore(StepLock, err)
		return
	}
	x.r.Steps = append(x.r.Steps, StepLock)
	x.progress(StepStaleCheck)
	if err := x.staleCheck(); err != nil {
		failBefore(StepStaleCheck, err)
		return
	}
	x.r.Steps = append(x.r.Steps, StepStaleCheck)
	if err := checkManaged(dev, x.h, x.live, x.dp.Desired.ManageKeepalived, x.o.Adopt); err != nil {
		failBefore(StepStaleCheck, err)
		return
	}
	step, err := x.change(ctx)
	cut := errors.Is(err, ErrConnectionLost) || errors.Is(err, errSessionEnded)
	if err != nil && beforeChange(step) && !cut {
		failBefore(step, err)
		return
	}
	if err == nil {
		x.r.Outcome = OutcomeApplied
		return
	}
	stepErr := fmt.Errorf("apply %s: %s: %w", dev, step, err)
	if cut {
		x.afterCut(ctx, step, stepErr)
		return
	}
	x.progress(StepRollback)
	if rbErr := x.rollback(ctx); rbErr != nil {
		if errors.Is(rbErr, ErrConnectionLost) {
			x.afterCut(ctx, StepRollback, stepErr)
			return
		}
		x.r.Outcome = OutcomeFailed
		x.r.Err = errors.Join(stepErr, fmt.Errorf("apply %s: rollback: %w (the host runs "+
			"%s when the lock session ends; see %s)", dev, rbErr, x.h.txnPath(), path.Join(x.h.StateDir, "txn.log")))
		return
	}
	x.r.Steps = append(x.r.Steps, StepRollback)
	x.r.Outcome = OutcomeRolledBack
	x.r.Err = stepErr
}

// runScript runs s, records its completed steps and warnings, and returns
// the failed step with its error.
func (x *tx) runScript(ctx context.Context, s *script) (*scriptResult, string, error) {
	res, err := s.run(ctx, x.lock.scripts(x.t), x.progress)
	trace(x.dp.Device, "script end")
	x.r.Steps = append(x.r.Steps, res.done...)
	for _, w := range res.warnings {
		x.r.Warnings = append(x.r.Warnings, w)
	}
	return res, res.failed, err
}

// lockDevice takes the device lock (see takeLock), unless the plan
// already holds it: `lbc apply DIR` plans under the lock (PlanOptions.Lock),
// and the transaction goes on in that lock session.
func (x *tx) lockDevice(ctx context.Context) error {
	if hl := takeHeld(x.t, x.dp.Device); hl != nil {
		x.lock, x.live, x.token = hl.ls, hl.live, hl.ls.token
		return nil
	}
	ls, read, err := takeLock(ctx, x.t, x.h, x.dp.Device, x.o.Owner, x.token, x.o.LockTimeout, x.dp.Desired.ManageKeepalived)
	x.lock = ls // a lock taken whose read failed is released by unlock
	if err == nil {
		x.live, x.readErr = lockedRead(read)
	}
	return err
}

// lockedRead parses what a lock holder read under the lock (takeLock's
// read: nil when the read failed on the host).
func lockedRead(read []byte) (*Live, error) {
	if read == nil {
		return nil, errors.New("read live state on the host failed")
	}
	return parseLive(read)
}

// lockSession is the lock holder's session (lockCmd): it holds the device
// lock and runs the transaction's scripts.
type lockSession struct {
	Stream
	lines chan string // the holder's stdout, line by line; closed at its end
	token string
}

// takeLock takes <stateDir>/lock with flock, held by a session whose stdin
// stays open until it is closed; the lock ends with the session. The
// holder then reads the device (as ReadLive does) in the same round trip;
// read is that output, nil when the read failed on the host.
func takeLock(ctx context.Context, t Transport, h Host, device, owner, token string, wait time.Duration, keepalived bool) (*lockSession, []byte, error) {
	st, err := t.Stream(ctx, lockCmd(h, wait))
	if err != nil {
		return nil, nil, err
	}
	// The holder's shell reads this once flock has the lock. Should the
	// write fail, the session has ended: the reads below tell why.
	prologue := holderPrologue(h, owner, token, keepalived)
	if r, ok := t.(rewriter); ok {
		prologue = r.rewrite(prologue)
	}
	io.WriteString(st.Stdin(), prologue)
	ls := &lockSession{Stream: st, lines: make(chan string, 64), token: token}
	go func() {
		defer close(ls.lines)
		br := bufio.NewReader(st.Stdout())
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			ls.lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	type line struct {
		s   string
		eof bool
	}
	next := func(wait time.Duration) (line, bool) {
		select {
		case l, ok := <-ls.lines:
			return line{s: l, eof: !ok}, true
		case <-time.After(wait):
		case <-ctx.Done():
		}
		return line{}, false
	}
	l, ok := next(wait + 10*time.Second)
	if ok && l.s == "locked" {
		// The read, ended by "==lbc read ok" (or failed).
		var b bytes.Buffer
		for {
			l, ok := next(60 * time.Second)
			switch {
			case !ok:
				return ls, nil, fmt.Errorf("%s: no answer", StepStaleCheck)
			case l.eof:
				return ls, nil, fmt.Errorf("%s: the lock holder ended: %w", StepStaleCheck, ErrConnectionLost)
			case l.s == "==lbc step "+StepStaleCheck:
			case l.s == "==lbc read ok":
				return ls, b.Bytes(), nil
			case l.s == "==lbc read failed":
				return ls, nil, nil
			default:
				b.WriteString(l.s)
				b.WriteByte('\n')
			}
		}
	}
	st.Close()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	var ee *ExitError
	if err := st.Wait(); !errors.As(err, &ee) || ee.Code != 1 { // flock exits 1 when the lock is busy
		if err == nil {
			err = errors.New("lock holder ended without taking the lock")
		}
		return nil, nil, err
	}
	out, _ := t.Run(ctx, ownerCmd(h), nil)
	who := strings.TrimSpace(string(out))
	if who == "" {
		who = "an unknown owner"
	}
	return nil, nil, &lockedError{device, who}
}

// scripts returns a Transport whose Stream runs a script in the lock
// holder's shell (Run and Close are t's): a script costs no session, and
// the holder runs them one after another.
func (ls *lockSession) scripts(t Transport) Transport { return holderTransport{t, ls} }

// holderTransport runs scripts through a lock session (see lockCmd).
type holderTransport struct {
	Transport
	ls *lockSession
}

// rewriter is a Transport that rewrites what it sends (tests inject
// faults into scripts with it).
type rewriter interface{ rewrite(cmd string) string }

// Stream sends script to the lock holder, which runs it with sh
// (holderScript); the returned Stream's stdout is the script's up to the
// holder's exit line. The script has no stdin.
func (h holderTransport) Stream(ctx context.Context, script string) (Stream, error) {
	if r, ok := h.Transport.(rewriter); ok {
		script = r.rewrite(script)
	}
	if _, err := io.WriteString(h.ls.Stdin(), holderScript(script)); err != nil {
		return nil, fmt.Errorf("send script: %w", ErrConnectionLost)
	}
	pr, pw := io.Pipe()
	hs := &holderStream{stdout: pr, done: make(chan struct{})}
	stderrLine, exitLine := "==lbc stderr "+h.ls.token, "==lbc exit "+h.ls.token+" "
	go func() {
		defer close(hs.done)
		stderr := false
		var errb strings.Builder
		for l := range h.ls.lines {
			switch {
			case l == stderrLine:
				stderr = true
			case strings.HasPrefix(l, exitLine):
				code, _ := strconv.Atoi(strings.TrimPrefix(l, exitLine))
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

// unlock releases the device lock, so the lock is free when Apply returns.
func (x *tx) unlock() {
	if x.lock == nil {
		return
	}
	release(x.lock)
	trace(x.dp.Device, "unlocked")
}

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

// staleCheck compares what the lock holder read under the lock with what
// the plan saw, and refuses the plan when any file or the VIP addresses
// differ.
func (x *tx) staleCheck() error {
	if x.readErr != nil {
		return x.readErr
	}
	return x.sameAsPlan(x.live)
}

// sameAsPlan returns ErrStale, naming what changed, when live differs from
// what the plan saw.
func (x *tx) sameAsPlan(live *Live) error {
	now := map[string]string{
		x.h.Config:      live.Config.Fingerprint(),
		x.h.statePath(): live.StateFile.Fingerprint(),
	}
	if x.dp.Desired.ManageKeepalived {
		now[x.h.KeepalivedConfig] = live.Keepalived.Fingerprint()
	}
	var managed []string
	if live.State != nil {
		managed = live.State.VIPs
	}
	now[addressesKey] = addressFingerprint(live.Addresses, x.dp.Desired.Wanted, managed)
	keys := make([]string, 0, len(x.dp.Fingerprints))
	for k := range x.dp.Fingerprints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if now[k] != x.dp.Fingerprints[k] {
			what := k
			if k == addressesKey {
				what = "the VIP addresses"
			}
			return fmt.Errorf("%w: device %s: %s changed since the plan", ErrStale, x.dp.Device, what)
		}
	}
	return nil
}

// change runs the whole transaction after the lock as one script, which
// carries every file it writes in its own text (written with the shell's
// printf: no process):
//
//   - stage: write the new files beside the live ones and run the device's
//     check commands on them;
//   - keep-last-good: keep the live files in <stateDir>/last-good
//     (written from the bytes read under the lock);
//   - arm: install the rollback script as <stateDir>/txn.sh;
//
// which change nothing the host runs; then:
//
//   - add-vips: new addresses first (a config binding an address the host
//     does not have yet fails to load);
//   - save-server-state: for the new process (failing is a warning);
//   - swap: rename the staged files over the live ones;
//   - reload, and verify: wait on the host until the new config runs with
//     every frontend bound, or fail;
//   - remove-vips: the addresses lbc added and no longer wants;
//   - write-state: write the next state.json beside the live one, rename
//     it into place and disarm (empty txn.sh: only a non-empty one is
//     armed).
//
// VIPs are /32 or /128 (compiler), each its own primary address; but when
// a removed one has a subnet's prefix (added by an older lbc), deleting it
// may delete the subnet's secondaries too (unless promote_secondaries is
// set), so the wanted ones are replaced after it.
//
// Once the host has the whole script it runs to its end even if the
// connection is cut (it ignores SIGHUP and SIGPIPE): it commits, or it
// fails and the lock holder rolls back what it armed.
func (x *tx) change(ctx context.Context) (string, error) {
	rb, err := rollbackScript(x.h, x.dp, x.live)
	if err != nil {
		return StepStage, err
	}
	h, ka := x.h, x.dp.Desired.ManageKeepalived
	add, rm := ":", ":"
	if len(x.dp.VIPsAdd) > 0 {
		if add, err = addVIPCmd(h, x.dp.VIPsAdd); err != nil {
			return StepStage, err
		}
	}
	if len(x.dp.VIPsRemove) > 0 {
		if rm, err = delVIPCmd(h, x.dp.VIPsRemove); err != nil {
			return StepStage, err
		}
		if len(x.dp.Desired.VIPs) > 0 && subnetSized(x.dp.VIPsRemove) {
			again, err := addVIPCmd(h, x.dp.Desired.VIPs)
			if err != nil {
				return StepStage, err
			}
			rm += " && " + again
		}
	}
	after, err := x.o.Verifier.After(h, []byte(x.dp.Desired.Config))
	if err != nil {
		return StepStage, err
	}
	var werr error
	write := func(path, data string) string {
		w, err := writeFileCmd(path, data)
		werr = cmp.Or(werr, err)
		return w
	}
	stage := []string{write(staged(h.Config), x.dp.Desired.Config)}
	if ka {
		stage = append(stage, write(staged(h.KeepalivedConfig), x.dp.Desired.Keepalived))
	}
	arm := write(h.txnPath(), rb)
	next := write(stateTmp(h), string(x.nextState()))
	if werr != nil {
		return StepStage, werr
	}
	s := newScript(false)
	if h.Check != "" {
		stage = append(stage, fmt.Sprintf("{ %s || { echo 'check haproxy.cfg failed' >&2; false; }; }", checkCmd(h.Check, staged(h.Config))))
	} else {
		x.r.Warnings = append(x.r.Warnings, "no haproxy check command: config not checked on the host")
	}
	if ka && h.KeepalivedCheck != "" {
		stage = append(stage, fmt.Sprintf("{ %s || { echo 'check keepalived.conf failed' >&2; false; }; }", checkCmd(h.KeepalivedCheck, staged(h.KeepalivedConfig))))
	}
	s.step(StepStage, strings.Join(stage, " &&\n  "))
	keep := keepLastGoodCmd(h.Config, x.live.Config, h.lastGood("haproxy.cfg"))
	if ka {
		keep += " &&\n  " + keepLastGoodCmd(h.KeepalivedConfig, x.live.Keepalived, h.lastGood("keepalived.conf"))
	}
	s.step(StepKeepLastGood, keep)
	// The rollback script is written in place: the holder runs it only
	// once this script has ended, and should the script die while writing
	// it, nothing has changed yet that a part of it could undo wrongly
	// (last-good is the live file now).
	s.step(StepArm, arm)
	s.step(StepAddVIPs, add)
	s.warnStep(StepSaveServerState, saveServerStateCmd(h), "save server state failed (a host whose HAProxy does not run yet has none)")
	swap := swapCmd(h.Config)
	if ka {
		swap += " && " + swapCmd(h.KeepalivedConfig)
	}
	s.step(StepSwap, swap)
	// A daemon the reload commands start inherits neither the device lock
	// (flock -o keeps it) nor the session (a script's stdin is /dev/null).
	before := x.o.Verifier.Before(h)
	if v, ok := x.o.Verifier.(beforeSkipper); ok && !v.NeedsBefore(x.live.Config.Data, []byte(x.dp.Desired.Config)) {
		before = "lbc_before="
	}
	reload := before + "\n  ( " + h.Reload + " )"
	if ka && h.KeepalivedReload != "" {
		reload += " && { ( " + h.KeepalivedReload + " ) || { echo 'keepalived reload failed' >&2; false; }; }"
	}
	s.step(StepReload, reload)
	s.step(StepVerify, after)
	s.step(StepRemoveVIPs, rm)
	// Disarm: an empty txn.sh is not armed (a redirection, no process).
	s.step(StepCommit, fmt.Sprintf("%s && mv -f %s %s && : > %s && %s", next, q(stateTmp(h)), q(h.statePath()), q(h.txnPath()), clearServerStateCmd(h)))
	_, step, err := x.runScript(ctx, s)
	return step, err
}

// stateTmp is where stage puts the next state.json until write-state.
func stateTmp(h Host) string { return h.statePath() + ".lbc-tmp" }

// beforeChange reports whether a failure at step left the host as it was:
// the steps up to arm change nothing the host runs.
func beforeChange(step string) bool {
	switch step {
	case StepStage, StepKeepLastGood, StepArm:
		return true
	}
	return false
}

// nextState is the state.json that write-state writes.
func (x *tx) nextState() []byte {
	if x.state == nil {
		ka := ""
		if x.dp.Desired.ManageKeepalived {
			ka = sha256Hex([]byte(x.dp.Desired.Keepalived))
		}
		st := x.live.State.next(x.rev, x.o.LBCVersion, x.o.Now(), sha256Hex([]byte(x.dp.Desired.Config)), ka, x.dp.Desired.VIPs)
		x.state = st.encode()
	}
	return x.state
}

// cleanStaged removes staged files after a failure before any change.
func (x *tx) cleanStaged(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := x.t.Run(ctx, removeCmd(append(stagedList(x.h, x.dp), x.h.txnPath())...), nil); err != nil {
		x.r.Warnings = append(x.r.Warnings, "remove staged files: "+shortError("", err).Error())
	}
}

// stepRollbackVerify is the part of a rollback script that waits for the
// old config to run again (and disarms once it does).
const stepRollbackVerify = "rollback-verify"

// rollback runs the armed rollback script, verifies the old config runs
// again, and disarms, in one script. It runs even when ctx is cancelled.
func (x *tx) rollback(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	s := newScript(true)
	s.step(StepRollback, x.o.Verifier.Before(x.h)+"\n  sh "+q(x.h.txnPath()))
	disarm := removeCmd(x.h.txnPath())
	if x.live.Config.Exists {
		after, err := x.o.Verifier.After(x.h, x.live.Config.Data)
		if err != nil {
			return err
		}
		s.step(stepRollbackVerify, "{ "+after+"\n  } && "+disarm)
	} else {
		s.step(stepRollbackVerify, disarm)
	}
	res, err := s.run(ctx, x.lock.scripts(x.t), func(string) {})
	if err != nil && res.failed == stepRollbackVerify && x.live.Config.Exists {
		// A reload signalled while the one before it is still under
		// way can be lost (HAProxy's master re-executes itself on
		// each): signal once more and look again before giving up.
		if err2 := x.reloadAgain(ctx); err2 != nil {
			return fmt.Errorf("%w; reloaded once more: %w", err, err2)
		}
		return nil
	}
	return err
}

// reloadAgain reloads the restored config once more, verifies it and
// disarms.
func (x *tx) reloadAgain(ctx context.Context) error {
	after, err := x.o.Verifier.After(x.h, x.live.Config.Data)
	if err != nil {
		return err
	}
	s := newScript(true)
	s.step(StepRollback, x.o.Verifier.Before(x.h)+"\n  ( "+x.h.Reload+" ) &&\n  { "+after+"\n  } && "+removeCmd(x.h.txnPath()))
	_, err = s.run(ctx, x.lock.scripts(x.t), func(string) {})
	return err
}

// afterCut finds out, over a new connection, how a transaction whose
// connection was lost at step ended: the host committed it (applied), or
// its lock holder rolled it back (rolled back by the host), or neither.
func (x *tx) afterCut(ctx context.Context, step string, stepErr error) {
	dev := x.dp.Device
	x.r.Outcome = OutcomeFailed
	x.r.Err = stepErr
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	defer cancel()
	unknown := func(why string, err error) {
		x.r.Err = errors.Join(stepErr, fmt.Errorf("apply %s: after the lost connection: %s: %w (the host rolls back by itself "+
			"unless write-state ran; run lbc plan to see what it runs)", dev, why, err))
	}
	t, err := x.redial(ctx)
	if err != nil {
		unknown("reconnect", err)
		return
	}
	defer t.Close()
	// Wait (bounded) for the old lock holder to end: it rolls back first.
	out, err := t.Run(ctx, fmt.Sprintf("flock -w 30 %s sh -c %s", q(x.h.lockPath()),
		q(`if [ -s "$1" ]; then echo armed; else echo disarmed; fi`))+" sh "+q(x.h.txnPath()), nil)
	if err != nil {
		unknown("wait for the lock", shortError("", err))
		return
	}
	armed := strings.TrimSpace(string(out)) == "armed"
	live, err := ReadLive(ctx, t, x.h, x.dp.Desired.ManageKeepalived)
	if err != nil {
		unknown("read the host", shortError("", err))
		return
	}
	switch {
	case armed:
		unknown("the rollback script is still armed", fmt.Errorf("see %s", path.Join(x.h.StateDir, "txn.log")))
	case live.StateFile.Exists && string(live.StateFile.Data) == string(x.nextState()) &&
		live.Config.Fingerprint() == sha256Hex([]byte(x.dp.Desired.Config)):
		x.r.Outcome = OutcomeApplied
		x.r.Err = nil
		x.r.Warnings = append(x.r.Warnings, fmt.Sprintf("connection lost at %s; reconnected: the host committed the change", step))
	case x.sameAsPlan(live) == nil && beforeChange(step):
		// The script failed, or never ran, before it changed anything.
		x.r.Outcome = OutcomeFailedBeforeChange
		x.r.Err = fmt.Errorf("%w (reconnected: the host runs its old state)", stepErr)
	case x.sameAsPlan(live) == nil:
		x.r.Outcome = OutcomeRolledBack
		x.r.Err = fmt.Errorf("%w (reconnected: rolled back by the host)", stepErr)
	default:
		unknown("the host runs neither the old nor the new state", fmt.Errorf("see %s", path.Join(x.h.StateDir, "txn.log")))
	}
}

// rollbackScript is the shell script that puts the host back as live found
// it. It is idempotent: running it twice leaves the same host.
func rollbackScript(h Host, dp *DevicePlan, live *Live) (string, error) {
	var b strings.Builder
	b.WriteString("# lbc rollback: written by apply, run on failure or when the controller's session ends\nrc=0\n")
	fmt.Fprintf(&b, "%s\n", removeCmd(stagedList(h, dp)...))
	restore := func(f File, live, good string) {
		if f.Exists {
			tmp := live + ".lbc-rb"
			fmt.Fprintf(&b, "cp %s %s && mv -f %s %s || rc=1\n", q(good), q(tmp), q(tmp), q(live))
		} else {
			fmt.Fprintf(&b, "rm -f %s || rc=1\n", q(live))
		}
	}
	restore(live.Config, h.Config, h.lastGood("haproxy.cfg"))
	switch {
	case dp.Desired.ManageKeepalived && live.Keepalived.Exists:
		restore(live.Keepalived, h.KeepalivedConfig, h.lastGood("keepalived.conf"))
	case dp.Desired.ManageKeepalived:
		// The first keepalived.conf. Once swap put it in place, the
		// apply's reload may have started (or reloaded) keepalived with
		// its instances; removing the file would not stop them
		// (keepalived keeps its config when a reload finds none). So
		// when the file is there, replace it with one without instances
		// and reload keepalived (below): the VIPs of the rolled-back
		// change are released. That file stays: the next plan shows it
		// as the live keepalived.conf, diffed against the rendered one,
		// with state.json as it was, so the whole change again; should
		// the device leave HA instead, the file (no instance) is left
		// alone. When swap did not run, there is no file and nothing
		// to reload.
		tmp := h.KeepalivedConfig + ".lbc-rb"
		fmt.Fprintf(&b, "if [ -e %s ]; then printf '%%s' %s > %s && mv -f %s %s || rc=1; fi\n",
			q(h.KeepalivedConfig), q(emptyKeepalived(dp.Device)), q(tmp), q(tmp), q(h.KeepalivedConfig))
	}
	if len(dp.VIPsRemove) > 0 {
		cmd, err := addVIPCmd(h, dp.VIPsRemove)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s || rc=1\n", cmd)
	}
	if live.Config.Exists {
		fmt.Fprintf(&b, "( %s ) || rc=1\n", h.Reload)
	}
	if dp.Desired.ManageKeepalived && h.KeepalivedReload != "" {
		if live.Keepalived.Exists {
			fmt.Fprintf(&b, "( %s ) || rc=1\n", h.KeepalivedReload)
		} else {
			fmt.Fprintf(&b, "if [ -e %s ]; then ( %s ) || rc=1; fi\n", q(h.KeepalivedConfig), h.KeepalivedReload)
		}
	}
	if len(dp.VIPsAdd) > 0 {
		cmd, err := delVIPCmd(h, dp.VIPsAdd)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s || rc=1\n", cmd)
		// Deleting a subnet's primary address deletes its secondaries:
		// put back every address lbc had before (only VIPs with a subnet's
		// prefix, added by an older lbc, can be one).
		var old []string
		isNew := set(dp.VIPsAdd)
		for _, v := range dp.Desired.VIPs {
			if !isNew[v] {
				old = append(old, v)
			}
		}
		if old = append(old, dp.VIPsRemove...); len(old) > 0 && subnetSized(dp.VIPsAdd) {
			cmd, err := addVIPCmd(h, old)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s || rc=1\n", cmd)
		}
	}
	b.WriteString("exit $rc\n")
	return b.String(), nil
}

// subnetSized reports whether any of vips has a prefix shorter than its
// address: deleting such an address may delete others of its subnet.
func subnetSized(vips []string) bool {
	for _, s := range vips {
		if v, err := parseVIP(s); err != nil || v.prefix.Bits() < v.prefix.Addr().BitLen() {
			return true
		}
	}
	return false
}

// stagedList is every file a change script writes before it changes
// anything the host runs.
func stagedList(h Host, dp *DevicePlan) []string {
	fs := []string{staged(h.Config), stateTmp(h)}
	if dp.Desired.ManageKeepalived {
		fs = append(fs, staged(h.KeepalivedConfig))
	}
	return fs
}

// traceOn (env LBC_TRACE set) prints a timestamped line to stderr at each
// step of plan and apply, to see where the time goes.
var (
	traceOn    = os.Getenv("LBC_TRACE") != ""
	traceStart = time.Now()
	traceMu    sync.Mutex
)

func trace(dev, what string) {
	if !traceOn {
		return
	}
	traceMu.Lock()
	defer traceMu.Unlock()
	fmt.Fprintf(os.Stderr, "trace %7.3fs %s: %s\n", time.Since(traceStart).Seconds(), dev, what)
}
