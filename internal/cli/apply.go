package cli

import (
	"encoding/json"
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
	// The plan's connections stay open for the transactions.
	var pool *reconcile.Pool
	defer func() {
		if pool != nil {
			pool.Close()
		}
	}()
	openPool := func() error {
		dial, err := e.dialer()
		if err == nil && pool == nil {
			pool = reconcile.NewPool(dial)
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
			return e.fail(fmt.Errorf("load plan %s: %w", e.args.Source.Dir, err))
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
		if err := openPool(); err != nil {
			return e.fail(err)
		}
		// Plan under the device locks: what is shown is what each
		// transaction finds, and the lock costs no extra round trip.
		lock := &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout}
		if p, err = e.buildPlan(c, pool.Dial, lock); err != nil {
			return e.fail(err)
		}
		if err := reconcile.WriteText(e.stdout, p, reconcile.ViewOptions{Color: color(e.stdout)}); err != nil {
			return e.fail(err)
		}
	}
	refused := e.guardRevisions(p, repo)
	if pool != nil {
		pool.ReleaseUnchanged(p)
	}
	if !p.HasChanges() && refused == 0 {
		fmt.Fprintln(e.stdout, "nothing to apply: every reachable device is up to date")
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
	if err := openPool(); err != nil {
		return e.fail(err)
	}
	opts := reconcile.ApplyOptions{
		Parallelism: e.args.Parallelism,
		MaxFailures: e.args.MaxFailures,
		LockTimeout: e.args.LockTimeout,
		LBCVersion:  version.Version,
	}
	if isTerminal(e.stderr) && !e.args.JSON {
		var mu sync.Mutex
		start := time.Now()
		opts.Progress = func(dev, step string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(e.stderr, "%6.2fs %s: %s\n", time.Since(start).Seconds(), dev, step)
		}
	}
	r, err := reconcile.Apply(e.ctx, p, pool.Dial, opts)
	if err != nil {
		return e.fail(err)
	}
	e.printApply(p, r)
	code := r.ExitCode()
	if refused > 0 && code == exitcode.OK {
		code = exitcode.Error
	}
	if c != nil && code == exitcode.OK {
		if err := e.updateLock(c); err != nil {
			return e.fail(err)
		}
	}
	return code
}

// guardRevisions refuses devices whose host runs a revision this apply
// would downgrade (or one the repository does not know), unless allowed.
// Refused devices are taken out of the plan; it returns how many.
func (e *env) guardRevisions(p *reconcile.Plan, repo *gitsrc.Repo) int {
	n := 0
	for i := range p.Devices {
		d := &p.Devices[i]
		if d.Status != reconcile.StatusChanges && d.Status != reconcile.StatusUnchanged {
			continue
		}
		err := gitsrc.CheckRevision(repo, d.LiveRevision, p.Revision, e.args.AllowDowngrade, e.args.Force)
		if err == nil {
			continue
		}
		d.Status = reconcile.StatusError
		d.Error = fmt.Sprintf("refused: %v", err)
		fmt.Fprintf(e.stderr, "apply %s: refused: %v\n", d.Device, err)
		n++
	}
	return n
}

// printApply prints one line per device and a summary.
func (e *env) printApply(p *reconcile.Plan, r *reconcile.ApplyResult) {
	counts := map[reconcile.Outcome]int{}
	enc := json.NewEncoder(e.stdout)
	for _, d := range r.Devices {
		counts[d.Outcome]++
		msg := ""
		if d.Err != nil {
			msg = d.Err.Error()
		}
		if e.args.JSON {
			enc.Encode(map[string]any{"device": d.Device, "outcome": d.Outcome, "steps": d.Steps, "warnings": d.Warnings, "error": msg})
			continue
		}
		switch {
		case d.Outcome == reconcile.OutcomeRolledBack:
			fmt.Fprintf(e.stdout, "%s: rolled back: %s\n", d.Device, msg)
		case msg != "":
			fmt.Fprintf(e.stdout, "%s: %s: %s\n", d.Device, d.Outcome, msg)
		default:
			fmt.Fprintf(e.stdout, "%s: %s\n", d.Device, d.Outcome)
		}
		for _, w := range d.Warnings {
			fmt.Fprintf(e.stdout, "%s: warning: %s\n", d.Device, w)
		}
	}
	sum := fmt.Sprintf("%d applied, %d unchanged, %d rolled back, %d failed, %d skipped",
		counts[reconcile.OutcomeApplied], counts[reconcile.OutcomeUnchanged], counts[reconcile.OutcomeRolledBack],
		counts[reconcile.OutcomeFailed]+counts[reconcile.OutcomeFailedBeforeChange], counts[reconcile.OutcomeSkipped])
	if e.args.JSON {
		enc.Encode(map[string]any{"summary": sum, "revision": p.Revision, "exitCode": r.ExitCode()})
		return
	}
	fmt.Fprintf(e.stdout, "apply: %s (revision %s)\n", sum, orNone(p.Revision))
}
