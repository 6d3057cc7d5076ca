package schema

import (
	"cuelang.org/go/cue/token"
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
)

// The count limits (--max-balancers, --max-devices) can only be counted
// once CUE has evaluated an instance, and a comprehension that makes
// 200,000 balancers costs CUE minutes and gigabytes before that (its
// evaluation grows faster than the output, and cannot be interrupted).
// So before CUE evaluates an instance that has comprehensions, a probe
// measures what they iterate over: a copy of the instance in which each
// comprehension that yields fields (for ... { name: ... }) is replaced by
// a field holding the length of its first source, len(SOURCE), which CUE
// evaluates in a blink. A comprehension whose source has more values than
// the two limits together allow, or the comprehensions of the top level
// and of balancers and devices that have more together, is refused with
// its position, before the instance is evaluated. Comprehensions nested
// in others are not probed (their sources may depend on the outer ones'
// values), nor list comprehensions (they make nodes and VIPs, not
// balancers); a probe that fails (a source that is not a list or a
// struct, a closed struct) says nothing, and the instance is evaluated as
// before.

// probeLabel starts the label of a probe field.
const probeLabel = "lbc-comprehension-probe-"

// probe is one comprehension replaced by a probe field.
type probe struct {
	pos  Pos
	top  bool // at the top level, or directly in balancers or devices
	n    int64
	path []cue.Selector // of its field; nil when the files do not say
	src  ast.Expr       // what the comprehension iterates over
}

// topLists returns the list literals that the files give top-level fields
// (name → list), for the fields whose only declaration in the instance is
// one field of an identifier label whose value is a list of values (no
// comprehension, no ellipsis); nil when a top-level declaration other than
// a field could add to a field (a comprehension, an embedding).
func topLists(files []*ast.File) map[string]*ast.ListLit {
	lists := map[string]*ast.ListLit{}
	many := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			switch x := d.(type) {
			case *ast.Package, *ast.ImportDecl, *ast.CommentGroup, *ast.Attribute, *ast.LetClause:
				continue
			case *ast.Field:
				name, isIdent, err := ast.LabelName(x.Label)
				if err != nil || !isIdent {
					return nil // a computed label may name any field
				}
				l, ok := x.Value.(*ast.ListLit)
				if _, seen := lists[name]; seen || many[name] || !ok || x.Constraint != token.ILLEGAL || !plainList(l) {
					delete(lists, name)
					many[name] = true
					continue
				}
				lists[name] = l
			default:
				return nil
			}
		}
	}
	return lists
}

// plainList reports whether l holds values only (its length is its
// number of elements).
func plainList(l *ast.ListLit) bool {
	for _, e := range l.Elts {
		switch e.(type) {
		case *ast.Comprehension, *ast.Ellipsis:
			return false
		}
	}
	return true
}

// staticLengths sets the length of every probe whose source is a list the
// files write (a list literal, or a reference to a top-level field of
// lists, see topLists), and reports whether it set them all: the probe
// then needs no evaluation (in a tree of 100 tenant directories, each
// iterating over a list of its services, that evaluation was a tenth of
// the load of each).
func staticLengths(probes []*probe, lists map[string]*ast.ListLit) bool {
	if lists == nil {
		return false
	}
	for _, p := range probes {
		var l *ast.ListLit
		switch x := p.src.(type) {
		case *ast.ListLit:
			l = x
			if !plainList(l) {
				return false
			}
		case *ast.Ident:
			l = lists[x.Name]
			if l == nil || x.Node != ast.Node(l) {
				return false // not that field (another scope's, or none)
			}
		default:
			return false
		}
		p.n = int64(len(l.Elts))
	}
	return true
}

// checkComprehensions probes the comprehensions of the instance (see
// above) and returns a diagnostic for each one over the limits. files are
// the instance's files: the probe changes them while it runs and restores
// them before it returns (parsing them again for it cost a third of the
// probe); loaded is the instance made for the evaluation when it imports
// packages of the tree's module (nil otherwise): the probe takes its
// imports.
func (l Limits) checkComprehensions(dir string, files []*ast.File, loaded *build.Instance, rel func(string) string) Diagnostics {
	if l.MaxBalancers <= 0 || l.MaxDevices <= 0 || !hasComprehension(files) {
		return nil
	}
	if loaded != nil && loaded.Err != nil {
		return nil
	}
	lists := topLists(files)
	var probes []*probe
	for _, f := range files {
		ps, undo := probeFile(f, rel, len(probes))
		defer undo()
		probes = append(probes, ps...)
	}
	if len(probes) == 0 {
		return nil
	}
	found := map[int]bool{}
	if staticLengths(probes, lists) {
		for i := range probes {
			found[i] = true
		}
		return l.comprehensionDiagnostics(probes, found)
	}
	inst := build.NewContext().NewInstance(dir, nil)
	for _, f := range files {
		if inst.AddSyntax(f) != nil {
			return nil
		}
	}
	if loaded != nil {
		// The loader's import paths are canonical (a module's major
		// version added): the probe resolves them as the loaded
		// instance does. A package that only a replaced comprehension
		// used is now "imported and not used": the probe does not care.
		inst.Imports = loaded.Imports
		inst.CanonicalImportPath = loaded.CanonicalImportPath
		inst.Complete()
		inst.ResolutionErr = nil
	}
	v := cuecontext.New().BuildInstance(inst)
	if paths := probePaths(probes); paths != nil {
		// Looked up where the files put them: walking the value (below)
		// lists every struct's fields, which CUE sorts, a third of
		// the probe's time on a tree of 100 balancers a directory.
		for i, p := range paths {
			if n, err := v.LookupPath(p).Int64(); err == nil {
				found[i], probes[i].n = true, n
			}
		}
	} else {
		probeValues(v, 0, func(i int, n int64) {
			if i >= 0 && i < len(probes) && !found[i] {
				found[i] = true
				probes[i].n = n
			}
		})
	}
	return l.comprehensionDiagnostics(probes, found)
}

// comprehensionDiagnostics reports the probes found over the limits.
func (l Limits) comprehensionDiagnostics(probes []*probe, found map[int]bool) Diagnostics {
	max := int64(l.MaxBalancers) + int64(l.MaxDevices)
	var ds Diagnostics
	var total int64
	for i, p := range probes {
		if !found[i] {
			continue
		}
		if p.n > max {
			ds = append(ds, comprehensionLimit(p.pos, p.n, l))
			continue
		}
		if p.top {
			if total += p.n; total > max {
				ds = append(ds, errorf(p.pos, "", "the comprehensions of this directory iterate over %d values together, "+
					"more than the limits of %d balancers and %d devices allow (--max-balancers, --max-devices); "+
					"lbc refuses them before CUE evaluates them", total, l.MaxBalancers, l.MaxDevices))
				break
			}
		}
	}
	return ds
}

func comprehensionLimit(pos Pos, n int64, l Limits) Diagnostic {
	return errorf(pos, "", "this comprehension iterates over %d values, more than the limits of %d balancers and %d devices allow "+
		"(--max-balancers, --max-devices); lbc refuses it before CUE evaluates it", n, l.MaxBalancers, l.MaxDevices)
}

// probePaths returns the path of each probe, or nil when one is unknown.
func probePaths(probes []*probe) []cue.Path {
	paths := make([]cue.Path, len(probes))
	for i, p := range probes {
		if p.path == nil {
			return nil
		}
		paths[i] = cue.MakePath(p.path...)
	}
	return paths
}

// hasComprehension reports whether a file holds a comprehension.
func hasComprehension(files []*ast.File) bool {
	found := false
	for _, f := range files {
		ast.Walk(f, func(n ast.Node) bool {
			if _, ok := n.(*ast.Comprehension); ok {
				found = true
			}
			return !found
		}, nil)
	}
	return found
}

// probeFile replaces, in f, each comprehension that yields fields and is
// not inside another one by a probe field; base numbers them; undo puts
// the comprehensions back. Each probe
// records the path of its field when the files say it (field names that
// are identifiers or strings, list indexes before any comprehension), so
// that it is looked up, not searched for (see checkComprehensions).
func probeFile(f *ast.File, rel func(string) string, base int) (probes []*probe, undo func()) {
	var undos []func()
	var decls func(elts []ast.Decl, top bool, at []cue.Selector)
	var expr func(e ast.Expr, at []cue.Selector)
	// under is at and then sel; nil (unknown) when at is or sel is not
	// known (ok false).
	under := func(at []cue.Selector, sel cue.Selector, ok bool) []cue.Selector {
		if at == nil || !ok {
			return nil
		}
		return append(slices.Clip(at), sel)
	}
	decls = func(elts []ast.Decl, top bool, at []cue.Selector) {
		for i, d := range elts {
			switch x := d.(type) {
			case *ast.Comprehension:
				src := firstSource(x)
				if src == nil {
					continue
				}
				p := x.Pos()
				label := fmt.Sprint(probeLabel, base+len(probes))
				probes = append(probes, &probe{pos: Pos{File: rel(p.Filename()), Line: p.Line(), Col: p.Column()}, top: top,
					path: under(at, cue.Str(label), true), src: src})
				elts[i] = &ast.Field{
					Label: ast.NewString(label),
					Value: ast.NewCall(ast.NewIdent("len"), src),
				}
				undos = append(undos, func() { elts[i] = x })
			case *ast.Field:
				sel, ok := fieldSelector(x)
				sub := under(at, sel, ok)
				if top {
					if name, _, err := ast.LabelName(x.Label); err == nil && (name == "balancers" || name == "devices") {
						if s, ok := x.Value.(*ast.StructLit); ok {
							decls(s.Elts, true, sub)
							continue
						}
					}
				}
				expr(x.Value, sub)
			case *ast.EmbedDecl:
				expr(x.Expr, at)
			}
		}
	}
	expr = func(e ast.Expr, at []cue.Selector) {
		switch x := e.(type) {
		case *ast.StructLit:
			decls(x.Elts, false, at)
		case *ast.ListLit:
			known := at
			for i, el := range x.Elts {
				if _, ok := el.(*ast.Comprehension); ok {
					known = nil // the indexes after it are not the files'
					continue
				}
				expr(el, under(known, cue.Index(i), true))
			}
		case *ast.BinaryExpr:
			if x.Op != token.AND {
				at = nil
			}
			expr(x.X, at)
			expr(x.Y, at)
		case *ast.ParenExpr:
			expr(x.X, at)
		}
	}
	decls(f.Decls, true, []cue.Selector{})
	return probes, func() {
		for _, u := range undos {
			u()
		}
	}
}

// fieldSelector is the selector of a regular field x as the files write
// it; false for anything else (the path is then unknown): a computed or
// aliased label, a hidden field, an optional or required one.
func fieldSelector(x *ast.Field) (cue.Selector, bool) {
	name, isIdent, err := ast.LabelName(x.Label)
	switch {
	case err != nil || x.Constraint != token.ILLEGAL:
		return cue.Selector{}, false
	case isIdent && strings.HasPrefix(name, "#"):
		return cue.Def(name), true
	case isIdent && strings.HasPrefix(name, "_"):
		return cue.Selector{}, false
	}
	return cue.Str(name), true
}

// firstSource is the source of a comprehension's first for clause, when
// only if clauses come before it (nothing it could depend on).
func firstSource(c *ast.Comprehension) ast.Expr {
	for _, cl := range c.Clauses {
		switch x := cl.(type) {
		case *ast.IfClause:
			continue
		case *ast.ForClause:
			return x.Source
		}
		return nil
	}
	return nil
}

// probeValues calls found with the number and value of each probe field
// in v (a probe that failed to evaluate is skipped).
func probeValues(v cue.Value, depth int, found func(i int, n int64)) {
	if depth > maxDepth {
		return
	}
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields(cue.Optional(true), cue.Definitions(true), cue.Hidden(true))
		if err != nil {
			return
		}
		for it.Next() {
			sel := it.Selector()
			if rest, ok := strings.CutPrefix(sel.String(), `"`+probeLabel); ok && sel.IsString() {
				rest = strings.TrimSuffix(rest, `"`)
				var i int
				if _, err := fmt.Sscan(rest, &i); err == nil {
					if n, err := it.Value().Int64(); err == nil {
						found(i, n)
					}
				}
				continue
			}
			probeValues(it.Value(), depth+1, found)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for it.Next() {
			probeValues(it.Value(), depth+1, found)
		}
	}
}
