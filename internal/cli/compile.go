package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lbc/compiler"
	"lbc/internal/atomicfs"
	"lbc/internal/exitcode"
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
	res  *compiler.Result
}

// compileSpecs loads, validates and compiles the specs. Spec errors come
// back as schema.Diagnostics.
func (e *env) compileSpecs() (*compiled, error) {
	src, spec, err := e.loadSpecs()
	if err != nil {
		return nil, err
	}
	prev, err := readLock(src)
	if err != nil {
		return nil, err
	}
	res, err := compiler.Compile(spec, prev, compiler.Options{Version: version.Version, Revision: src.revision})
	if err != nil {
		return nil, err
	}
	c := &compiled{src: src, spec: spec, prev: prev, res: res}
	if e.args.Locked && !prev.Equal(res.Placement) {
		return nil, fmt.Errorf("%w:\n  %s", errPlacementChanged, strings.Join(compiler.DiffLocks(prev, res.Placement), "\n  "))
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
	c, err := e.compileSpecs()
	if err != nil {
		return e.printLoadError(err)
	}
	if err := writeArtifacts(e.args.Out, c.res); err != nil {
		return e.fail(err)
	}
	if err := e.updateLock(c); err != nil {
		return e.fail(err)
	}
	st := c.res.Stats
	fmt.Fprintf(e.stdout, "compiled %d devices, %d balancers into %s (revision %s)\n",
		len(c.res.Devices), len(c.spec.Balancers), e.args.Out, orNone(c.src.revision))
	fmt.Fprintf(e.stdout, "placements: %d new, %d kept, %d moved, %d removed\n", st.New, st.Kept, st.Moved, st.Removed)
	return exitcode.OK
}

// writeArtifacts replaces dir with the compiled files, atomically as a whole.
func writeArtifacts(dir string, res *compiler.Result) error {
	return atomicfs.ReplaceDir(dir, func(tmp string) error {
		for name, d := range res.Devices {
			dd := filepath.Join(tmp, name)
			if err := os.Mkdir(dd, 0o755); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
			files := map[string][]byte{"haproxy.cfg": d.HAProxyCfg, "vips.json": d.VIPsJSON}
			if d.Keepalived != nil {
				files["keepalived.conf"] = d.Keepalived
			}
			for f, data := range files {
				if err := os.WriteFile(filepath.Join(dd, f), data, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", name, err)
				}
			}
		}
		return nil
	})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
