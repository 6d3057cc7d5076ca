package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"cuelang.org/go/cue"

	"lbc/internal/specfs"
)

// Limits bound what loading a spec tree may take: a tree is input lbc does
// not trust. A limit <= 0 is no limit.
type Limits struct {
	MaxFileBytes int64 // bytes of one spec file (--max-file-size)
	MaxBalancers int   // balancers in the whole tree (--max-balancers)
	MaxDevices   int   // devices in the whole tree (--max-devices)
}

// DefaultLimits fit a fleet of 100,000 balancers on 10,000 devices, all
// in one file if need be.
var DefaultLimits = Limits{MaxFileBytes: 64 << 20, MaxBalancers: 100_000, MaxDevices: 10_000}

// OpenDir opens the spec tree rooted at dir for Load: only regular files
// inside the tree are read (see specfs), each within l.MaxFileBytes. The
// caller closes it.
func (l Limits) OpenDir(dir string) (*specfs.FS, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	f, err := specfs.Open(dir, l.MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	return f, nil
}

// LoadDir loads the spec tree rooted at dir within l.
func (l Limits) LoadDir(ctx context.Context, dir string) (*Spec, error) {
	f, err := l.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return l.Load(ctx, f)
}

// Load loads the spec tree fsys within l (see the package function Load).
// It returns as soon as ctx is done, at any stage: CUE's evaluation cannot
// be interrupted, so the loading runs in a goroutine of its own, which an
// abandoned load leaves to finish in the background (a command that
// returns then exits, and the process with it).
func (l Limits) Load(ctx context.Context, fsys fs.FS) (*Spec, error) {
	return l.LoadCached(ctx, fsys, nil)
}

// LoadCached is Load reading the result of each unchanged instance from
// cache (nil: no cache) and storing the others there.
func (l Limits) LoadCached(ctx context.Context, fsys fs.FS, cache *Cache) (*Spec, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	type result struct {
		spec *Spec
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := l.load(ctx, fsys, cache)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.spec, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("load specs: %w", ctx.Err())
	}
}

// ReadSpecFile reads one file of a spec tree (a spec file, the lock
// file): a regular file within max bytes (<= 0: no limit), whatever fsys
// is (a directory, a Git tree).
func ReadSpecFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	return readSpecFile(fsys, name, max)
}

func readSpecFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &specfs.NotRegularError{Mode: st.Mode()}}
	}
	if max > 0 && st.Size() > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &specfs.TooLargeError{Size: st.Size(), Limit: max}}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := io.Reader(f)
	if max > 0 {
		r = io.LimitReader(f, max+1)
	}
	b, err := readAll(r, st.Size())
	if err != nil {
		return nil, err
	}
	if max > 0 && int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &specfs.TooLargeError{Size: -1, Limit: max}}
	}
	return b, nil
}

// readAll reads r to its end into a buffer with room for size bytes and
// one more (to see the end) first: io.ReadAll's buffer starts small and
// grows by copies, twice the bytes of a large file; it grows here only if
// the file grew since its size was read.
func readAll(r io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, max(size, 0)+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// fileProblem turns the error of reading a spec file into a diagnostic
// when the file is what is wrong: a special file, one too large, a
// symbolic link out of the tree.
func fileProblem(name string, err error) (Diagnostic, bool) {
	var (
		nr *specfs.NotRegularError
		tl *specfs.TooLargeError
	)
	var msg string
	switch {
	case errors.As(err, &nr):
		msg = nr.Error()
	case errors.As(err, &tl):
		msg = tl.Error()
	case errors.Is(err, specfs.ErrOutside):
		msg = specfs.ErrOutside.Error() + ": only files inside the tree are read"
	default:
		return Diagnostic{}, false
	}
	return errorf(Pos{File: name, Line: 1, Col: 1}, "", "%s", msg), true
}

// countLimit is the diagnostic for an instance, or the tree, that defines
// more of what (balancers, devices) than the limit.
func countLimit(pos Pos, what string, n, limit int, flag string) Diagnostic {
	return errorf(pos, what, "%d %s in this directory, more than the limit of %d (%s)", n, what, limit, flag)
}

// countData checks the number of devices and balancers an instance of
// plain data defines against l, before they are validated.
func (l Limits) countData(data *dval, first Pos) Diagnostics {
	n := func(field string) int {
		if v := data.get(field); v != nil && v.kind == dStruct {
			return len(v.fields)
		}
		return 0
	}
	return l.counts(n("devices"), n("balancers"), first)
}

// countCUE is countData for an instance CUE evaluated.
func (l Limits) countCUE(v cue.Value, first Pos) Diagnostics {
	n := func(field string) int {
		it, err := v.LookupPath(cue.MakePath(cue.Str(field))).Fields()
		if err != nil {
			return 0
		}
		k := 0
		for it.Next() {
			k++
		}
		return k
	}
	return l.counts(n("devices"), n("balancers"), first)
}

func (l Limits) counts(devices, balancers int, pos Pos) Diagnostics {
	var ds Diagnostics
	if l.MaxDevices > 0 && devices > l.MaxDevices {
		ds = append(ds, countLimit(pos, "devices", devices, l.MaxDevices, "--max-devices"))
	}
	if l.MaxBalancers > 0 && balancers > l.MaxBalancers {
		ds = append(ds, countLimit(pos, "balancers", balancers, l.MaxBalancers, "--max-balancers"))
	}
	return ds
}

// countTree checks the devices and balancers of the whole tree against l;
// the diagnostic points at the instance that crosses the limit.
func (l Limits) countTree(parts []*Partial) Diagnostics {
	var ds Diagnostics
	devices, balancers := 0, 0
	dPos, bPos := Pos{}, Pos{}
	for _, p := range parts {
		nd, nb := len(p.Devices), len(p.Balancers)
		for k := range p.rejected {
			switch {
			case strings.HasPrefix(k, "devices/"):
				nd++
			case strings.HasPrefix(k, "balancers/"):
				nb++
			}
		}
		first := Pos{Line: 1, Col: 1}
		if len(p.Files) > 0 {
			first.File = p.Files[0]
		}
		devices += nd
		balancers += nb
		if l.MaxDevices > 0 && devices > l.MaxDevices && !dPos.IsValid() {
			dPos = first
		}
		if l.MaxBalancers > 0 && balancers > l.MaxBalancers && !bPos.IsValid() {
			bPos = first
		}
	}
	if dPos.IsValid() {
		ds = append(ds, errorf(dPos, "devices", "the tree defines %d devices, more than the limit of %d (--max-devices)", devices, l.MaxDevices))
	}
	if bPos.IsValid() {
		ds = append(ds, errorf(bPos, "balancers", "the tree defines %d balancers, more than the limit of %d (--max-balancers)", balancers, l.MaxBalancers))
	}
	return ds
}
