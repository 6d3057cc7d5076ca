package schema

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// The fast path: an instance whose files are plain data (structs, lists,
// literals, and [string]: patterns of plain data) is unified here in Go,
// with CUE's semantics for data, and checked by the validator generated
// from the compiled schema (validate.go). Anything else, and any instance
// that the fast path finds a problem in, goes through CUE, which then
// reports the problems: the fast path never writes a diagnostic of its own
// about the schema, so both paths report the same.

// dkind is the kind of a data value.
type dkind uint8

const (
	dStruct dkind = iota + 1
	dList
	dString
	dInt
	dFloat
	dBool
)

// dval is one plain data value, of 56 bytes; the parts of a struct or a
// list are behind *dagg, so that the many scalars of a spec (ten rules
// double the values of a balancer) do not carry them.
type dval struct {
	kind  dkind
	b     bool
	s     string    // dString; the literal text for dInt and dFloat
	i     int64     // dInt; the bits of the float64 for dFloat (see float)
	at    token.Pos // first place the value (or the field's label) is written
	*dagg           // dStruct and dList; nil for a scalar
}

// float returns the number of a dFloat.
func (v *dval) float() float64 { return math.Float64frombits(uint64(v.i)) }

// setFloat makes v the dFloat f written text.
func (v *dval) setFloat(f float64, text string) {
	v.kind, v.i, v.s = dFloat, int64(math.Float64bits(f)), text
}

// dagg holds the fields of a struct or the elements of a list, in 56
// bytes: what few structs have is behind more.
type dagg struct {
	fields []dfield // dStruct: in order of first appearance
	elems  []*dval  // dList
	more   *dmore   // dStruct with patterns or many fields; else nil
}

// dmore holds what few structs have.
type dmore struct {
	index map[string]int // many fields: name → position in fields
	pats  []*dval        // values of [string]: patterns, applied to every field
}

// patterns returns the values of the [string]: patterns of the struct v.
func (v *dval) patterns() []*dval {
	if v.more == nil {
		return nil
	}
	return v.more.pats
}

// addPattern adds the value of a [string]: pattern to the struct v.
func (v *dval) addPattern(p *dval) {
	if v.more == nil {
		v.more = &dmore{}
	}
	v.more.pats = append(v.more.pats, p)
}

// dfield is one field of a struct.
type dfield struct {
	name string
	v    *dval
}

// newStruct returns an empty struct with room for n fields.
func newStruct(at token.Pos, n int) *dval {
	a := &dagg{}
	if n > 0 {
		a.fields = make([]dfield, 0, n)
	}
	return &dval{kind: dStruct, at: at, dagg: a}
}

// newList returns an empty list with room for n elements.
func newList(at token.Pos, n int) *dval {
	return &dval{kind: dList, at: at, dagg: &dagg{elems: make([]*dval, 0, n)}}
}

// notData is returned by the conversion for anything that is not plain data.
type notData struct{}

// isNotData reports whether r, what recover returned, is a notData
// panic; any other panic goes on.
func isNotData(r any) bool {
	if r == nil {
		return false
	}
	if _, is := r.(notData); !is {
		panic(r)
	}
	return true
}

// dataFiles converts and unifies the files of an instance; ok is false when
// a file is not plain data or two values conflict.
func dataFiles(files []*ast.File) (top *dval, ok bool) {
	defer func() {
		if isNotData(recover()) {
			top, ok = nil, false
		}
	}()
	top = newStruct(token.NoPos, 0)
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.Package, *ast.CommentGroup:
			case *ast.Field:
				addField(top, d)
			default: // imports, embeddings, let, attributes (@if), comprehensions...
				panic(notData{})
			}
		}
	}
	applyPatterns(top)
	return top, true
}

// addField unifies the field d into the struct s.
func addField(s *dval, d *ast.Field) {
	if d.Constraint != token.ILLEGAL || d.Alias != nil {
		panic(notData{})
	}
	v := toData(d.Value)
	if l, ok := d.Label.(*ast.ListLit); ok {
		// A pattern: [string]: V or [_]: V.
		if len(l.Elts) != 1 {
			panic(notData{})
		}
		id, ok := l.Elts[0].(*ast.Ident)
		if !ok || (id.Name != "string" && id.Name != "_") {
			panic(notData{})
		}
		s.addPattern(v)
		return
	}
	name := dataLabel(d.Label)
	v.at = d.Label.Pos()
	if prev := s.get(name); prev != nil {
		unifyData(prev, v, true)
		return
	}
	s.add(name, v)
}

// indexAbove is the number of fields above which a struct keeps an index.
const indexAbove = 8

// get returns the field name of the struct v, or nil.
func (v *dval) get(name string) *dval {
	if v.more != nil && v.more.index != nil {
		if i, ok := v.more.index[name]; ok {
			return v.fields[i].v
		}
		return nil
	}
	for _, f := range v.fields {
		if f.name == name {
			return f.v
		}
	}
	return nil
}

// add appends a field the struct v does not have.
func (v *dval) add(name string, x *dval) {
	v.fields = append(v.fields, dfield{name, x})
	switch {
	case v.more != nil && v.more.index != nil:
		v.more.index[name] = len(v.fields) - 1
	case len(v.fields) > indexAbove:
		if v.more == nil {
			v.more = &dmore{}
		}
		v.more.index = make(map[string]int, 2*len(v.fields))
		for i, f := range v.fields {
			v.more.index[f.name] = i
		}
	}
}

// dataLabel returns the name of a regular field label. An identifier label
// named string would be a reference target of [string] patterns: not data.
func dataLabel(l ast.Label) string {
	switch l := l.(type) {
	case *ast.Ident:
		if l.Name == "" || l.Name[0] == '#' || l.Name[0] == '_' || l.Name == "string" {
			panic(notData{})
		}
		return l.Name
	case *ast.BasicLit:
		if l.Kind == token.STRING && !isBytes(l.Value) {
			if s, err := unquote1(l.Value); err == nil {
				return s
			}
		}
	}
	panic(notData{})
}

// unquote1 returns the value of a string literal: quickly for a plain
// "..." of printable ASCII without escapes, else as CUE reads it.
func unquote1(lit string) (string, error) {
	if n := len(lit); n >= 2 && lit[0] == '"' && lit[n-1] == '"' && !strings.HasPrefix(lit, `"""`) {
		plain := true
		for i := 1; i < n-1; i++ {
			if c := lit[i]; c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain {
			return lit[1 : n-1], nil
		}
	}
	return literal.Unquote(lit)
}

func isBytes(lit string) bool { return strings.HasPrefix(strings.TrimLeft(lit, "#"), "'") }

var floatLit = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// isDecimal reports whether s is a plain decimal integer literal: 0, or
// digits without a leading 0 (no _, no base prefix, no multiplier).
func isDecimal(s string) bool {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// toData converts one value expression.
func toData(x ast.Expr) *dval {
	switch x := x.(type) {
	case *ast.StructLit:
		s := newStruct(x.Pos(), len(x.Elts))
		for _, d := range x.Elts {
			switch d := d.(type) {
			case *ast.Field:
				addField(s, d)
			case *ast.CommentGroup:
			default:
				panic(notData{})
			}
		}
		return s
	case *ast.ListLit:
		l := newList(x.Pos(), len(x.Elts))
		for _, e := range x.Elts {
			l.elems = append(l.elems, toData(e))
		}
		return l
	case *ast.BasicLit:
		return basic(x, false)
	case *ast.UnaryExpr:
		if b, ok := x.X.(*ast.BasicLit); ok && x.Op == token.SUB && (b.Kind == token.INT || b.Kind == token.FLOAT) {
			v := basic(b, true)
			v.at = x.Pos()
			return v
		}
	}
	panic(notData{})
}

func basic(x *ast.BasicLit, neg bool) *dval {
	v := &dval{at: x.Pos()}
	switch x.Kind {
	case token.STRING:
		if isBytes(x.Value) {
			break
		}
		s, err := unquote1(x.Value)
		if err != nil {
			break
		}
		v.kind, v.s = dString, s
		return v
	case token.INT:
		if !isDecimal(x.Value) {
			break
		}
		text := x.Value
		if neg {
			text = "-" + text
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			break
		}
		v.kind, v.i, v.s = dInt, n, text
		return v
	case token.FLOAT:
		if !floatLit.MatchString(x.Value) {
			break
		}
		text := x.Value
		if neg {
			text = "-" + text
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			break
		}
		v.setFloat(f, text)
		return v
	case token.TRUE, token.FALSE:
		v.kind, v.b = dBool, x.Kind == token.TRUE
		return v
	}
	panic(notData{})
}

// unifyData unifies src into dst: structs merge, lists unify element by
// element (same length), scalars must be equal and of the same kind.
// When own is set, src is not used afterwards and its parts move to dst;
// else they are copied.
func unifyData(dst, src *dval, own bool) {
	if dst.kind != src.kind {
		panic(notData{})
	}
	switch dst.kind {
	case dStruct:
		for _, f := range src.fields {
			sv := f.v
			if dv := dst.get(f.name); dv != nil {
				unifyData(dv, sv, own)
				continue
			}
			if !own {
				sv = sv.clone()
			}
			dst.add(f.name, sv)
		}
		for _, p := range src.patterns() {
			if !own {
				p = p.clone()
			}
			dst.addPattern(p)
		}
	case dList:
		if len(dst.elems) != len(src.elems) {
			panic(notData{})
		}
		for i := range dst.elems {
			unifyData(dst.elems[i], src.elems[i], own)
		}
	case dString:
		if dst.s != src.s {
			panic(notData{})
		}
	case dInt:
		if dst.i != src.i {
			panic(notData{})
		}
	case dFloat:
		// 1.0 and 1.00 are the same number, but how CUE prints or keeps
		// the precision of either is its business: only identical text.
		if dst.s != src.s {
			panic(notData{})
		}
	case dBool:
		if dst.b != src.b {
			panic(notData{})
		}
	}
}

// clone copies v deeply (the position of each copy stays the original's).
func (v *dval) clone() *dval {
	c := *v
	if v.dagg == nil {
		return &c
	}
	a := &dagg{}
	c.dagg = a
	if v.fields != nil {
		a.fields = make([]dfield, len(v.fields))
		for i, f := range v.fields {
			a.fields[i] = dfield{f.name, f.v.clone()}
		}
	}
	if m := v.more; m != nil {
		a.more = &dmore{}
		if m.index != nil {
			a.more.index = make(map[string]int, len(m.index))
			for k, i := range m.index {
				a.more.index[k] = i
			}
		}
		if m.pats != nil {
			a.more.pats = make([]*dval, len(m.pats))
			for i, p := range m.pats {
				a.more.pats[i] = p.clone()
			}
		}
	}
	if v.elems != nil {
		a.elems = make([]*dval, len(v.elems))
		for i, e := range v.elems {
			a.elems[i] = e.clone()
		}
	}
	return &c
}

// applyPatterns unifies the patterns of each struct into each of its
// fields, top down.
func applyPatterns(v *dval) {
	switch v.kind {
	case dStruct:
		for _, f := range v.fields {
			for _, p := range v.patterns() {
				unifyData(f.v, p, false)
			}
			applyPatterns(f.v)
		}
	case dList:
		for _, e := range v.elems {
			applyPatterns(e)
		}
	}
}
