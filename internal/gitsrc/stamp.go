package gitsrc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// DirtySuffix marks a revision whose spec tree differs from the commit.
const DirtySuffix = "-dirty"

// Stamp returns the revision to record for specs read from dir, a
// directory inside the worktree: HEAD's full hash, with DirtySuffix added
// when the files under dir differ from HEAD's tree there. Every file under
// dir counts, tracked or not (an untracked .cue file changes what is
// compiled); .gitignore is not consulted, nor anything outside dir.
// Contents are compared by their Git blob hash, so it costs one read of
// each file and no index or whole-repository status.
func (r *Repo) Stamp(dir string) (string, error) {
	if r.root == "" {
		return "", fmt.Errorf("stamp %s: bare repository has no worktree", dir)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("stamp %s: %w", dir, err)
	}
	rel, err := filepath.Rel(r.root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("stamp %s: not inside the worktree %s", dir, r.root)
	}
	rel = filepath.ToSlash(rel)

	head, want, err := r.headTree(rel)
	if err != nil {
		return "", fmt.Errorf("stamp %s: %w", dir, err)
	}
	dirty, err := differs(abs, want)
	if err != nil {
		return "", fmt.Errorf("stamp %s: %w", dir, err)
	}
	if dirty {
		return head + DirtySuffix, nil
	}
	return head, nil
}

type blobRef struct {
	hash plumbing.Hash
	mode filemode.FileMode
}

// headTree returns HEAD's hash and the blobs below rel in its tree, by
// slash path relative to rel.
func (r *Repo) headTree(rel string) (string, map[string]blobRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, err := r.git.Head()
	if err != nil {
		return "", nil, fmt.Errorf("read HEAD: %w", err)
	}
	c, err := r.git.CommitObject(ref.Hash())
	if err != nil {
		return "", nil, fmt.Errorf("read HEAD commit: %w", err)
	}
	t, err := c.Tree()
	if err != nil {
		return "", nil, fmt.Errorf("read HEAD tree: %w", err)
	}
	want := map[string]blobRef{}
	if rel != "." {
		t, err = t.Tree(rel)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return c.Hash.String(), want, nil // nothing of dir is committed
		}
		if err != nil {
			return "", nil, fmt.Errorf("read %s in HEAD: %w", rel, err)
		}
	}
	if err := collect(r, t, "", want); err != nil {
		return "", nil, err
	}
	return c.Hash.String(), want, nil
}

func collect(r *Repo, t *object.Tree, prefix string, out map[string]blobRef) error {
	for _, e := range t.Entries {
		p := path.Join(prefix, e.Name)
		switch e.Mode {
		case filemode.Dir:
			sub, err := object.GetTree(r.git.Storer, e.Hash)
			if err != nil {
				return fmt.Errorf("read tree %s: %w", p, err)
			}
			if err := collect(r, sub, p, out); err != nil {
				return err
			}
		default:
			out[p] = blobRef{e.Hash, e.Mode}
		}
	}
	return nil
}

// differs walks root and reports whether its files differ from want.
func differs(root string, want map[string]blobRef) (bool, error) {
	type job struct {
		rel  string
		full string
		mode filemode.FileMode
	}
	var jobs []job
	found := errors.New("found a difference")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			if w, ok := want[rel]; ok && w.mode == filemode.Submodule {
				jobs = append(jobs, job{rel: rel, mode: filemode.Submodule})
				return fs.SkipDir
			}
			return nil
		}
		w, ok := want[rel]
		if !ok {
			return found // added
		}
		var mode filemode.FileMode
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			mode = filemode.Symlink
		case d.Type().IsRegular():
			mode = filemode.Regular
			if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 {
				mode = filemode.Executable
			}
		default:
			return found // a socket or device where Git has a file
		}
		if mode != w.mode && !(w.mode == filemode.Deprecated && mode == filemode.Regular) {
			return found
		}
		jobs = append(jobs, job{rel: rel, full: p, mode: mode})
		return nil
	})
	if errors.Is(err, found) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if len(jobs) != len(want) {
		return true, nil // something committed is gone
	}

	var dirty atomic.Bool
	var firstErr error
	var errOnce sync.Once
	next := make(chan job)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for j := range next {
				if j.mode == filemode.Submodule {
					continue // the commit a submodule is at is not ours to check
				}
				var data []byte
				var err error
				if j.mode == filemode.Symlink {
					var target string
					target, err = os.Readlink(j.full)
					data = []byte(filepath.ToSlash(target))
				} else {
					data, err = os.ReadFile(j.full)
				}
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						dirty.Store(true) // removed while we looked
						continue
					}
					errOnce.Do(func() { firstErr = err })
					continue
				}
				if plumbing.ComputeHash(plumbing.BlobObject, data) != want[j.rel].hash {
					dirty.Store(true)
				}
			}
		})
	}
	for _, j := range jobs {
		if dirty.Load() {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	if dirty.Load() {
		return true, nil
	}
	return false, firstErr
}
