package cli

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"lbc/internal/exitcode"
	"lbc/internal/gitsrc"
	"lbc/internal/version"
	"lbc/reconcile"
)

// apply applies a saved plan, or plans and applies the specs of DIR.
func (e *env) apply() int {
	var (
		p    *reconcile.Plan
		repo *gitsrc.Repo
		c    *compiled
	)
	// The plan's connections stay open for the transactions, and so do
	// the locks it took on the devices it changes.
	var conns *reconcile.Conns
	locks := reconcile.NewLocks()
	defer func() {
		locks.Close()
		if conns != nil {
			conns.Close()
		}
	}()
	openConns := func() error {
		dial, err := e.dialer()
		if err == nil && conns == nil {
			conns = reconcile.NewConns(dial)
		}
		return err
	}
	if st, err := os.Stat(e.args.Source.Dir); err == nil && !st.IsDir() && e.args.Source.GitRev == "" {
		if e.args.Shard.Count > 0 {
			return e.fail(fmt.Errorf("--shard selects devices of a spec tree, not of a saved plan %s (plan with --shard instead)", e.args.Source.Dir))
		}
		f, err := os.Open(e.args.Source.Dir)
		if err != nil {
			return e.fail(err)
		}
		p, err = reconcile.LoadPlan(f)
		f.Close()
		if err != nil {
			return e.fail(fmt.Errorf("%s: %w", e.args.Source.Dir, err))
		}
		if r, err := gitsrc.Open("."); err == nil {
			repo = r
		}
	} else {
		var err error
		c, err = e.compileSpecs()
		if err != nil {
			return e.printLoadError(err)
		}
		repo = c.src.repo
		if err := openConns(); err != nil {
			return e.fail(err)
		}
		// Plan under the device locks: what is shown is what each
		// transaction finds, and the lock costs no extra round trip.
		lock := &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout, Held: locks}
		if p, err = e.buildPlan(c, conns.Dial, lock); err != nil {
			return e.fail(err)
		}
		// With --json, stdout holds the results only (one object a
		// device and a summary), so that a shard's output can be collected.
		if !e.args.JSON {
			if err := writePlanText(e.stdout, p, color(e.stdout)); err != nil {
				return e.fail(err)
			}
		}
	}
	locks.ReleaseUnchanged(p)
	if !p.HasChanges() {
		if e.args.JSON {
			if err := e.printApply(p, unchangedResult(p)); err != nil {
				return e.fail(err)
			}
		} else {
			fmt.Fprintln(e.stdout, "nothing to apply: every reachable device is up to date")
		}
		if c != nil {
			if err := e.updateLock(c); err != nil {
				return e.fail(err)
			}
		}
		_, _, unreachable, failed := p.Counts()
		if unreachable+failed > 0 {
			return exitcode.Error
		}
		return exitcode.OK
	}
	if err := openConns(); err != nil {
		return e.fail(err)
	}
	opts := e.applyOptions(repo)
	opts.Locks, opts.Log = locks, e.log
	if isTerminal(e.stderr) && !e.args.JSON {
		var mu sync.Mutex
		start := time.Now()
		opts.Progress = func(dev, step string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(e.stderr, "%6.2fs %s: %s\n", time.Since(start).Seconds(), dev, step)
		}
	}
	r, err := reconcile.Apply(e.ctx, p, conns.Dial, opts)
	if err != nil {
		return e.fail(err)
	}
	if err := e.printApply(p, r); err != nil {
		return e.fail(err)
	}
	code := applyExitCode(r)
	if c != nil && code == exitcode.OK {
		if err := e.updateLock(c); err != nil {
			return e.fail(err)
		}
	}
	return code
}

// applyOptions is the one apply policy of every command that applies
// (apply DIR, apply PLANFILE, watch --apply): the flags, and the revision
// guard, asked per device under its lock before anything changes, that
// refuses a host running a newer revision than the specs' (or one repo
// cannot order) unless --allow-downgrade (or --force). repo is nil when
// the specs are not in a Git repository.
func (e *env) applyOptions(repo *gitsrc.Repo) reconcile.ApplyOptions {
	return reconcile.ApplyOptions{
		Parallelism: e.args.Parallelism,
		MaxFailures: e.args.MaxFailures,
		LockTimeout: e.args.LockTimeout,
		LBCVersion:  version.Version,
		Guard:       gitsrc.Guard{Repo: repo, AllowDowngrade: e.args.AllowDowngrade, Force: e.args.Force},
		Adopt:       e.args.Adopt,
		Limits:      e.limits(),
	}
}

// unchangedResult is the result of an apply that had nothing to do: each
// device unchanged, or failed before any change when the plan could not
// read it.
func unchangedResult(p *reconcile.Plan) *reconcile.ApplyResult {
	r := &reconcile.ApplyResult{Devices: make([]reconcile.DeviceResult, len(p.Devices))}
	for i, d := range p.Devices {
		r.Devices[i] = reconcile.DeviceResult{Device: d.Device, Outcome: reconcile.OutcomeUnchanged}
		if d.Status != reconcile.StatusUnchanged {
			r.Devices[i].Outcome = reconcile.OutcomeFailedBeforeChange
			r.Devices[i].Err = errors.New(d.Error)
		}
	}
	return r
}

// printApply prints an apply's result in the requested view.
func (e *env) printApply(p *reconcile.Plan, r *reconcile.ApplyResult) error {
	if e.args.JSON {
		return writeApplyJSON(e.stdout, p, r)
	}
	return writeApplyText(e.stdout, e.stderr, p, r)
}
