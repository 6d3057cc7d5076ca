// Package outdir guards the directories lbc writes compiled files into
// (-o OUT): lbc replaces or writes into OUT only when OUT does not exist,
// is empty, or holds the marker file lbc leaves in every OUT it makes; and
// never when OUT holds the spec tree or lies inside it. Writing the files
// is the caller's (atomicfs).
package outdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Marker is the file lbc writes into every output directory it makes.
const Marker = ".lbc-out"

const markerText = "made by lbc: `lbc compile -o` and `lbc watch -o` replace this directory\n"

// Check reports whether lbc may replace or write into out, compiling the
// spec tree in specDir (a directory on disk; "" when there is none).
func Check(out, specDir string) error {
	o, err := resolve(out)
	if err != nil {
		return fmt.Errorf("-o %s: %w", out, err)
	}
	if specDir != "" {
		s, err := resolve(specDir)
		if err != nil {
			return fmt.Errorf("-o %s: spec tree %s: %w", out, specDir, err)
		}
		switch {
		case within(s, o):
			return fmt.Errorf("-o %s: it holds the spec tree %s: choose an output directory outside it", out, specDir)
		case within(o, s):
			return fmt.Errorf("-o %s: it is inside the spec tree %s: choose an output directory outside it", out, specDir)
		}
	}
	st, err := os.Lstat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-o %s: %w", out, err)
	case st.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("-o %s: is a symbolic link: give the directory itself", out)
	case !st.IsDir():
		return fmt.Errorf("-o %s: not a directory", out)
	}
	if m, err := os.Lstat(filepath.Join(out, Marker)); err == nil && m.Mode().IsRegular() {
		return nil
	}
	empty, err := isEmpty(out)
	if err != nil {
		return fmt.Errorf("-o %s: %w", out, err)
	}
	if !empty {
		return fmt.Errorf("-o %s: not empty and not made by lbc (no %s in it): refusing to replace it; remove it or choose another directory", out, Marker)
	}
	return nil
}

// Mark writes the marker into dir.
func Mark(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, Marker), []byte(markerText), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// within reports whether p is dir or lies below it; both absolute and clean.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// resolve returns p absolute, with the symbolic links of its longest
// existing ancestor resolved (p itself may not exist yet).
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
