package watch

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"

	"lbc/internal/par"
)

// Cache keeps one loaded result per instance directory of a spec tree. On
// a change it reloads only what the change can affect: the changed
// directories, the instances that import them through the tree's CUE
// module (transitively), instances new to the tree, and everything when
// cue.mod changed. It is safe for concurrent use.
type Cache[T any] struct {
	mu      sync.Mutex
	results map[string]T
	imports map[string][]string // instance → directories of the tree it imports
	module  string              // CUE module path, without a major version
	loaded  bool
}

// Update brings the cache to the tree fsys, whose instances are now dirs,
// after the directories in changed were edited. It calls load for each
// instance to reload, in parallel, and returns every instance's result in
// the order of dirs and the directories it reloaded. A load error leaves
// that instance out of the cache (it is reloaded next time) and is
// returned.
func (c *Cache[T]) Update(ctx context.Context, fsys fs.FS, dirs, changed []string,
	load func(ctx context.Context, dir string) (T, error)) ([]T, []string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.results == nil {
		c.results = map[string]T{}
		c.imports = map[string][]string{}
	}
	all := !c.loaded
	for _, d := range changed {
		if d == "cue.mod" || strings.HasPrefix(d, "cue.mod/") {
			all = true
		}
	}
	if all {
		c.module = modulePath(fsys)
	}

	// Instances gone from the tree leave the cache.
	live := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		live[d] = true
	}
	for d := range c.results {
		if !live[d] {
			delete(c.results, d)
			delete(c.imports, d)
		}
	}

	stale := map[string]bool{}
	if all {
		for _, d := range dirs {
			stale[d] = true
		}
	} else {
		importers := map[string][]string{}
		for d, ims := range c.imports {
			for _, im := range ims {
				importers[im] = append(importers[im], d)
			}
		}
		queue := append([]string(nil), changed...)
		seen := map[string]bool{}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if seen[d] {
				continue
			}
			seen[d] = true
			if live[d] {
				stale[d] = true
			}
			queue = append(queue, importers[d]...)
		}
		for _, d := range dirs {
			if _, ok := c.results[d]; !ok {
				stale[d] = true
			}
		}
	}
	reload := make([]string, 0, len(stale))
	for d := range stale {
		reload = append(reload, d)
	}
	slices.Sort(reload)

	type outcome struct {
		res     T
		imports []string
		err     error
	}
	outs := make([]outcome, len(reload))
	// Every instance is tried (f keeps its error in outs): the cache is
	// updated for all that load, and the first error is returned below.
	par.Do(ctx, len(reload), 0, func(i int) error {
		d := reload[i]
		outs[i].res, outs[i].err = load(ctx, d)
		if outs[i].err == nil {
			outs[i].imports = treeImports(fsys, d, c.module)
		}
		return nil
	})
	c.loaded = true
	if err := ctx.Err(); err != nil {
		for _, d := range reload {
			delete(c.results, d) // some were not reloaded
		}
		return nil, reload, fmt.Errorf("reload specs: %w", err)
	}
	var firstErr error
	for i, d := range reload {
		if outs[i].err != nil {
			delete(c.results, d)
			delete(c.imports, d)
			if firstErr == nil {
				firstErr = outs[i].err
			}
			continue
		}
		c.results[d] = outs[i].res
		c.imports[d] = outs[i].imports
	}
	if firstErr != nil {
		return nil, reload, firstErr
	}
	out := make([]T, len(dirs))
	for i, d := range dirs {
		out[i] = c.results[d]
	}
	return out, reload, nil
}

// modulePath reads the module path from cue.mod/module.cue ("" when the
// tree is not a CUE module), dropping a major version suffix (@v0).
func modulePath(fsys fs.FS) string {
	src, err := fs.ReadFile(fsys, "cue.mod/module.cue")
	if err != nil {
		return ""
	}
	f, err := parser.ParseFile("cue.mod/module.cue", src)
	if err != nil {
		return ""
	}
	for _, decl := range f.Decls {
		field, ok := decl.(*ast.Field)
		if !ok {
			continue
		}
		if name, _, _ := ast.LabelName(field.Label); name != "module" {
			continue
		}
		lit, ok := field.Value.(*ast.BasicLit)
		if !ok {
			return ""
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return ""
		}
		s, _, _ = strings.Cut(s, "@")
		return s
	}
	return ""
}

// treeImports lists the directories of the tree that the instance in dir
// imports, read from the import clauses of its .cue files alone.
func treeImports(fsys fs.FS, dir, module string) []string {
	if module == "" {
		return nil
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !relevant(path.Join(dir, e.Name())) {
			continue
		}
		name := path.Join(dir, e.Name())
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(name, src, parser.ImportsOnly)
		if err != nil {
			continue // the load itself reports syntax errors
		}
		for spec := range f.ImportSpecs() {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				continue
			}
			p, _, _ = strings.Cut(p, ":") // a package qualifier
			switch {
			case p == module:
				set["."] = true
			case strings.HasPrefix(p, module+"/"):
				set[strings.TrimPrefix(p, module+"/")] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
