package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"lbc/internal/exitcode"
	"lbc/internal/gitsrc"
	"lbc/internal/version"
	"lbc/reconcile"
)

// holdMax is the largest fleet that lbc apply DIR plans under the device
// locks, keeping each changed device's connection and lock session open
// until its transaction; a larger one is planned without the locks, as a
// saved plan is, so that the connections open at once stay within
// --parallelism whatever the number of devices (measured with make bench,
// section scale).
const holdMax = 200

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
		c, err = e.hostsCompile()
		if err != nil {
			return e.printLoadError(err)
		}
		repo = c.src.repo
		if err := openConns(); err != nil {
			return e.fail(err)
		}
		// Plan under the device locks: what is shown is what each
		// transaction finds, and the lock costs no extra round trip. Each
		// lock held keeps a connection (and a session on the host) open
		// until its transaction, so a fleet of more than holdMax devices
		// is planned as a saved plan is applied: without the locks, each
		// transaction then takes its lock and refuses a host that changed
		// since the plan (stale), and connections stay within
		// --parallelism.
		dial, lock := conns.Dial, &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout, Held: locks}
		if len(c.res.Devices) > holdMax {
			if dial, err = e.dialer(); err != nil {
				return e.fail(err)
			}
			lock = nil
		}
		if p, err = e.buildPlan(c, dial, lock); err != nil {
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
	// A saved plan holds no certificate: apply reads them again from the
	// source, and refuses one that changed since the plan.
	if r, err := e.certResolver(); err != nil {
		return e.fail(err)
	} else if r != nil {
		opts.Files = r
	}
	var view *progressView
	if isTerminal(e.stderr) && !e.args.JSON {
		// A few lines redrawn in place, whatever the number of devices.
		view = newProgressView(e.stderr, len(p.Devices), time.Now)
		opts.Progress, opts.Done = view.Step, view.Done
	}
	dial := conns.Dial
	if len(p.Devices) > holdMax {
		// One connection a transaction, closed at its end (Conns would
		// keep every device's open until the run ends).
		var err error
		if dial, err = e.dialer(); err != nil {
			return e.fail(err)
		}
	}
	r, err := reconcile.Apply(e.ctx, p, dial, opts)
	if view != nil {
		view.Finish()
	}
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
		Reload:      e.args.Reload,
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
	// On a terminal, a large fleet's applied and unchanged devices are
	// counted, not listed.
	compact := isTerminal(e.stdout) && len(r.Devices) > compactAbove
	return writeApplyText(e.stdout, e.stderr, p, r, compact)
}
