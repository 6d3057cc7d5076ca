package cli

import (
	"lbc/internal/certsrc"

	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lbc/compiler"
	"lbc/internal/atomicfs"
	"lbc/internal/exitcode"
	"lbc/internal/outdir"
	"lbc/internal/shard"
	"lbc/internal/version"
	"lbc/schema"
)

// errPlacementChanged is returned under --locked when the lock would change.
var errPlacementChanged = errors.New("placement would change (--locked)")

// compiled is a spec tree loaded and compiled, with the lock it started from.
type compiled struct {
	src  *specSource
	spec *schema.Spec
	prev compiler.Lock
	res  *compiler.Result // under --shard, the shard's devices only
	// shardNote says which shard res holds ("" without --shard)
	shardNote string
	// certs is what the certificate source says of each certificate the
	// specs name (hostsCompile only).
	certs map[string]certsrc.Info
	// balancers is how many balancers the spec defines (spec is nil
	// when res comes from the result cache)
	balancers int

	// how long loading (with reading the lock), scheduling and rendering took
	load, schedule, render time.Duration
}

// hostsCompile is compileSpecs for the commands that reach hosts (plan,
// apply, status): it also checks every certificate the specs name
// against the certificate source.
func (e *env) hostsCompile() (*compiled, error) {
	c, err := e.compileSpecs()
	if err != nil {
		return nil, err
	}
	if c.certs, err = e.checkCerts(c.spec, true); err != nil {
		return nil, err
	}
	return c, nil
}

// compileSpecs loads, validates and compiles the specs. Spec errors come
// back as schema.Diagnostics.
func (e *env) compileSpecs() (*compiled, error) {
	t0 := time.Now()
	src, err := e.openSource()
	if err != nil {
		return nil, err
	}
	return e.compileSource(src, t0)
}

// compileSpecsCached is compileSpecs through the result cache (see
// compilecache.go), for lbc compile: the result has no spec.
func (e *env) compileSpecsCached() (*compiled, error) {
	cache := e.cache()
	if cache == nil || e.args.Shard.Count > 0 {
		return e.compileSpecs()
	}
	t0 := time.Now()
	src, err := e.openSource()
	if err != nil {
		return nil, err
	}
	c, key := e.cachedCompile(cache, src)
	if c != nil {
		c.load = time.Since(t0)
		if err := e.checkLocked(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err = e.compileSource(src, t0)
	if err == nil && key != "" {
		cache.PutResult(key, encodeResult(c.res, c.balancers))
	}
	return c, err
}

// checkLocked fails under --locked when the placement would change.
func (e *env) checkLocked(c *compiled) error {
	if e.args.Locked && !c.prev.Equal(c.res.Placement) {
		return fmt.Errorf("%w:\n  %s", errPlacementChanged, strings.Join(compiler.DiffLocks(c.prev, c.res.Placement), "\n  "))
	}
	return nil
}

// compileSource is compileSpecs of src, opened at t0.
func (e *env) compileSource(src *specSource, t0 time.Time) (*compiled, error) {
	spec, err := e.load(src)
	if err != nil {
		return nil, err
	}
	prev, err := readLock(src)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	// compiler.Compile in its two steps, timed apart (--timings).
	placement, stats, err := compiler.Schedule(spec, prev)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	res, err := compiler.Render(spec, prev, placement, stats, compiler.Options{Version: version.Version, Revision: src.revision})
	if err != nil {
		return nil, err
	}
	t3 := time.Now()
	c := &compiled{src: src, spec: spec, prev: prev, res: res, balancers: len(spec.Balancers), load: t1.Sub(t0), schedule: t2.Sub(t1), render: t3.Sub(t2)}
	if err := e.checkLocked(c); err != nil {
		return nil, err
	}
	if sh := e.args.Shard; sh.Count > 0 {
		// The shard's devices only; the placement stays whole, so the
		// lock file and the HA order are the fleet's.
		c.res = shard.Select(res, sh)
		c.shardNote = fmt.Sprintf("shard %s: %d of %d devices (the others are left to the other shards)", sh, len(c.res.Devices), len(res.Devices))
	}
	return c, nil
}

// updateLock writes the new placement beside the specs when it changed.
func (e *env) updateLock(c *compiled) error {
	if e.args.NoLockUpdate || c.src.dir == "" || c.prev.Equal(c.res.Placement) {
		return nil
	}
	return atomicfs.WriteFile(filepath.Join(c.src.dir, compiler.LockFileName), c.res.Placement.Marshal(), 0o644)
}

// compile writes OUT/<device>/{haproxy.cfg,vips.json,keepalived.conf}.
func (e *env) compile() int {
	start := time.Now()
	if err := outdir.Check(e.args.Out, e.args.Source.Dir); err != nil {
		return e.fail(err)
	}
	c, err := e.compileSpecsCached()
	if err != nil {
		return e.printLoadError(err)
	}
	tw := time.Now()
	files, changed, err := writeArtifacts(e.args.Out, c.res)
	if err != nil {
		return e.fail(err)
	}
	write := time.Since(tw)
	if err := e.updateLock(c); err != nil {
		return e.fail(err)
	}
	st := c.res.Stats
	fmt.Fprintf(e.stdout, "compiled %d devices, %d balancers into %s (revision %s)\n",
		len(c.res.Devices), c.balancers, termLine(e.args.Out), orNone(c.src.revision))
	fmt.Fprintf(e.stdout, "placements: %d new, %d kept, %d moved, %d removed\n", st.New, st.Kept, st.Moved, st.Removed)
	if e.args.Timings {
		// write: comparing OUT with the compiled files and writing those
		// that differ (files; for a new OUT, the swap follows); written:
		// how many files and directories were written or removed. total:
		// from the start of the command (after argument parsing) to here,
		// lock update included.
		fmt.Fprintf(e.stderr, "timings: load %s, schedule %s, render %s, write %s (files %s, written %d), total %s\n",
			ms(c.load), ms(c.schedule), ms(c.render), ms(write), ms(files), changed, ms(time.Since(start)))
	}
	return exitcode.OK
}

// ms prints d in milliseconds with one decimal: "12.3 ms".
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
