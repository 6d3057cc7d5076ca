package schema

import (
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// positions records where the spec files write each field, read from the
// syntax trees (cheaper and more exact than asking the evaluated values).
// Fields written through references or comprehensions are not found; their
// errors fall back to the position of the enclosing device or balancer.
type positions struct {
	devices         map[string]*entityPos
	balancers       map[string]*entityPos
	scheduler       Pos
	schedulerFields map[string]Pos
	rel             func(string) string
}

type entityPos struct {
	pos    Pos            // the key naming the entity
	fields map[string]Pos // "address", "nodes[0].weight"
	// lazy are the subtrees of the lazyFields the files write, in order:
	// their fields are recorded by resolve, when an error needs them.
	lazy []lazyField
	p    *positions
}

// lazyFields are the fields of an entity whose inner positions are
// recorded only when asked for: a balancer's L7 routing can be most of
// its text (10 rules double it), and is only looked at for its own
// errors, which checkL7 reports while loading.
var lazyFields = map[string]bool{"pools": true, "rules": true, "hosts": true}

type lazyField struct {
	key   string
	x     ast.Expr
	plain *plainLazy // read by plainFiles instead (x is nil)
}

// resolve records the positions of the fields inside e's lazy subtrees.
func (e *entityPos) resolve() {
	for _, l := range e.lazy {
		if l.plain != nil {
			l.plain.fields(e.p, e.fields, l.key)
			continue
		}
		e.p.fields(e.fields, l.key, l.x, nil)
	}
	e.lazy = nil
}

func newPositions(rel func(string) string) *positions {
	return &positions{devices: map[string]*entityPos{}, balancers: map[string]*entityPos{}, schedulerFields: map[string]Pos{}, rel: rel}
}

func (p *positions) pos(tp token.Pos) Pos { return posOf(tp, p.rel) }

// addFile records the fields of one file; earlier files win.
func (p *positions) addFile(f *ast.File) {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		switch name, _ := labelName(fd.Label); name {
		case "devices":
			p.entities(p.devices, fd.Value)
		case "balancers":
			p.entities(p.balancers, fd.Value)
		case "scheduler":
			if !p.scheduler.IsValid() {
				p.scheduler = p.pos(fd.Label.Pos())
			}
			p.fields(p.schedulerFields, "", fd.Value, nil)
		}
	}
}

func (p *positions) entities(m map[string]*entityPos, x ast.Expr) {
	forStructs(x, func(s *ast.StructLit) {
		for _, d := range s.Elts {
			fd, ok := d.(*ast.Field)
			if !ok {
				continue
			}
			name, ok := labelName(fd.Label)
			if !ok {
				continue
			}
			e := m[name]
			if e == nil {
				e = &entityPos{pos: p.pos(fd.Label.Pos()), fields: map[string]Pos{}, p: p}
				m[name] = e
			}
			p.fields(e.fields, "", fd.Value, &e.lazy)
		}
	})
}

// fields records the value positions of the fields of x under prefix.
// With lazy, x is an entity's value: the subtrees of its lazyFields are
// appended to lazy instead of walked.
func (p *positions) fields(m map[string]Pos, prefix string, x ast.Expr, lazy *[]lazyField) {
	switch x := x.(type) {
	case *ast.ListLit:
		for i, e := range x.Elts {
			switch e.(type) {
			case *ast.Ellipsis, *ast.Comprehension:
				return
			}
			key := prefix + "[" + strconv.Itoa(i) + "]"
			if _, ok := m[key]; !ok {
				m[key] = p.pos(e.Pos())
			}
			p.fields(m, key, e, nil)
		}
		return
	}
	forStructs(x, func(s *ast.StructLit) {
		for _, d := range s.Elts {
			fd, ok := d.(*ast.Field)
			if !ok {
				continue
			}
			name, ok := labelName(fd.Label)
			if !ok {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			if _, ok := m[key]; !ok {
				m[key] = p.pos(fd.Value.Pos())
			}
			if lazy != nil && lazyFields[name] {
				*lazy = append(*lazy, lazyField{key: key, x: fd.Value})
				continue
			}
			p.fields(m, key, fd.Value, nil)
		}
	})
}

// forStructs calls f for each struct literal that x unifies: x itself, or
// the operands of a & b.
func forStructs(x ast.Expr, f func(*ast.StructLit)) {
	switch x := x.(type) {
	case *ast.StructLit:
		f(x)
	case *ast.BinaryExpr:
		if x.Op == token.AND {
			forStructs(x.X, f)
			forStructs(x.Y, f)
		}
	case *ast.ParenExpr:
		forStructs(x.X, f)
	}
}

// labelName returns the name of a regular field label.
func labelName(l ast.Label) (string, bool) {
	switch l := l.(type) {
	case *ast.Ident:
		if len(l.Name) > 0 && (l.Name[0] == '#' || l.Name[0] == '_') {
			return "", false
		}
		return l.Name, true
	case *ast.BasicLit:
		if l.Kind != token.STRING {
			return "", false
		}
		s, err := literal.Unquote(l.Value)
		return s, err == nil
	}
	return "", false
}
