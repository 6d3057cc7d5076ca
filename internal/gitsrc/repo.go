// Package gitsrc reads spec trees from Git revisions without a worktree,
// stamps a worktree's spec directory with its revision, and guards against
// applying a revision older than the one a host already runs; it leaves
// loading the specs and talking to hosts to others.
package gitsrc

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUnknownRevision is returned when a revision or hash names no commit in
// the repository (a typo, or a commit a shallow clone does not have).
var ErrUnknownRevision = errors.New("unknown revision")

// Repo is a Git repository opened for reading. It is safe for concurrent
// use: go-git's object storage is not, so every access takes one lock.
type Repo struct {
	mu   sync.Mutex
	git  *git.Repository
	root string // worktree root, absolute; "" for a bare repository
}

// Open finds the repository holding path, which may be the repository's
// root, any directory or file below it, or a bare repository. Shallow
// clones and linked worktrees are supported.
func Open(path string) (*Repo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", path, err)
	}
	g, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		// A bare repository has no .git to detect: try path itself.
		if bare, berr := git.PlainOpen(abs); berr == nil {
			g, err = bare, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", path, err)
	}
	r := &Repo{git: g}
	if wt, err := g.Worktree(); err == nil {
		root := wt.Filesystem.Root()
		if real, err := filepath.EvalSymlinks(root); err == nil {
			root = real
		}
		r.root = root
	} else if !errors.Is(err, git.ErrIsBareRepository) {
		return nil, fmt.Errorf("open git repository %s: %w", path, err)
	}
	return r, nil
}

// Root is the absolute path of the repository's worktree, or "" when the
// repository is bare.
func (r *Repo) Root() string { return r.root }

// Resolve returns the full hash of the commit rev names: a branch, a tag,
// a short or full hash, HEAD, HEAD~1 and the other forms of ResolveRevision.
func (r *Repo) Resolve(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.commit(rev)
	if err != nil {
		return "", err
	}
	return c.Hash.String(), nil
}

// commit resolves rev to a commit object; r.mu must be held.
func (r *Repo) commit(rev string) (*object.Commit, error) {
	if rev == "" {
		return nil, fmt.Errorf("resolve revision: empty: %w", ErrUnknownRevision)
	}
	h, err := r.git.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve revision %q: %w (%v)", rev, ErrUnknownRevision, err)
	}
	c, err := r.git.CommitObject(*h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("resolve revision %q: %w", rev, ErrUnknownRevision)
		}
		return nil, fmt.Errorf("resolve revision %q: %w", rev, err)
	}
	return c, nil
}
