package certsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is a certificate source directory (--cert-dir): NAME.pem holds a
// certificate then its chain, NAME.key its key, NAME.ca.pem (optional)
// the CA its chain must be complete to; a CA that nodeTLS names is
// NAME.pem alone. Names are names, never paths; a symlink may point
// only inside the directory (os.Root enforces it); every file is
// regular and under MaxFile.
type Dir struct {
	root *os.Root
	path string
}

// OpenDir opens dir as a certificate source. tree, when not "", is the
// spec tree: a certificate directory inside it is refused (keys do not
// belong in the repository the specs live in).
func OpenDir(dir, tree string) (*Dir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate directory %s: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if tree != "" {
		t, err := filepath.Abs(tree)
		if err == nil {
			if real, err := filepath.EvalSymlinks(t); err == nil {
				t = real
			}
			if rel, err := filepath.Rel(t, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil, fmt.Errorf("certificate directory %s is inside the spec tree %s: keep keys out of the specs' repository", dir, tree)
			}
		}
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("certificate directory: %w", err)
	}
	return &Dir{root: r, path: dir}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Cert reads NAME.pem and NAME.key.
func (d *Dir) Cert(_ context.Context, name string) ([]byte, []byte, error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	c, err := d.read(name + ".pem")
	if err != nil {
		return nil, nil, err
	}
	k, err := d.read(name + ".key")
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

// CA reads NAME.pem (a CA: no key).
func (d *Dir) CA(_ context.Context, name string) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return d.read(name + ".pem")
}

// Roots reads NAME.ca.pem, nil when there is none.
func (d *Dir) Roots(_ context.Context, name string) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := d.read(name + ".ca.pem")
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// read reads file, a plain name in the directory, bounded by MaxFile.
func (d *Dir) read(file string) ([]byte, error) {
	where := filepath.Join(d.path, file)
	f, err := d.root.Open(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", where, ErrNotFound)
	case err != nil:
		// os.Root refuses a symlink that leads out of the directory.
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", where)
	}
	if fi.Size() >= MaxFile {
		return nil, fmt.Errorf("%s: %d bytes, more than a certificate or key file can be (%d bytes at most)", where, fi.Size(), MaxFile-1)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(b) >= MaxFile {
		return nil, fmt.Errorf("%s: more than %d bytes", where, MaxFile-1)
	}
	return b, nil
}
