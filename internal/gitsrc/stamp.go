package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"lbc/internal/par"
)

// DirtySuffix marks a revision whose spec tree differs from the commit.
const DirtySuffix = "-dirty"

// Stamp returns the revision to record for specs read from dir, a
// directory inside the worktree: HEAD's full hash, with DirtySuffix added
// when the files under dir differ from HEAD's tree there. Every file under
// dir counts, tracked or not (an untracked .cue file changes what is
// compiled); .gitignore is not consulted, nor anything outside dir.
// Contents are compared by their Git blob hash. Like git itself, a file
// whose size and modification time match its index entry, written before
// the index was, and whose index hash is the committed one, is taken as
// unchanged without reading it; every other file is read and hashed. No
// whole-repository status is computed.
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

	head, want, cache, err := r.headTree(rel)
	if err != nil {
		return "", fmt.Errorf("stamp %s: %w", dir, err)
	}
	dirty, err := differs(abs, want, cache)
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

// statCache is what the index knows about files below the spec dir.
type statCache struct {
	entries map[string]*index.Entry // by slash path relative to the spec dir
	written time.Time               // when the index file was written
}

// unchanged reports whether the index vouches for the file: same size and
// modification time as recorded, modified before the index was written
// (otherwise a later edit in the same clock tick could hide), and the
// recorded hash is the committed one.
func (c *statCache) unchanged(rel string, want plumbing.Hash, info fs.FileInfo) bool {
	if c == nil || info == nil {
		return false
	}
	e, ok := c.entries[rel]
	return ok && e.Hash == want && e.Size == uint32(info.Size()) &&
		e.ModifiedAt.Equal(info.ModTime()) && info.ModTime().Before(c.written)
}

// headTree returns HEAD's hash, the blobs below rel in its tree by slash
// path relative to rel, and the index's stat data (nil if unreadable).
func (r *Repo) headTree(rel string) (string, map[string]blobRef, *statCache, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, err := r.git.Head()
	if err != nil {
		return "", nil, nil, fmt.Errorf("read HEAD: %w", err)
	}
	c, err := r.git.CommitObject(ref.Hash())
	if err != nil {
		return "", nil, nil, fmt.Errorf("read HEAD commit: %w", err)
	}
	t, err := c.Tree()
	if err != nil {
		return "", nil, nil, fmt.Errorf("read HEAD tree: %w", err)
	}
	want := map[string]blobRef{}
	if rel != "." {
		t, err = t.Tree(rel)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return c.Hash.String(), want, nil, nil // nothing of dir is committed
		}
		if err != nil {
			return "", nil, nil, fmt.Errorf("read %s in HEAD: %w", rel, err)
		}
	}
	if err := collect(r, t, "", want); err != nil {
		return "", nil, nil, err
	}
	return c.Hash.String(), want, r.statCache(rel), nil
}

// statCache reads the index; r.mu must be held.
func (r *Repo) statCache(rel string) *statCache {
	st, ok := r.git.Storer.(*filesystem.Storage)
	if !ok {
		return nil
	}
	fi, err := st.Filesystem().Stat("index")
	if err != nil {
		return nil
	}
	idx, err := r.git.Storer.Index()
	if err != nil {
		return nil
	}
	c := &statCache{entries: make(map[string]*index.Entry, len(idx.Entries)), written: fi.ModTime()}
	prefix := rel + "/"
	for _, e := range idx.Entries { // Stage 0 is "merged" on disk (go-git's index.Merged is 1)
		if e.Stage != 0 || e.IntentToAdd || e.SkipWorktree {
			continue
		}
		if rel == "." {
			c.entries[e.Name] = e
		} else if name, ok := strings.CutPrefix(e.Name, prefix); ok {
			c.entries[name] = e
		}
	}
	return c
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
func differs(root string, want map[string]blobRef, cache *statCache) (bool, error) {
	type job struct {
		rel  string
		full string
		mode filemode.FileMode
		info fs.FileInfo
	}
	var jobs []job
	seen := 0 // files of want found on disk
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
				seen++ // the commit a submodule is at is not ours to check
				return fs.SkipDir
			}
			return nil
		}
		w, ok := want[rel]
		if !ok {
			return found // added
		}
		seen++
		var mode filemode.FileMode
		var info fs.FileInfo
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			mode = filemode.Symlink
		case d.Type().IsRegular():
			mode = filemode.Regular
			info, err = d.Info()
			if err != nil {
				return found // removed while we looked
			}
			if info.Mode()&0o111 != 0 {
				mode = filemode.Executable
			}
		default:
			return found // a socket or device where Git has a file
		}
		if mode != w.mode && !(w.mode == filemode.Deprecated && mode == filemode.Regular) {
			return found
		}
		if cache.unchanged(rel, w.hash, info) {
			return nil
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
	if seen != len(want) {
		return true, nil // something committed is gone
	}
	if len(jobs) == 0 {
		return false, nil
	}

	// A file that differs settles it: errDirty stops the others. A file that
	// cannot be read counts only when no file differs.
	errDirty := errors.New("dirty")
	var readErr error
	var errOnce sync.Once
	err = par.Do(context.Background(), len(jobs), 0, func(i int) error {
		j := jobs[i]
		var data []byte
		var err error
		if j.mode == filemode.Symlink {
			var target string
			target, err = os.Readlink(j.full)
			data = []byte(filepath.ToSlash(target))
		} else {
			data, err = os.ReadFile(j.full)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return errDirty // removed while we looked
		case err != nil:
			errOnce.Do(func() { readErr = err })
			return nil
		case plumbing.ComputeHash(plumbing.BlobObject, data) != want[j.rel].hash:
			return errDirty
		}
		return nil
	})
	if err == errDirty {
		return true, nil
	}
	return false, readErr
}
