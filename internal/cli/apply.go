package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"lbc/compiler"
	"lbc/internal/certsrc"
	"lbc/internal/exitcode"
	"lbc/internal/gitsrc"
	"lbc/internal/version"
	"lbc/reconcile"
	"lbc/schema"
)

// apply applies a saved plan, or plans and applies the specs of DIR.
func (e *env) apply() int {
	if st, err := os.Stat(e.args.Source.Dir); err == nil && !st.IsDir() && e.args.Source.GitRev == "" {
		return e.applySaved()
	}
	return e.applyDir()
}

// applySaved applies the saved plan named by DIR: one connection per
// device changed, closed at the end of its transaction, which takes the
// device's lock and refuses a host that changed since the plan (stale).
func (e *env) applySaved() int {
	if e.args.Shard.Count > 0 {
		return e.fail(fmt.Errorf("--shard selects devices of a spec tree, not of a saved plan %s (plan with --shard instead)", e.args.Source.Dir))
	}
	f, err := os.Open(e.args.Source.Dir)
	if err != nil {
		return e.fail(err)
	}
	p, err := reconcile.LoadPlan(f)
	f.Close()
	if err != nil {
		return e.fail(fmt.Errorf("%s: %w", e.args.Source.Dir, err))
	}
	var repo *gitsrc.Repo
	if r, err := gitsrc.Open("."); err == nil {
		repo = r
	}
	if !p.HasChanges() {
		return e.nothingToApply(p, nil)
	}
	dial, err := e.dialer()
	if err != nil {
		return e.fail(err)
	}
	opts, err := e.applyRunOptions(repo)
	if err != nil {
		return e.fail(err)
	}
	view := e.progress(&opts, len(p.Devices))
	r, err := reconcile.Apply(e.ctx, p, dial, opts)
	if view != nil {
		view.Finish()
	}
	if err != nil {
		return e.fail(err)
	}
	return e.applied(p, r, nil)
}

// applyDir plans and applies the specs of DIR with reconcile.PlanApply:
// each device is dialled once, locked and read, its plan printed (text
// view, in name order), and its change applied on that connection in that
// lock session, at most --parallelism connections open at once.
func (e *env) applyDir() int {
	c, err := e.hostsCompile()
	if err != nil {
		return e.printLoadError(err)
	}
	dial, err := e.dialer()
	if err != nil {
		return e.fail(err)
	}
	opts, err := e.applyRunOptions(c.src.repo)
	if err != nil {
		return e.fail(err)
	}
	po := reconcile.PlanOptions{Parallelism: e.args.Parallelism, Previous: c.prev, Log: e.log, Limits: e.limits(),
		Lock: &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout}}
	if e.certs != nil {
		po.Files = e.certs
	}
	view := e.progress(&opts, len(c.res.Devices))
	// With --json, stdout holds the results only (one object a device
	// and a summary), so that a shard's output can be collected.
	var pr *planPrinter
	if !e.args.JSON {
		pr = newPlanPrinter(e.stdout, len(c.res.Devices), color(e.stdout), view)
	}
	p, r, err := reconcile.PlanApply(e.ctx, c.spec, c.res, dial, po, opts, e.planned(c.spec, c.res, c.certs, pr))
	if view != nil {
		view.Finish()
	}
	if err != nil {
		return e.fail(err)
	}
	if c.shardNote != "" {
		p.Notes = append([]string{c.shardNote}, p.Notes...)
	}
	if pr != nil {
		if err := pr.finish(p); err != nil {
			return e.fail(err)
		}
	}
	if !p.HasChanges() {
		return e.nothingToApply(p, c)
	}
	return e.applied(p, r, c)
}

// planned is the callback of reconcile.PlanApply: it adds each device's
// certificates (from infos) to its plan and hands it to pr (nil: no text
// view).
func (e *env) planned(spec *schema.Spec, res *compiler.Result, infos map[string]certsrc.Info, pr *planPrinter) func(int, *reconcile.DevicePlan) {
	now := time.Now()
	return func(i int, dp *reconcile.DevicePlan) {
		if art := res.Devices[dp.Device]; art != nil {
			dp.Certificates = deviceCerts(spec, art.Balancers, infos, e.args.CertWarn, now)
		}
		if pr != nil {
			pr.planned(i, dp)
		}
	}
}

// applyRunOptions are applyOptions with the locks, log and certificate
// source of this run. A saved plan holds no certificate: apply reads
// them again from the source, and refuses one that changed since the plan.
func (e *env) applyRunOptions(repo *gitsrc.Repo) (reconcile.ApplyOptions, error) {
	opts := e.applyOptions(repo)
	opts.Log = e.log
	r, err := e.certResolver()
	if err != nil {
		return opts, err
	}
	if r != nil {
		opts.Files = r
	}
	return opts, nil
}

// progress starts the progress display of an apply to total devices on a
// terminal (a few lines redrawn in place, whatever the number of
// devices); nil when stderr is not a terminal or with --json.
func (e *env) progress(opts *reconcile.ApplyOptions, total int) *progressView {
	if !isTerminal(e.stderr) || e.args.JSON {
		return nil
	}
	view := newProgressView(rawTerm(e.stderr), total, time.Now)
	opts.Progress, opts.Done = view.Step, view.Done
	return view
}

// rawTerm is the terminal under w, a termWriter, which would escape the
// progress display's own cursor movements (the display escapes the names
// it shows itself).
func rawTerm(w io.Writer) io.Writer {
	if t, ok := w.(termWriter); ok {
		return t.w
	}
	return w
}

// nothingToApply ends an apply whose plan has no change; c, when the
// specs were compiled, gets its lock file updated.
func (e *env) nothingToApply(p *reconcile.Plan, c *compiled) int {
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

// applied prints an apply's result and returns its exit code; c, when
// the specs were compiled, gets its lock file updated when every device
// is applied or unchanged.
func (e *env) applied(p *reconcile.Plan, r *reconcile.ApplyResult, c *compiled) int {
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
