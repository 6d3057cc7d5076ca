package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"lbc/compiler"
	"lbc/internal/atomicfs"
	"lbc/internal/certsrc"
	"lbc/internal/exitcode"
	"lbc/internal/outdir"
	"lbc/internal/shard"
	"lbc/internal/version"
	"lbc/internal/watch"
	"lbc/reconcile"
	"lbc/schema"
)

// rendered is a compile's files: device → file name → content.
type rendered map[string]map[string][]byte

func renderedOf(res *compiler.Result) rendered {
	r := rendered{}
	for name, d := range res.Devices {
		r[name] = d.Files()
	}
	return r
}

// changedDevices returns the files of the devices whose artifacts differ
// between a and b, as they were in a and as they are in b. Artifacts are
// compared by pointer: Recompile keeps the artifacts of a device it did not
// render again, so the devices it did not touch are left out unread.
func changedDevices(a, b *compiler.Result) (old, new rendered) {
	old, new = rendered{}, rendered{}
	for name, d := range b.Devices {
		if p := a.Devices[name]; p != d {
			new[name] = d.Files()
			if p != nil {
				old[name] = p.Files()
			}
		}
	}
	for name, p := range a.Devices {
		if _, ok := b.Devices[name]; !ok {
			old[name] = p.Files()
		}
	}
	return old, new
}

// readRendered reads a compile output directory; a missing one is nil.
func readRendered(dir string) (rendered, error) {
	r := rendered{}
	devs, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		files := map[string][]byte{}
		names := slices.Clone(compiler.FileNames)
		if es, err := os.ReadDir(filepath.Join(dir, d.Name())); err == nil {
			for _, e := range es {
				if e.Type().IsRegular() && compiler.IsMapName(e.Name()) {
					names = append(names, e.Name())
				}
			}
		}
		for _, f := range names {
			if b, err := os.ReadFile(filepath.Join(dir, d.Name(), f)); err == nil {
				files[f] = b
			}
		}
		r[d.Name()] = files
	}
	return r, nil
}

// diffRendered prints the unified diffs from old to new and returns how
// many files changed.
func diffRendered(w func(string), old, new rendered) int {
	keys := map[string]bool{}
	for d, fs := range old {
		for f := range fs {
			keys[d+"/"+f] = true
		}
	}
	for d, fs := range new {
		for f := range fs {
			keys[d+"/"+f] = true
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	n := 0
	for _, k := range names {
		dev, file, _ := strings.Cut(k, "/")
		a, b := old[dev][file], new[dev][file]
		if string(a) == string(b) {
			continue
		}
		n++
		w(reconcile.UnifiedDiff("old/"+k, "new/"+k, a, b))
	}
	return n
}

// writeChanged writes the files of new that differ from old into dir, each
// atomically, and removes devices that are gone. dir is marked as lbc's
// (outdir.Check has allowed it).
func writeChanged(dir string, old, new rendered) error {
	if _, err := os.Lstat(filepath.Join(dir, outdir.Marker)); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := outdir.Mark(dir); err != nil {
			return err
		}
	}
	for dev, files := range new {
		if err := os.MkdirAll(filepath.Join(dir, dev), 0o755); err != nil {
			return err
		}
		for f, b := range files {
			if string(old[dev][f]) == string(b) {
				continue
			}
			if err := atomicfs.WriteFile(filepath.Join(dir, dev, f), b, 0o644); err != nil {
				return err
			}
		}
		for f := range old[dev] {
			if _, ok := files[f]; !ok {
				os.Remove(filepath.Join(dir, dev, f))
			}
		}
	}
	for dev := range old {
		if _, ok := new[dev]; !ok {
			os.RemoveAll(filepath.Join(dir, dev))
		}
	}
	return nil
}

// watch recompiles on every change of the spec tree and prints what would
// change: the rendered files (offline, the default), the live hosts
// (--plan), or applies it (--apply). Invalid specs print their errors and
// the last good result is kept.
func (e *env) watch() int {
	dir := e.args.Source.Dir
	if e.args.Out != "" {
		if err := outdir.Check(e.args.Out, dir); err != nil {
			return e.fail(err)
		}
	}
	src, err := e.openSource()
	if err != nil {
		return e.fail(err)
	}
	var conns *reconcile.Conns
	if e.args.WatchPlan || e.args.WatchApply {
		dial, err := e.dialer()
		if err != nil {
			return e.fail(err)
		}
		// One connection a device for the whole watch: every cycle reads
		// the hosts again, and a connection that died is dialled anew (a
		// fleet of more than holdMax devices keeps none, see watchHosts).
		conns = reconcile.NewConns(dial)
		defer conns.Close()
	}
	w, err := watch.New(dir, watch.Options{Debounce: e.args.Debounce, Interval: e.args.Interval,
		Logf: func(f string, a ...any) { fmt.Fprintf(e.stderr, "watch: "+f+"\n", a...) }})
	if err != nil {
		return e.fail(err)
	}
	loader := watch.NewLimitedLoader(dir, e.args.Limits)
	loader.Disk = e.cache()
	var last *compiler.Result // the last good compile
	first := true             // no good compile yet
	// The rendered files of OUT may have been edited: their diffs are escaped.
	out := func(s string) { fmt.Fprint(e.stdout, termText(s)) }
	cycle := func(ctx context.Context, changed []string) error {
		start := time.Now()
		spec, err := loader.Load(ctx, changed)
		if ctx.Err() != nil {
			return nil // stopping: SIGINT or SIGTERM
		}
		if err != nil {
			e.printWatchError(err, src.display)
			return nil
		}
		res, err := e.compileWatched(src, spec, last)
		if err != nil {
			e.printWatchError(err, src.display)
			return nil
		}
		took := time.Since(start)
		prev := last
		last = res
		if e.args.WatchPlan || e.args.WatchApply {
			return e.watchHosts(ctx, spec, res, src, conns, changed)
		}
		if first {
			// OUT may hold an earlier compile: bring it up to date, then
			// say what is watched (no diff against what OUT held).
			first = false
			if e.args.Out != "" {
				old, err := readRendered(e.args.Out)
				if err != nil {
					return err
				}
				if err := writeChanged(e.args.Out, old, renderedOf(res)); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stdout, "watching %s: %d devices, %d balancers (compiled in %d ms)\n",
				termLine(dir), len(spec.Devices), len(spec.Balancers), took.Milliseconds())
			return nil
		}
		old, cur := changedDevices(prev, res)
		if e.args.Out != "" {
			if err := writeChanged(e.args.Out, old, cur); err != nil {
				return err
			}
		}
		n := diffRendered(out, old, cur)
		fmt.Fprintf(e.stdout, "%s %s: %d file(s) changed (reloaded %d instance(s), compiled in %d ms)\n",
			time.Now().Format("15:04:05.000"), describeChange(changed), n, len(loader.Reloaded), took.Milliseconds())
		return nil
	}
	if err := cycle(e.ctx, nil); err != nil {
		return e.fail(err)
	}
	if err := w.Run(e.ctx, cycle); err != nil && !errors.Is(err, context.Canceled) {
		return e.fail(err)
	}
	fmt.Fprintln(e.stderr, "watch: stopped")
	return exitcode.OK
}

func describeChange(changed []string) string {
	if changed == nil {
		return "interval"
	}
	// File names are escaped: a name may hold any byte but / and NUL.
	return "change in " + termLine(strings.Join(changed, ", "))
}

// compileWatched compiles spec with the lock beside the specs (re-read on
// every cycle: it is not a .cue file, so the watcher does not report it),
// as lbc compile would; from prev, the last good compile, it does only the
// work the changes need (see compiler.Recompile).
func (e *env) compileWatched(src *specSource, spec *schema.Spec, prev *compiler.Result) (*compiler.Result, error) {
	lock, err := readLock(src)
	if err != nil {
		return nil, err
	}
	rev := src.revision
	if src.repo != nil {
		if r, err := src.repo.Stamp(src.dir); err == nil {
			rev = r
		}
	}
	return compiler.Recompile(spec, lock, prev, compiler.Options{Version: version.Version, Revision: rev})
}

// holdMax is the largest fleet that lbc watch keeps a connection to each
// device for (from one cycle to the next, and with --apply from the plan,
// taken under the device locks, to the transactions); a larger one keeps
// none, so that the connections open at once stay within --parallelism:
// with --plan it reads each device on a connection of its own, with
// --apply it plans and applies device by device on one connection each
// (reconcile.PlanApply, as lbc apply DIR does).
const holdMax = 200

// watchHosts plans (and with --apply applies) a good compile against the hosts.
func (e *env) watchHosts(ctx context.Context, spec *schema.Spec, res *compiler.Result, src *specSource, conns *reconcile.Conns, changed []string) error {
	// An apply that has started finishes (or rolls back) even when a signal
	// arrives: it runs on a context that the signal does not cancel.
	actx := context.WithoutCancel(ctx)
	if sh := e.args.Shard; sh.Count > 0 {
		res = shard.Select(res, sh) // the placement stays whole; the devices are the shard's
	}
	opts := reconcile.PlanOptions{Parallelism: e.args.Parallelism, Log: e.log, Limits: e.limits()}
	// The certificate source is read afresh each cycle: a renewed
	// certificate is a change too.
	e.certs = nil
	infos, err := e.checkCerts(spec, true)
	if err != nil {
		return err
	}
	if e.certs != nil {
		opts.Files = e.certs
	}
	locks := reconcile.NewLocks()
	defer locks.Close()
	dial := conns.Dial
	if len(res.Devices) > holdMax {
		// No connection kept from one cycle to the next, so that the
		// connections open at once stay within --parallelism.
		d, err := e.dialer()
		if err != nil {
			return err
		}
		if e.args.WatchApply {
			return e.watchPlanApply(actx, spec, res, src, d, opts, infos, changed)
		}
		dial = d
	} else if e.args.WatchApply {
		// Plan under the device locks, as lbc apply does; the locks of
		// devices with nothing to apply are released below.
		opts.Lock = &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout, Held: locks}
	}
	p, err := reconcile.BuildPlan(actx, spec, res, dial, opts)
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range p.Devices {
		if art := res.Devices[p.Devices[i].Device]; art != nil {
			p.Devices[i].Certificates = deviceCerts(spec, art.Balancers, infos, e.args.CertWarn, now)
		}
	}
	fmt.Fprintf(e.stdout, "%s %s\n", time.Now().Format("15:04:05.000"), describeChange(changed))
	if err := writePlanText(e.stdout, p, color(e.stdout)); err != nil {
		return err
	}
	if !e.args.WatchApply || !p.HasChanges() {
		return nil
	}
	locks.ReleaseUnchanged(p)
	// The policy of lbc apply, revision guard included: a watch on an
	// older checkout must not roll back a host that runs a newer revision.
	ao := e.applyOptions(src.repo)
	ao.Locks, ao.Log = locks, e.log
	if e.certs != nil {
		ao.Files = e.certs
	}
	r, err := reconcile.Apply(actx, p, dial, ao)
	if err != nil {
		return err
	}
	return e.printApply(p, r)
}

// watchPlanApply is watchHosts with --apply on a fleet of more than
// holdMax devices: reconcile.PlanApply dials each device once, plans it
// under its lock and applies its change on that connection, at most
// --parallelism at once; the plan is printed as the devices are read (in
// name order), the results at the end when something changed.
func (e *env) watchPlanApply(ctx context.Context, spec *schema.Spec, res *compiler.Result, src *specSource, dial reconcile.Dialer, po reconcile.PlanOptions, infos map[string]certsrc.Info, changed []string) error {
	po.Lock = &reconcile.PlanLock{Owner: reconcile.DefaultOwner(), Timeout: e.args.LockTimeout}
	ao := e.applyOptions(src.repo)
	ao.Log = e.log
	if e.certs != nil {
		ao.Files = e.certs
	}
	fmt.Fprintf(e.stdout, "%s %s\n", time.Now().Format("15:04:05.000"), describeChange(changed))
	pr := newPlanPrinter(e.stdout, len(res.Devices), color(e.stdout), nil)
	p, r, err := reconcile.PlanApply(ctx, spec, res, dial, po, ao, e.planned(spec, res, infos, pr))
	if err != nil {
		return err
	}
	if err := pr.finish(p); err != nil {
		return err
	}
	if !p.HasChanges() {
		return nil
	}
	return e.printApply(p, r)
}

// printWatchError prints spec errors, their files named under the spec
// directory as given (as validate does), and says the last good result
// stays.
func (e *env) printWatchError(err error, prefix string) {
	var diags schema.Diagnostics
	if errors.As(err, &diags) {
		for _, d := range displayDiags(diags, prefix) {
			fmt.Fprintln(e.stdout, termText(d.String()))
		}
	} else {
		fmt.Fprintf(e.stdout, "error: %s\n", termText(err.Error()))
	}
	fmt.Fprintf(e.stdout, "%s invalid specs: keeping the last good result\n", time.Now().Format("15:04:05.000"))
}
