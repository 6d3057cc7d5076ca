package cli

import (
	"lbc/internal/certsrc"

	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"lbc/compiler"
	"lbc/internal/atomicfs"
	"lbc/internal/exitcode"
	"lbc/internal/outdir"
	"lbc/internal/par"
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
	files, err := writeArtifacts(e.args.Out, c.res)
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
		// write: the files into a new directory (files), then the swap
		// with the old OUT and its removal. total: from the start of the
		// command (after argument parsing) to here, lock update included.
		fmt.Fprintf(e.stderr, "timings: load %s, schedule %s, render %s, write %s (files %s), total %s\n",
			ms(c.load), ms(c.schedule), ms(c.render), ms(write), ms(files), ms(time.Since(start)))
	}
	return exitcode.OK
}

// ms prints d in milliseconds with one decimal: "12.3 ms".
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

// writeArtifacts replaces dir with the compiled files and the marker of
// an output directory lbc made (outdir.Check has allowed dir), atomically
// as a whole: the files are written into a new directory beside dir, which then
// takes dir's place (see atomicfs.ReplaceDir); on any error dir is left as
// it was. The devices are written in parallel (writeWorkers at once).
//
// Nothing is fsynced: OUT is a build output that compile makes again from
// the tree, and plan and apply compile the tree themselves rather than read
// OUT. A reader never sees a mix of two compiles; after a power loss OUT
// may hold empty or missing files, and the next compile replaces it whole.
//
// It returns how long writing the files took (before the swap).
func writeArtifacts(dir string, res *compiler.Result) (files time.Duration, err error) {
	names := make([]string, 0, len(res.Devices))
	for name := range res.Devices {
		names = append(names, name)
	}
	sort.Strings(names)
	if sameArtifacts(dir, names, res) {
		return 0, nil // already there, byte for byte: nothing to replace
	}
	err = atomicfs.ReplaceDir(dir, func(tmp string) error {
		start := time.Now()
		defer func() { files = time.Since(start) }()
		if err := outdir.Mark(tmp); err != nil {
			return err
		}
		return par.Do(context.Background(), len(names), writeWorkers, func(i int) error {
			return writeDevice(tmp, names[i], res.Devices[names[i]])
		})
	})
	return files, err
}

// sameArtifacts reports whether dir holds exactly the compiled files: one
// directory per device and nothing else, each holding exactly the device's
// files with the same bytes. Reading them back is cheaper than writing and
// swapping thousands of files; a recompile of an unchanged tree then
// leaves OUT alone.
func sameArtifacts(dir string, names []string, res *compiler.Result) bool {
	if !sameDevices(dir, names) {
		return false
	}
	err := par.Do(context.Background(), len(names), writeWorkers, func(i int) error {
		dd := filepath.Join(dir, names[i])
		files := res.Devices[names[i]].Files()
		want := make([]string, 0, len(files))
		for f := range files {
			want = append(want, f)
		}
		sort.Strings(want)
		if !sameNames(dd, want) {
			return errDiffers
		}
		for _, f := range want {
			got, err := os.ReadFile(filepath.Join(dd, f))
			if err != nil || string(got) != string(files[f]) {
				return errDiffers
			}
		}
		return nil
	})
	return err == nil
}

var errDiffers = errors.New("differs")

// sameDevices reports whether dir holds exactly a directory per device of
// names (sorted) and the marker of an output directory lbc made.
func sameDevices(dir string, names []string) bool {
	es, err := os.ReadDir(dir)
	if err != nil || len(es) != len(names)+1 {
		return false
	}
	i := 0
	for _, e := range es {
		if e.Name() == outdir.Marker {
			if !e.Type().IsRegular() {
				return false
			}
			continue
		}
		if i == len(names) || e.Name() != names[i] || !e.IsDir() {
			return false
		}
		i++
	}
	return i == len(names)
}

// sameNames reports whether dir holds exactly the regular files names
// (sorted).
func sameNames(dir string, names []string) bool {
	es, err := os.ReadDir(dir) // sorted by name
	if err != nil || len(es) != len(names) {
		return false
	}
	for i, e := range es {
		if e.Name() != names[i] || !e.Type().IsRegular() {
			return false
		}
	}
	return true
}

// writeWorkers is how many devices writeArtifacts writes at once. Creating
// files is mostly kernel work that also waits on the file system's journal,
// so more workers than CPUs still help.
const writeWorkers = 8

// writeDevice writes the files of one device into dir/name.
func writeDevice(dir, name string, d *compiler.DeviceArtifacts) error {
	dd := filepath.Join(dir, name)
	if err := os.Mkdir(dd, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	files := d.Files()
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if err := os.WriteFile(filepath.Join(dd, f), files[f], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
