package reconcile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
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
	// Waves splits the devices to change into groups applied one after
	// another (e.g. HA primaries after standbys); nil: one group.
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
		host, _ := os.Hostname()
		opts.Owner = fmt.Sprintf("lbc@%s pid %d", host, os.Getpid())
	}
	res := &ApplyResult{Devices: make([]DeviceResult, len(plan.Devices))}
	index := map[string]int{}
	for i, d := range plan.Devices {
		index[d.Device] = i
	}
	waves := [][]string{nil}
	for _, d := range plan.Devices {
		waves[0] = append(waves[0], d.Device)
	}
	if opts.Waves != nil {
		waves = opts.Waves(plan)
	}
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
				var r DeviceResult
				if stop {
					r = DeviceResult{Device: dp.Device, Outcome: OutcomeSkipped,
						Err: fmt.Errorf("apply %s: not started: %d devices failed (max failures %d)", dp.Device, opts.MaxFailures, opts.MaxFailures)}
				} else {
					r = applyDevice(ctx, dp, plan.Revision, dial, &opts)
				}
				mu.Lock()
				if r.Outcome != OutcomeApplied && r.Outcome != OutcomeUnchanged && r.Outcome != OutcomeSkipped {
					failures++
				}
				mu.Unlock()
				res.Devices[i] = r
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
		if o.Progress != nil {
			o.Progress(dp.Device, step)
		}
	}
	progress(StepConnect)
	t, err := dial(ctx, dp.Host.device(dp.Device))
	if err != nil {
		r.Outcome = OutcomeFailedBeforeChange
		r.Err = fmt.Errorf("apply %s: connect: %w", dp.Device, err)
		return r
	}
	defer t.Close()
	x := &tx{t: t, dp: dp, h: dp.Host, rev: rev, o: o, r: &r, progress: progress}
	x.run(ctx)
	return r
}

// tx is one device's transaction. Each step is a method, named after the
// step, run in this order:
//
//	lock → staleCheck → stage → keepLastGood → arm     (nothing changed yet)
//	addVIPs → saveServerState → swap → reload → verify → removeVIPs → commit
//
// A failure in the first group removes the staged files and reports
// failed-before-change. A failure in the second runs the rollback script
// that arm wrote to <stateDir>/txn.sh (restore last-known-good files,
// re-add removed VIPs, reload, remove added VIPs), verifies the old config
// runs again, and reports rolled-back.
//
// The lock holder on the host runs txn.sh itself if its session ends while
// the script is still armed: when the controller dies or loses the
// connection mid-transaction, the host goes back to its old state, unless
// commit (which writes state.json and disarms in one command) already ran.
// Every file is written beside its target and renamed over it, so each step
// leaves a file old or new, never half written. The next plan then shows
// either the whole change again or none of it.
type tx struct {
	t        Transport
	dp       *DevicePlan
	h        Host
	rev      string
	o        *ApplyOptions
	r        *DeviceResult
	progress func(string)

	lock   Stream
	live   *Live
	before string // verifier snapshot before the reload
}

func (x *tx) run(ctx context.Context) {
	type step struct {
		name string
		fn   func(context.Context) error
	}
	prepare := []step{
		{StepLock, x.lockDevice},
		{StepStaleCheck, x.staleCheck},
		{StepStage, x.stage},
		{StepKeepLastGood, x.keepLastGood},
		{StepArm, x.arm},
	}
	change := []step{
		{StepAddVIPs, x.addVIPs},
		{StepSaveServerState, x.saveServerState},
		{StepSwap, x.swap},
		{StepReload, x.reload},
		{StepVerify, x.verify},
		{StepRemoveVIPs, x.removeVIPs},
		{StepCommit, x.commit},
	}
	defer x.unlock()
	dev := x.dp.Device
	for _, s := range prepare {
		x.progress(s.name)
		if err := s.fn(ctx); err != nil {
			x.r.Outcome = OutcomeFailedBeforeChange
			x.r.Err = fmt.Errorf("apply %s: %s: %w", dev, s.name, err)
			if x.lock != nil {
				x.cleanStaged(ctx)
			}
			return
		}
		x.r.Steps = append(x.r.Steps, s.name)
	}
	for _, s := range change {
		x.progress(s.name)
		if err := s.fn(ctx); err != nil {
			stepErr := fmt.Errorf("apply %s: %s: %w", dev, s.name, err)
			x.progress(StepRollback)
			if rbErr := x.rollback(ctx); rbErr != nil {
				x.r.Outcome = OutcomeFailed
				x.r.Err = errors.Join(stepErr, fmt.Errorf("apply %s: rollback: %w (the host runs "+
					"%s when the lock session ends; see %s)", dev, rbErr, x.h.txnPath(), path.Join(x.h.StateDir, "txn.log")))
				return
			}
			x.r.Steps = append(x.r.Steps, StepRollback)
			x.r.Outcome = OutcomeRolledBack
			x.r.Err = stepErr
			return
		}
		x.r.Steps = append(x.r.Steps, s.name)
	}
	x.r.Outcome = OutcomeApplied
}

// lockDevice takes <stateDir>/lock with flock, held by a session whose
// stdin stays open until unlock; the lock ends with the session.
func (x *tx) lockDevice(ctx context.Context) error {
	st, err := x.t.Stream(ctx, lockCmd(x.h, x.o.Owner, x.o.LockTimeout))
	if err != nil {
		return err
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(st.Stdout()).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	wait := x.o.LockTimeout + 10*time.Second
	select {
	case l := <-line:
		if l == "locked" {
			x.lock = st
			return nil
		}
	case <-time.After(wait):
	case <-ctx.Done():
	}
	st.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *ExitError
	if err := st.Wait(); !errors.As(err, &ee) || ee.Code != 1 { // flock exits 1 when the lock is busy
		if err == nil {
			err = errors.New("lock holder ended without taking the lock")
		}
		return err
	}
	owner, _ := x.t.Run(ctx, ownerCmd(x.h), nil)
	who := strings.TrimSpace(string(owner))
	if who == "" {
		who = "an unknown owner"
	}
	return &lockedError{x.dp.Device, who}
}

// lockedError is ErrLocked naming the device and who holds it.
type lockedError struct{ device, owner string }

func (e *lockedError) Error() string        { return "device " + e.device + " is locked by " + e.owner }
func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// unlock disarms nothing: it closes the lock session's stdin and waits
// (bounded) for the holder to end, so the lock is free when Apply returns.
func (x *tx) unlock() {
	if x.lock == nil {
		return
	}
	x.lock.Stdin().Close()
	done := make(chan struct{})
	go func() { x.lock.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a rollback run by the holder may take a while
	}
	x.lock.Close()
}

// staleCheck re-reads the device under the lock and refuses the plan when
// any file or the VIP addresses differ from what the plan saw.
func (x *tx) staleCheck(ctx context.Context) error {
	live, err := ReadLive(ctx, x.t, x.h, x.dp.Desired.ManageKeepalived)
	if err != nil {
		return err
	}
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
	x.live = live
	return nil
}

// stage uploads the new files beside the live ones and runs the device's
// check commands on them.
func (x *tx) stage(ctx context.Context) error {
	if _, err := x.t.Run(ctx, writeCmd(staged(x.h.Config)), strings.NewReader(x.dp.Desired.Config)); err != nil {
		return err
	}
	if x.h.Check != "" {
		if _, err := x.t.Run(ctx, checkCmd(x.h.Check, staged(x.h.Config)), nil); err != nil {
			return fmt.Errorf("check haproxy.cfg: %w", err)
		}
	} else {
		x.r.Warnings = append(x.r.Warnings, "no haproxy check command: config not checked on the host")
	}
	if x.dp.Desired.ManageKeepalived {
		if _, err := x.t.Run(ctx, writeCmd(staged(x.h.KeepalivedConfig)), strings.NewReader(x.dp.Desired.Keepalived)); err != nil {
			return err
		}
		if x.h.KeepalivedCheck != "" {
			if _, err := x.t.Run(ctx, checkCmd(x.h.KeepalivedCheck, staged(x.h.KeepalivedConfig)), nil); err != nil {
				return fmt.Errorf("check keepalived.conf: %w", err)
			}
		}
	}
	return nil
}

// cleanStaged removes staged files after a failure before any change.
func (x *tx) cleanStaged(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := x.t.Run(ctx, removeCmd(append(stagedList(x.h, x.dp), x.h.txnPath())...), nil); err != nil {
		x.r.Warnings = append(x.r.Warnings, "remove staged files: "+err.Error())
	}
}

// keepLastGood copies the live files to <stateDir>/last-good.
func (x *tx) keepLastGood(ctx context.Context) error {
	cmd := keepLastGoodCmd(x.h.Config, x.h.lastGood("haproxy.cfg"))
	if x.dp.Desired.ManageKeepalived {
		cmd += " && " + keepLastGoodCmd(x.h.KeepalivedConfig, x.h.lastGood("keepalived.conf"))
	}
	_, err := x.t.Run(ctx, cmd, nil)
	return err
}

// arm writes the rollback script <stateDir>/txn.sh.
func (x *tx) arm(ctx context.Context) error {
	script, err := rollbackScript(x.h, x.dp, x.live)
	if err != nil {
		return err
	}
	_, err = x.t.Run(ctx, writeCmd(x.h.txnPath()), strings.NewReader(script))
	return err
}

// addVIPs adds the new addresses before the reload: a config binding an
// address the host does not have yet fails to load.
func (x *tx) addVIPs(ctx context.Context) error {
	if len(x.dp.VIPsAdd) == 0 {
		return nil
	}
	cmd, err := addVIPCmd(x.h, x.dp.VIPsAdd)
	if err != nil {
		return err
	}
	_, err = x.t.Run(ctx, cmd, nil)
	return err
}

// saveServerState dumps server states for the new process; a host whose
// HAProxy does not run yet has none (a warning, not a failure).
func (x *tx) saveServerState(ctx context.Context) error {
	if _, err := x.t.Run(ctx, saveServerStateCmd(x.h), nil); err != nil {
		if errors.Is(err, ErrConnectionLost) {
			return err
		}
		x.r.Warnings = append(x.r.Warnings, "save server state: "+err.Error())
	}
	return nil
}

// swap renames the staged files over the live ones.
func (x *tx) swap(ctx context.Context) error {
	cmd := swapCmd(x.h.Config)
	if x.dp.Desired.ManageKeepalived {
		cmd += " && " + swapCmd(x.h.KeepalivedConfig)
	}
	_, err := x.t.Run(ctx, cmd, nil)
	return err
}

// reload runs the device's reload commands after recording what runs now.
func (x *tx) reload(ctx context.Context) error {
	before, err := x.o.Verifier.Before(ctx, x.t, x.h)
	if err != nil {
		return err
	}
	x.before = before
	if _, err := x.t.Run(ctx, x.h.Reload, nil); err != nil {
		return err
	}
	if x.dp.Desired.ManageKeepalived && x.h.KeepalivedReload != "" {
		if _, err := x.t.Run(ctx, x.h.KeepalivedReload, nil); err != nil {
			return fmt.Errorf("keepalived: %w", err)
		}
	}
	return nil
}

// verify confirms the host runs the new config.
func (x *tx) verify(ctx context.Context) error {
	return x.o.Verifier.After(ctx, x.t, x.h, x.before, []byte(x.dp.Desired.Config))
}

// removeVIPs removes the addresses lbc added and no longer wants, then
// replaces the wanted ones: deleting the primary address of a subnet makes
// Linux delete its secondaries too (unless promote_secondaries is set).
func (x *tx) removeVIPs(ctx context.Context) error {
	if len(x.dp.VIPsRemove) == 0 {
		return nil
	}
	cmd, err := delVIPCmd(x.h, x.dp.VIPsRemove)
	if err != nil {
		return err
	}
	if len(x.dp.Desired.VIPs) > 0 {
		add, err := addVIPCmd(x.h, x.dp.Desired.VIPs)
		if err != nil {
			return err
		}
		cmd += " && " + add
	}
	_, err = x.t.Run(ctx, cmd, nil)
	return err
}

// commit writes state.json and disarms the rollback script in one command.
func (x *tx) commit(ctx context.Context) error {
	ka := ""
	if x.dp.Desired.ManageKeepalived {
		ka = sha256Hex([]byte(x.dp.Desired.Keepalived))
	}
	st := x.live.State.next(x.rev, x.o.LBCVersion, x.o.Now(), sha256Hex([]byte(x.dp.Desired.Config)), ka, x.dp.Desired.VIPs)
	cmd := writeCmd(x.h.statePath()) + " && " + removeCmd(x.h.txnPath())
	_, err := x.t.Run(ctx, cmd, strings.NewReader(string(st.encode())))
	return err
}

// rollback runs the armed rollback script, verifies the old config runs
// again, and disarms. It runs even when ctx is cancelled.
func (x *tx) rollback(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	before, _ := x.o.Verifier.Before(ctx, x.t, x.h)
	if _, err := x.t.Run(ctx, "sh "+q(x.h.txnPath()), nil); err != nil {
		return err
	}
	if x.live.Config.Exists {
		if err := x.o.Verifier.After(ctx, x.t, x.h, before, x.live.Config.Data); err != nil {
			return err
		}
	}
	_, err := x.t.Run(ctx, removeCmd(x.h.txnPath()), nil)
	return err
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
	if dp.Desired.ManageKeepalived {
		restore(live.Keepalived, h.KeepalivedConfig, h.lastGood("keepalived.conf"))
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
	if dp.Desired.ManageKeepalived && h.KeepalivedReload != "" && live.Keepalived.Exists {
		fmt.Fprintf(&b, "( %s ) || rc=1\n", h.KeepalivedReload)
	}
	if len(dp.VIPsAdd) > 0 {
		cmd, err := delVIPCmd(h, dp.VIPsAdd)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s || rc=1\n", cmd)
		// Deleting a subnet's primary address deletes its secondaries:
		// put back every address lbc had before.
		var old []string
		isNew := set(dp.VIPsAdd)
		for _, v := range dp.Desired.VIPs {
			if !isNew[v] {
				old = append(old, v)
			}
		}
		if old = append(old, dp.VIPsRemove...); len(old) > 0 {
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

func stagedList(h Host, dp *DevicePlan) []string {
	fs := []string{staged(h.Config), staged(h.Config) + ".lbc-tmp"}
	if dp.Desired.ManageKeepalived {
		fs = append(fs, staged(h.KeepalivedConfig), staged(h.KeepalivedConfig)+".lbc-tmp")
	}
	return fs
}
