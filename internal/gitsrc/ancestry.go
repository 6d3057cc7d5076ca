package gitsrc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Sentinels of CheckRevision and IsAncestor, for errors.Is.
var (
	// ErrDowngrade: the revision being applied is an ancestor of the one
	// the host runs.
	ErrDowngrade = errors.New("downgrade")
	// ErrUnknownHostRevision: the host runs a revision this repository
	// does not have, so its order cannot be checked.
	ErrUnknownHostRevision = errors.New("host revision unknown to this repository")
	// ErrDiverged: neither revision descends from the other.
	ErrDiverged = errors.New("diverged history")
	// ErrNoRevision: the host was applied from Git but the specs being
	// applied carry no revision.
	ErrNoRevision = errors.New("no revision to compare")
	// ErrIncompleteHistory: the walk reached the edge of a shallow clone
	// before it could decide.
	ErrIncompleteHistory = errors.New("incomplete history (shallow clone)")
)

// Known reports whether hash (or any revision) names a commit present in
// the repository.
func (r *Repo) Known(hash string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.commit(hash)
	return err == nil
}

// IsAncestor reports whether commit a is an ancestor of commit b (a commit
// is its own ancestor). Either unknown gives ErrUnknownRevision. In a
// shallow clone, a walk that reaches a missing parent before finding a
// gives ErrIncompleteHistory rather than a wrong "no".
func (r *Repo) IsAncestor(a, b string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ca, err := r.commit(a)
	if err != nil {
		return false, err
	}
	cb, err := r.commit(b)
	if err != nil {
		return false, err
	}
	return r.reaches(cb, ca.Hash)
}

// reaches walks the parents of from, breadth first, looking for target.
// Commits older than target cannot lead to it unless clocks were skewed,
// so the walk does not prune by date: it is bounded by the history itself.
func (r *Repo) reaches(from *object.Commit, target plumbing.Hash) (bool, error) {
	shallow := map[plumbing.Hash]bool{}
	if hs, err := r.git.Storer.Shallow(); err == nil {
		for _, h := range hs {
			shallow[h] = true
		}
	}
	seen := map[plumbing.Hash]bool{from.Hash: true}
	queue := []plumbing.Hash{from.Hash}
	incomplete := false
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h == target {
			return true, nil
		}
		if shallow[h] {
			incomplete = true // its parents were not fetched
			continue
		}
		c, err := r.git.CommitObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			incomplete = true
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read commit %s: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	if incomplete {
		return false, ErrIncompleteHistory
	}
	return false, nil
}

// RevisionError explains why CheckRevision refused; it unwraps to one of
// the sentinels above.
type RevisionError struct {
	Host, New string
	Err       error  // sentinel
	Hint      string // what to do about it
}

func (e *RevisionError) Error() string {
	msg := fmt.Sprintf("host runs %s, applying %s: %v", short(e.Host), short(e.New), e.Err)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *RevisionError) Unwrap() error { return e.Err }

func short(rev string) string {
	if rev == "" {
		return "no revision"
	}
	base, dirty := strings.CutSuffix(rev, DirtySuffix)
	if len(base) > 12 {
		base = base[:12]
	}
	if dirty {
		base += DirtySuffix
	}
	return base
}

// CheckRevision decides whether newRev may replace hostRev on a host, so
// that an out-of-order CI job cannot roll production back. Revisions are
// full hashes, optionally with DirtySuffix; r may be nil when the specs
// are not in a repository. It returns nil when the host has no revision,
// when both are the same commit, or when newRev descends from hostRev.
// Otherwise it returns a *RevisionError wrapping:
//
//   - ErrDowngrade: newRev is an ancestor of hostRev (allowed by allowDowngrade);
//   - ErrDiverged: neither descends from the other, e.g. a force-pushed or
//     unmerged branch (allowed by force);
//   - ErrUnknownHostRevision: hostRev is not in the repository, often a
//     shallow clone or a branch not fetched (allowed by force);
//   - ErrIncompleteHistory: the shallow clone ends before the answer (force);
//   - ErrNoRevision: the host was applied from Git, the specs are not (force).
//
// A dirty revision (specs applied from a modified worktree) is compared by
// its commit: the dirty edits themselves are not in Git and cannot be
// ordered, so replacing them with that commit, a descendant, or the same
// commit dirty again is allowed — Git is the source of truth. force allows
// everything except a downgrade, which needs allowDowngrade.
func CheckRevision(r *Repo, hostRev, newRev string, allowDowngrade, force bool) error {
	if hostRev == "" || hostRev == newRev {
		return nil
	}
	refuse := func(err error, hint string) error {
		return &RevisionError{Host: hostRev, New: newRev, Err: err, Hint: hint}
	}
	host, _ := strings.CutSuffix(hostRev, DirtySuffix)
	next, _ := strings.CutSuffix(newRev, DirtySuffix)
	if next == "" || r == nil {
		if force {
			return nil
		}
		return refuse(ErrNoRevision, "apply from the Git repository (or --git-rev), or pass --force")
	}
	if host == next {
		return nil
	}
	if !isHash(host) || !r.Known(host) {
		if force {
			return nil
		}
		return refuse(ErrUnknownHostRevision, "fetch the full history (git fetch --unshallow; fetch-depth: 0 in CI) or the branch that was applied, or pass --force")
	}
	if !r.Known(next) {
		return refuse(ErrUnknownRevision, "the revision being applied is not in this repository")
	}
	// ancestor answers whether a is an ancestor of b; settled means the
	// check ends here with err (a shallow history too short to answer is
	// allowed by force, refused otherwise).
	ancestor := func(a, b string) (yes, settled bool, err error) {
		yes, err = r.IsAncestor(a, b)
		switch {
		case errors.Is(err, ErrIncompleteHistory):
			if force {
				return false, true, nil
			}
			return false, true, refuse(ErrIncompleteHistory, "fetch the full history (git fetch --unshallow; fetch-depth: 0 in CI), or pass --force")
		case err != nil:
			return false, true, fmt.Errorf("check revision: %w", err)
		}
		return yes, false, nil
	}
	if forward, settled, err := ancestor(host, next); settled || forward {
		return err
	}
	backward, settled, err := ancestor(next, host)
	if settled {
		return err
	}
	if backward {
		if allowDowngrade {
			return nil
		}
		return refuse(ErrDowngrade, "the host runs a newer revision that descends from this one; pass --allow-downgrade to roll it back")
	}
	if force {
		return nil
	}
	return refuse(ErrDiverged, "neither revision descends from the other (a rewritten or unmerged branch?); pass --force to apply anyway")
}

func isHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Guard is CheckRevision with its repository and flags, as the revision
// guard of an apply (reconcile.RevisionGuard). It is safe for concurrent use.
type Guard struct {
	Repo           *Repo // nil when the specs are not in a repository
	AllowDowngrade bool  // --allow-downgrade
	Force          bool  // --force
}

// CheckRevision is CheckRevision(g.Repo, hostRev, newRev, g.AllowDowngrade, g.Force).
func (g Guard) CheckRevision(hostRev, newRev string) error {
	return CheckRevision(g.Repo, hostRev, newRev, g.AllowDowngrade, g.Force)
}
