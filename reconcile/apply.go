package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"lbc/reconcile/classify"
	"lbc/reconcile/host"
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
	OutcomeRefused            Outcome = "refused"              // the revision guard, or a config lbc did not write (no --adopt), refused it; nothing on the host changed
)

// Errors that callers branch on (errors.Is).
var (
	ErrLocked = errors.New("device is locked")
	ErrStale  = errors.New("plan is stale")
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Parallelism int           // devices changed at once; DefaultParallelism when 0
	MaxFailures int           // stop starting devices after this many failed; 0: no limit
	LockTimeout time.Duration // wait this long for a device lock; 0: fail at once
	Owner       string        // who applies, shown to whoever finds the lock ("user@host pid N")
	LBCVersion  string        // recorded in state.json
	Now         func() time.Time
	Progress    func(device, step string) // called as each step starts; may be called concurrently
	// Done, when set, is called with each device's result as it ends
	// (also for a device not started); it may be called concurrently.
	Done func(DeviceResult)
	// Verifier confirms a reload; HAProxyVerifier{} when nil.
	Verifier Verifier
	// Adopt lets apply replace a config file that lbc did not write (one
	// without lbc's header, see ErrUnmanaged); without it such a device
	// fails before any change.
	Adopt bool
	// Waves splits the devices to change into groups applied one after
	// another; nil: PairWaves, from the HA pairs the plan records.
	Waves func(p *Plan) [][]string
	// Locks holds the device locks the plan took (PlanLock.Held): the
	// transaction of such a device goes on in its lock session.
	Locks *Locks
	// Log, when set, gets a debug record at each step of each device (to
	// see where the time goes).
	Log *slog.Logger
	// Guard, when set, is asked per device, under its lock and before
	// anything on the host changes, whether the revision the host runs
	// may be replaced by the plan's (see RevisionGuard).
	Guard RevisionGuard
	// Limits bound the read under the lock and the lock holder's start.
	Limits Limits
	// Reload applies every change by reload, also those that HAProxy's
	// runtime API could carry (see runtime.go).
	Reload bool
	// DrainInterval is the time between two reads of a drain's sessions;
	// 1s when 0.
	DrainInterval time.Duration
	// Files resolves the referenced auxiliary files (certificates) of a
	// plan loaded from a file; a plan made in this process has them.
	Files FileSource
}

// DeviceResult is how apply went on one device.
type DeviceResult struct {
	Device   string
	Outcome  Outcome
	Steps    []string // the steps that completed, in order
	Warnings []string
	Err      error
	// Runtime, for a device applied without a reload: its operations and
	// its worker, the same before and after.
	Runtime *RuntimeApply
}

// ApplyResult is the result of Apply, one entry per device of the plan,
// in the plan's order.
type ApplyResult struct {
	Devices []DeviceResult
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
	opts.defaults()
	return applyPlan(ctx, plan, dial, &opts, &failCount{}), nil
}

// defaults fills the options left unset.
func (o *ApplyOptions) defaults() {
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Verifier == nil {
		o.Verifier = HAProxyVerifier{}
	}
	if o.Owner == "" {
		o.Owner = DefaultOwner()
	}
	o.Log = orDiscard(o.Log)
	if o.Waves == nil {
		o.Waves = PairWaves
	}
}

// failCount counts the devices that failed in one run, for
// --max-failures (shared by the units of PlanApply).
type failCount struct {
	mu sync.Mutex
	n  int
}

func (f *failCount) get() int { f.mu.Lock(); defer f.mu.Unlock(); return f.n }
func (f *failCount) add()     { f.mu.Lock(); f.n++; f.mu.Unlock() }

// applyPlan is Apply with its options set, counting failures in fails.
func applyPlan(ctx context.Context, plan *Plan, dial Dialer, opts *ApplyOptions, fails *failCount) *ApplyResult {
	res := &ApplyResult{Devices: make([]DeviceResult, len(plan.Devices))}
	index := make(map[string]int, len(plan.Devices))
	for i, d := range plan.Devices {
		index[d.Device] = i
	}
	waves := opts.Waves(plan)
	// first[d]: the HA partners applied before d, whose failure stops d.
	first, _ := pairOrder(distinctPairs(plan.HAPairs), planNewVRRP(plan))
	var (
		mu   sync.Mutex
		done = map[string]bool{}
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
				stop := opts.MaxFailures > 0 && fails.get() >= opts.MaxFailures
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
					if err := recovered(func() { r = applyDevice(ctx, dp, plan.Revision, dial, opts) }); err != nil {
						// The transaction's deferred steps (unlock: the
						// holder rolls back what is armed) ran; what the
						// host runs now is not known here.
						r = DeviceResult{Device: dp.Device, Outcome: OutcomeFailed, Err: fmt.Errorf("apply %s: %w", dp.Device, err)}
					}
				}
				if r.Outcome != OutcomeApplied && r.Outcome != OutcomeUnchanged && r.Outcome != OutcomeSkipped {
					fails.add()
				}
				mu.Lock()
				res.Devices[i] = r
				mu.Unlock()
				if opts.Done != nil {
					opts.Done(r)
				}
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
	return res
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
	trace := func(what string) { o.Log.Debug(what, "device", dp.Device) }
	progress := func(step string) {
		trace(step)
		if o.Progress != nil {
			o.Progress(dp.Device, step)
		}
	}
	defer func() { trace("end " + string(r.Outcome)) }()
	if err := resolveFiles(ctx, &dp.Desired, o.Files); err != nil {
		r.Outcome = OutcomeFailedBeforeChange
		r.Err = fmt.Errorf("apply %s: %w", dp.Device, err)
		return r
	}
	progress(StepConnect)
	ep := endpointOf(dp.Device, dp.Host)
	// A lock the plan took carries its connection: the transaction goes
	// on in that lock session when the connection still answers.
	held := o.Locks.take(dp.Device)
	if held != nil && (held.ep != ep || !held.t.Alive(ctx)) {
		held.release()
		held = nil
	}
	var t Transport
	if held != nil {
		t = held.t
	} else {
		var err error
		if t, err = dial(ctx, ep); err != nil {
			trace("connected")
			r.Outcome = OutcomeFailedBeforeChange
			r.Err = fmt.Errorf("apply %s: connect: %w", dp.Device, err)
			return r
		}
	}
	trace("connected")
	defer t.Close()
	x := &tx{t: t, held: held, dp: dp, h: dp.Host, rev: rev, o: o, r: &r, progress: progress, trace: trace, token: newToken(),
		redial: func(ctx context.Context) (Transport, error) { return dial(ctx, ep) }}
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
	trace    func(string)
	held     *heldLock // the lock the plan took, or nil
	token    string    // the lock session's token (marks the holder's lines)
	redial   func(context.Context) (Transport, error)

	lock *lockSession
	rt   *host.Runtime // the runtime part of the change, nil when it reloads
	// certBefore: what show ssl cert said of each rotated certificate
	// before the runtime change (certrt.go); nil when not asked.
	certBefore []string
	// certOps: the certificate rotations of the runtime change, in the
	// order of their show ssl cert read-back.
	certOps []classify.Op
	live    *Live  // what the lock holder read under the lock
	readErr error  // why that read failed
	state   []byte // the state.json write-state writes
	// files are the auxiliary files to write: those the host does not
	// have as the plan wants them (set after the stale check).
	files []host.AuxFile
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
	files, err := hostFiles(&x.dp.Desired, x.live)
	if err != nil {
		failBefore(StepStage, err)
		return
	}
	x.files = files
	if err := x.checkRevision(); err != nil {
		x.r.Outcome = OutcomeRefused
		x.r.Err = fmt.Errorf("apply %s: refused: %w", dev, err)
		return
	}
	if err := checkManaged(dev, x.h, x.live, x.dp.Desired.ManageKeepalived, x.o.Adopt); err != nil {
		x.r.Outcome = OutcomeRefused
		x.r.Err = fmt.Errorf("apply %s: refused: %w", dev, err)
		return
	}
	step, err := x.change(ctx)
	if errors.Is(err, errScriptTimeout) {
		// The host goes on with the script, unobserved: nothing can be
		// cleaned up or rolled back from here, and the device lock stays
		// held until the step ends.
		x.r.Outcome = OutcomeFailed
		x.r.Err = fmt.Errorf("apply %s: %s: %w", dev, step, err)
		return
	}
	cut := errors.Is(err, ErrConnectionLost) || errors.Is(err, errSessionEnded)
	if err != nil && host.BeforeChange(step) && !cut {
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
			"%s when the lock session ends; see %s)", dev, rbErr, x.h.TxnPath(), x.h.TxnLog()))
		return
	}
	x.r.Steps = append(x.r.Steps, StepRollback)
	x.r.Outcome = OutcomeRolledBack
	x.r.Err = stepErr
}

// runScript runs s, records its completed steps and warnings, and returns
// the failed step with its error.
func (x *tx) runScript(ctx context.Context, s *host.Script) (string, error) {
	_, step, err := x.runScriptReport(ctx, s)
	return step, err
}

// runScriptReport is runScript that also returns the script's report.
func (x *tx) runScriptReport(ctx context.Context, s *host.Script) (*host.Report, string, error) {
	x.r.Warnings = append(x.r.Warnings, s.Notes...)
	sctx, cancel := scriptDeadline(ctx, x.o.Limits.scriptTimeout()+s.Bound, "--script-timeout")
	defer cancel()
	rep, err := runScript(sctx, s, x.lock, x.progress)
	x.trace("script end")
	x.r.Steps = append(x.r.Steps, rep.Done...)
	x.r.Warnings = append(x.r.Warnings, rep.Warnings...)
	return rep, rep.Failed, err
}

// lockDevice takes the device lock (see takeLock), unless the plan
// already holds it: `lbc apply DIR` plans under the lock (PlanOptions.Lock),
// and the transaction goes on in that lock session.
func (x *tx) lockDevice(ctx context.Context) error {
	if hl := x.held; hl != nil {
		x.lock, x.live, x.token = hl.ls, hl.live, hl.ls.token
		return nil
	}
	ls, read, err := takeLock(ctx, x.t, x.h, x.dp.Device, x.o.Owner, x.token, x.o.LockTimeout, x.dp.Desired.ManageKeepalived, x.dp.Desired.filePaths(), x.o.Limits)
	x.lock = ls // a lock taken whose read failed is released by unlock
	if err == nil {
		x.live, x.readErr = lockedRead(read)
	}
	return err
}

// unlock releases the device lock, so the lock is free when Apply returns.
func (x *tx) unlock() {
	if x.lock == nil {
		return
	}
	release(x.lock)
	x.trace("unlocked")
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
		x.h.StatePath(): live.StateFile.Fingerprint(),
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
	for _, f := range x.dp.Desired.Files {
		now[f.Path] = live.Files[f.Path]
	}
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

// change runs the whole transaction after the lock as one script
// (host.ChangeScript) and returns the step that failed.
func (x *tx) change(ctx context.Context) (string, error) {
	rt, ops, err := x.runtimePart()
	if err != nil {
		return StepStage, err
	}
	if rt != nil {
		return x.runtimeChange(ctx, rt, ops)
	}
	s, err := host.ChangeScript(x.hostChange(), x.o.Verifier)
	if err != nil {
		return StepStage, err
	}
	return x.runScript(ctx, s)
}

// hostChange is the transaction as its scripts need it.
func (x *tx) hostChange() host.Change {
	d := x.dp.Desired
	return host.Change{
		Device: x.dp.Device, Host: x.h,
		Config: d.Config, ManageKeepalived: d.ManageKeepalived, Keepalived: d.Keepalived,
		VIPsAdd: x.dp.VIPsAdd, VIPsRemove: x.dp.VIPsRemove, VIPs: d.VIPs,
		LiveConfig: x.live.Config, LiveKeepalived: x.live.Keepalived,
		State: x.nextState(),
		Files: x.files, FilesRemove: d.FilesRemove,
	}
}

// nextState is the state.json that write-state writes.
func (x *tx) nextState() []byte {
	if x.state == nil {
		ka := ""
		if x.dp.Desired.ManageKeepalived {
			ka = sha256Hex([]byte(x.dp.Desired.Keepalived))
		}
		st := x.live.State.Next(x.rev, x.o.LBCVersion, x.o.Now(), sha256Hex([]byte(x.dp.Desired.Config)), ka, x.dp.Desired.VIPs)
		st.Files = x.dp.Desired.fileSums()
		x.state = st.Encode()
	}
	return x.state
}

// cleanStaged removes staged files after a failure before any change.
func (x *tx) cleanStaged(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	staged := host.Change{Host: x.h, ManageKeepalived: x.dp.Desired.ManageKeepalived, Files: x.files}
	if _, err := x.t.Run(ctx, host.CleanStagedCommand(staged), nil); err != nil {
		x.r.Warnings = append(x.r.Warnings, "remove staged files: "+shortError("", err).Error())
	}
}

// rollbackTimeout bounds the rollback scripts together (rollback, and
// the second reload when the first was lost); a variable for tests.
var rollbackTimeout = 60 * time.Second

// rollback runs the armed rollback script, verifies the old config runs
// again, and disarms, in one script. It runs even when ctx is cancelled,
// within rollbackTimeout; after that the lock session is closed and the
// host's holder runs the armed txn.sh itself.
func (x *tx) rollback(ctx context.Context) error {
	ctx, cancel := scriptDeadline(context.WithoutCancel(ctx), rollbackTimeout, "the rollback's bound")
	defer cancel()
	c := x.hostChange()
	if x.rt != nil {
		return x.runtimeRollback(ctx, c)
	}
	s, err := host.RollbackScript(c, x.o.Verifier)
	if err != nil {
		return err
	}
	rep, err := runScript(ctx, s, x.lock, func(string) {})
	if err != nil && rep.Failed == host.StepRollbackVerify && c.LiveConfig.Exists && !errors.Is(err, errScriptTimeout) {
		// A reload signalled while the one before it is still under
		// way can be lost (HAProxy's master re-executes itself on
		// each): signal once more and look again before giving up.
		if err2 := x.reloadAgain(ctx, c); err2 != nil {
			return fmt.Errorf("%w; reloaded once more: %w", err, err2)
		}
		return nil
	}
	return err
}

// reloadAgain reloads the restored config once more, verifies it and
// disarms.
func (x *tx) reloadAgain(ctx context.Context, c host.Change) error {
	s, err := host.ReloadAgainScript(c, x.o.Verifier)
	if err != nil {
		return err
	}
	_, err = runScript(ctx, s, x.lock, func(string) {})
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
	out, err := t.Run(ctx, host.WaitUnlockedCommand(x.h), nil)
	if err != nil {
		unknown("wait for the lock", shortError("", err))
		return
	}
	armed := host.ParseArmed(out)
	live, err := readLive(ctx, t, x.h, x.dp.Desired.ManageKeepalived, x.dp.Desired.filePaths(), x.o.Limits)
	if err != nil {
		unknown("read the host", shortError("", err))
		return
	}
	switch {
	case armed:
		unknown("the rollback script is still armed", fmt.Errorf("see %s", x.h.TxnLog()))
	case live.StateFile.Exists && string(live.StateFile.Data) == string(x.nextState()) &&
		live.Config.Fingerprint() == sha256Hex([]byte(x.dp.Desired.Config)):
		x.r.Outcome = OutcomeApplied
		x.r.Err = nil
		x.r.Warnings = append(x.r.Warnings, fmt.Sprintf("connection lost at %s; reconnected: the host committed the change", step))
	case x.sameAsPlan(live) == nil && host.BeforeChange(step):
		// The script failed, or never ran, before it changed anything.
		x.r.Outcome = OutcomeFailedBeforeChange
		x.r.Err = fmt.Errorf("%w (reconnected: the host runs its old state)", stepErr)
	case x.sameAsPlan(live) == nil:
		x.r.Outcome = OutcomeRolledBack
		x.r.Err = fmt.Errorf("%w (reconnected: rolled back by the host)", stepErr)
	default:
		unknown("the host runs neither the old nor the new state", fmt.Errorf("see %s", x.h.TxnLog()))
	}
}

// orDiscard is l, or a logger that drops every record.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
