package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"lbc/compiler"
	"lbc/internal/gitsrc"
	"lbc/internal/specfs"
	"lbc/schema"
)

// specSource is a spec tree opened for reading: a directory on disk, or a
// directory inside a Git revision.
type specSource struct {
	fsys     fs.FS
	display  string // prefix for file names in messages ("" for the cwd)
	dir      string // the directory on disk, "" when read from Git
	revision string // full commit hash, with "-dirty" for a modified worktree; "" outside Git
	repo     *gitsrc.Repo
}

// openSource resolves --git-rev/--repo/DIR into a readable spec tree.
func (e *env) openSource() (*specSource, error) {
	s := e.args.Source
	if s.GitRev != "" {
		repoPath := s.Repo
		if repoPath == "" {
			repoPath = s.Dir
		}
		repo, err := gitsrc.Open(repoPath)
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %w", repoPath, err)
		}
		sub, err := repoRel(repo, s.Dir)
		if err != nil {
			return nil, err
		}
		fsys, rev, err := repo.FS(s.GitRev, sub)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", s.Dir, s.GitRev, err)
		}
		// Every file of the revision within --max-file-size, the files
		// CUE reads for imports included.
		fsys = specfs.Limit(fsys, e.args.Limits.MaxFileBytes)
		disp := sub
		if disp == "." {
			disp = ""
		}
		return &specSource{fsys: fsys, display: disp, revision: rev, repo: repo}, nil
	}
	st, err := os.Stat(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("read specs: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("read specs: %s is not a directory", s.Dir)
	}
	// Only regular files inside the tree, each within --max-file-size. The
	// tree stays open for the life of the process.
	tree, err := e.args.Limits.OpenDir(s.Dir)
	if err != nil {
		return nil, err
	}
	src := &specSource{fsys: tree, dir: s.Dir, display: filepath.ToSlash(filepath.Clean(s.Dir))}
	if src.display == "." {
		src.display = ""
	}
	if repo, err := gitsrc.Open(s.Dir); err == nil {
		src.repo = repo
		if rev, err := repo.Stamp(s.Dir); err == nil {
			src.revision = rev
		}
	}
	return src, nil
}

// loadSpecs opens the spec source of the command line and loads it.
func (e *env) loadSpecs() (*specSource, *schema.Spec, error) {
	src, err := e.openSource()
	if err != nil {
		return nil, nil, err
	}
	spec, err := e.load(src)
	return src, spec, err
}

// load loads and validates the spec tree. Diagnostics come back with file
// names as the user would open them.
func (e *env) load(src *specSource) (*schema.Spec, error) {
	spec, err := e.args.Limits.Load(e.ctx, src.fsys)
	if err != nil {
		var diags schema.Diagnostics
		if errors.As(err, &diags) {
			return nil, displayDiags(diags, src.display)
		}
		return nil, err
	}
	if src.display != "" {
		prefixPositions(spec, src.display)
	}
	return spec, nil
}

// displayDiags returns a copy of diags whose file names are as the user
// would open them: under prefix, the spec directory as given.
func displayDiags(diags schema.Diagnostics, prefix string) schema.Diagnostics {
	out := make(schema.Diagnostics, len(diags))
	for i, d := range diags {
		if d.Pos.File != "" && prefix != "" {
			d.Pos.File = path.Join(prefix, d.Pos.File)
		}
		out[i] = d
	}
	return out
}

// prefixPositions makes the spec's positions name files as the user would
// open them (relative to the working directory, not to the spec tree), so
// that errors found after loading (scheduling, explain) point there too.
func prefixPositions(spec *schema.Spec, prefix string) {
	fix := func(p schema.Pos) schema.Pos {
		if p.File != "" {
			p.File = path.Join(prefix, p.File)
		}
		return p
	}
	fixAll := func(m map[string]schema.Pos) {
		for k, p := range m {
			m[k] = fix(p)
		}
	}
	for _, d := range spec.Devices {
		d.Pos = fix(d.Pos)
		fixAll(d.FieldPos)
	}
	for _, b := range spec.Balancers {
		b.Pos = fix(b.Pos)
		fixAll(b.FieldPos)
	}
}

// readLock reads the placement lock beside the specs; a missing one is empty.
func readLock(src *specSource) (compiler.Lock, error) {
	data, err := schema.ReadSpecFile(src.fsys, compiler.LockFileName, maxLockBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return compiler.Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path.Join(src.display, compiler.LockFileName), unwrapPath(err))
	}
	lock, err := compiler.ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(src.display, compiler.LockFileName), err)
	}
	return lock, nil
}

// repoRel is dir relative to the repository's root, with forward slashes.
func repoRel(repo *gitsrc.Repo, dir string) (string, error) {
	if repo.Root() == "" {
		// A bare repository: DIR names a path inside its trees.
		rel := path.Clean(filepath.ToSlash(dir))
		if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("%s: in a bare repository, DIR is a path inside the commit's tree", dir)
		}
		return rel, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	rel, err := filepath.Rel(repo.Root(), abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside the repository %s", dir, repo.Root())
	}
	return filepath.ToSlash(rel), nil
}

// maxLockBytes bounds the lock file: a line a balancer, of two or three
// names of at most 63 bytes, for a tree of up to 1,000,000 balancers.
const maxLockBytes = 200 << 20

// unwrapPath drops the operation and path of a *fs.PathError (the caller
// names the file).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
