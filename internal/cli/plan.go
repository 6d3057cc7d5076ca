package cli

import (
	"fmt"
	"os"
	"time"

	"lbc/internal/atomicfs"
	"lbc/internal/exitcode"
	"lbc/reconcile"
)

// plan compiles the specs, reads every host and prints what apply would change.
func (e *env) plan() int {
	c, err := e.hostsCompile()
	if err != nil {
		return e.printLoadError(err)
	}
	dial, err := e.dialer()
	if err != nil {
		return e.fail(err)
	}
	p, err := e.buildPlan(c, dial, nil)
	if err != nil {
		return e.fail(err)
	}
	if err := e.writePlan(p); err != nil {
		return e.fail(err)
	}
	if e.args.PlanOut != "" {
		if err := savePlan(e.args.PlanOut, p); err != nil {
			return e.fail(err)
		}
		fmt.Fprintf(e.stderr, "plan saved to %s\n", e.args.PlanOut)
	}
	_, _, unreachable, failed := p.Counts()
	switch {
	case unreachable+failed > 0:
		return exitcode.Error
	case e.args.DetailedExitcode && p.HasChanges():
		return exitcode.Changes
	}
	return exitcode.OK
}

// buildPlan reads the hosts of a compiled tree.
func (e *env) buildPlan(c *compiled, dial reconcile.Dialer, lock *reconcile.PlanLock) (*reconcile.Plan, error) {
	opts := reconcile.PlanOptions{Parallelism: e.args.Parallelism, Previous: c.prev, Lock: lock, Log: e.log, Limits: e.limits()}
	if e.certs != nil {
		opts.Files = e.certs
	}
	p, err := reconcile.BuildPlan(e.ctx, c.spec, c.res, dial, opts)
	if p != nil && c.shardNote != "" {
		p.Notes = append([]string{c.shardNote}, p.Notes...)
	}
	if p != nil {
		now := time.Now()
		for i := range p.Devices {
			if art := c.res.Devices[p.Devices[i].Device]; art != nil {
				p.Devices[i].Certificates = deviceCerts(c.spec, art.Balancers, c.certs, e.args.CertWarn, now)
			}
		}
	}
	return p, err
}

// writePlan prints p in the requested view.
func (e *env) writePlan(p *reconcile.Plan) error {
	switch {
	case e.args.JSON:
		return writePlanJSON(e.stdout, p)
	case e.args.Markdown:
		return writePlanMarkdown(e.stdout, p)
	}
	return writePlanText(e.stdout, p, color(e.stdout))
}

func savePlan(path string, p *reconcile.Plan) error {
	f, err := os.CreateTemp("", "lbc-plan-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := p.Save(f); err != nil {
		f.Close()
		return fmt.Errorf("save plan: %w", err)
	}
	f.Close()
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return err
	}
	return atomicfs.WriteFile(path, data, 0o600)
}
