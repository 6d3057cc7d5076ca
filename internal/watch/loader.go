package watch

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"lbc/internal/specfs"
	"lbc/schema"
)

// Loader loads a spec tree on disk incrementally: each instance is
// evaluated once and again only when a change can affect it (see Cache);
// the instances are merged and checked together on every load.
type Loader struct {
	root  string
	fsys  fs.FS
	lim   schema.Limits
	cache Cache[*schema.Partial]
	// Reloaded lists the instances the last Load evaluated (for logs and
	// tests).
	Reloaded []string
}

// NewLoader returns a Loader for the spec tree rooted at root, within
// schema.DefaultLimits.
func NewLoader(root string) *Loader { return NewLimitedLoader(root, schema.DefaultLimits) }

// NewLimitedLoader returns a Loader for the spec tree rooted at root that
// reads only regular files inside the tree and loads within lim.
func NewLimitedLoader(root string, lim schema.Limits) *Loader {
	l := &Loader{root: root, lim: lim}
	if f, err := specfs.Open(root, lim.MaxFileBytes); err == nil {
		l.fsys = f
	} else {
		// Reported by the first Load (the tree is missing or unreadable).
		l.fsys = os.DirFS(root)
	}
	return l
}

// Load returns the spec after the instance directories in changed were
// edited (as reported by Watcher.Run; nil when nothing changed). The first
// call loads every instance. Invalid specs come back as the
// schema.Diagnostics error, as from schema.Load.
//
// It returns as soon as ctx is done: the evaluation under way (CUE's cannot
// be interrupted) is left to finish in the background, and the Loader is
// not to be used again (the next Load would wait for it).
func (l *Loader) Load(ctx context.Context, changed []string) (*schema.Spec, error) {
	type result struct {
		spec     *schema.Spec
		reloaded []string
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.spec, r.reloaded, r.err = l.load(ctx, changed)
		done <- r
	}()
	select {
	case r := <-done:
		l.Reloaded = r.reloaded
		return r.spec, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("load specs %s: %w", l.root, ctx.Err())
	}
}

func (l *Loader) load(ctx context.Context, changed []string) (*schema.Spec, []string, error) {
	dirs, err := schema.Instances(l.fsys)
	if err != nil {
		return nil, nil, fmt.Errorf("load specs %s: %w", l.root, err)
	}
	parts, reloaded, err := l.cache.Update(ctx, l.fsys, dirs, changed,
		func(ctx context.Context, dir string) (*schema.Partial, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return l.lim.LoadInstance(l.fsys, dir)
		})
	if err != nil {
		return nil, reloaded, err
	}
	spec, err := l.lim.Merge(parts)
	return spec, reloaded, err
}
