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
			p.fields(p.schedulerFields, "", fd.Value)
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
				e = &entityPos{pos: p.pos(fd.Label.Pos()), fields: map[string]Pos{}}
				m[name] = e
			}
			p.fields(e.fields, "", fd.Value)
		}
	})
}

// fields records the value positions of the fields of x under prefix.
func (p *positions) fields(m map[string]Pos, prefix string, x ast.Expr) {
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
			p.fields(m, key, e)
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
			p.fields(m, key, fd.Value)
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
