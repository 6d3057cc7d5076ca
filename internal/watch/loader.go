package watch

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"lbc/schema"
)

// Loader loads a spec tree on disk incrementally: each instance is
// evaluated once and again only when a change can affect it (see Cache);
// the instances are merged and checked together on every load.
type Loader struct {
	root  string
	fsys  fs.FS
	cache Cache[*schema.Partial]
	// Disk, when set, is the instance cache on disk: the first load reads
	// unchanged instances from it, every evaluation is stored there.
	Disk *schema.Cache
	// Reloaded lists the instances the last Load evaluated (for logs and
	// tests).
	Reloaded []string
}

// NewLoader returns a Loader for the spec tree rooted at root.
func NewLoader(root string) *Loader {
	return &Loader{root: root, fsys: os.DirFS(root)}
}

// Load returns the spec after the instance directories in changed were
// edited (as reported by Watcher.Run; nil when nothing changed). The first
// call loads every instance. Invalid specs come back as the
// schema.Diagnostics error, as from schema.Load.
func (l *Loader) Load(ctx context.Context, changed []string) (*schema.Spec, error) {
	dirs, err := schema.Instances(l.fsys)
	if err != nil {
		return nil, fmt.Errorf("load specs %s: %w", l.root, err)
	}
	parts, reloaded, err := l.cache.Update(ctx, l.fsys, dirs, changed,
		func(ctx context.Context, dir string) (*schema.Partial, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return schema.LoadInstanceCached(l.fsys, dir, l.Disk)
		})
	l.Reloaded = reloaded
	if err != nil {
		return nil, err
	}
	return schema.Merge(parts)
}
