package schema

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
)

// vnode is the validator of one value of the schema, generated once from
// the compiled schema (see newValidator): it accepts plain data exactly
// when CUE would accept it unified with the schema, or is stricter (the
// caller then asks CUE). A part of the schema it cannot express becomes an
// unsupported node, which accepts nothing.
type vnode struct {
	unsupported string // why this node cannot be checked in Go; "" if it can

	kinds cue.Kind // the kinds a value may have (IntKind, FloatKind, ...)

	// struct
	fields   map[string]*vfield
	required []string
	pattern  *vnode            // value of the fields the pattern admits; nil: closed, no pattern
	allows   func(string) bool // whether the pattern admits a label

	// list
	elem *vnode // [...elem]

	// scalars
	regexes  []matcher
	notRegex []matcher
	bounds   []vbound
	concrete *dval // the only value allowed
}

type vfield struct {
	node     *vnode
	required bool
	regular  bool // neither optional (?) nor required (!): unification adds it
}

type vbound struct {
	op    cue.Op
	n     float64
	i     int64
	isInt bool
}

// probes are labels tried to learn whether a closed struct has a pattern
// constraint and what its value is.
var probes = []string{"a", "x", "a0", "lbc-probe", "A", "0"}

// newValidator generates the validator of v, a value of ctx. Struct
// patterns are asked of CUE (Allows) under mu: cue.Values are not safe for
// concurrent use.
func newValidator(v cue.Value, mu *sync.Mutex, depth int) *vnode {
	n := &vnode{kinds: v.IncompleteKind()}
	if depth > 32 {
		n.unsupported = "schema too deep"
		return n
	}
	if err := v.Err(); err != nil {
		n.unsupported = err.Error()
		return n
	}
	switch n.kinds {
	case cue.StructKind:
		it, err := v.Fields(cue.Optional(true))
		if err != nil {
			n.unsupported = err.Error()
			return n
		}
		n.fields = map[string]*vfield{}
		for it.Next() {
			sel := it.Selector()
			if !sel.IsString() {
				continue // definitions and hidden fields: no data reaches them
			}
			name := sel.Unquoted()
			fv := it.Value()
			f := &vfield{node: newValidator(fv, mu, depth+1)}
			switch sel.ConstraintType() {
			case cue.RequiredConstraint:
				f.required = true
			case cue.OptionalConstraint:
			default:
				f.regular = true
				// A regular field must be concrete after unification: one
				// the data must set unless the schema's value is complete.
				if fk := fv.IncompleteKind(); fk != cue.StructKind && fk != cue.ListKind && !fv.IsConcrete() {
					f.required = true
				}
				if fv.IncompleteKind() == cue.ListKind {
					// An open list [...T] is complete; a list of fixed
					// elements is not modelled.
					if _, err := fv.List(); err != nil {
						f.node.unsupported = "list: " + err.Error()
					}
				}
			}
			if f.required {
				n.required = append(n.required, name)
			}
			n.fields[name] = f
		}
		// Every struct of the schema is treated as closed (definitions
		// close recursively); an open one would only send more instances
		// to CUE: Allows admits every label, and the pattern value of an
		// open struct is top, which is unsupported.
		for _, p := range probes {
			if _, ok := n.fields[p]; ok || !v.Allows(cue.Str(p)) {
				continue
			}
			ctx := v.Context()
			pv := v.Unify(ctx.CompileString(fmt.Sprintf("{%q: _}", p))).LookupPath(cue.MakePath(cue.Str(p)))
			n.pattern = newValidator(pv, mu, depth+1)
			n.allows = memoAllows(func(label string) bool {
				mu.Lock()
				defer mu.Unlock()
				return v.Allows(cue.Str(label))
			})
			break
		}
		if n.pattern == nil {
			// A pattern none of the probes matches cannot be told from no
			// pattern: unknown fields then go to CUE, which is right either way.
			n.allows = func(string) bool { return false }
		}
	case cue.ListKind:
		e := v.LookupPath(cue.MakePath(cue.AnyIndex))
		if !e.Exists() {
			n.unsupported = "list without element type"
			return n
		}
		n.elem = newValidator(e, mu, depth+1)
	default:
		if n.kinds&^(cue.IntKind|cue.FloatKind|cue.StringKind|cue.BoolKind) != 0 || n.kinds == 0 {
			n.unsupported = "kind " + n.kinds.String()
			return n
		}
		n.scalar(v)
	}
	return n
}

// scalar reads the constraints of a scalar: a conjunction of kinds,
// regular expressions, bounds, or a concrete value.
func (n *vnode) scalar(v cue.Value) {
	if v.IsConcrete() {
		d, ok := concreteData(v)
		if !ok {
			n.unsupported = "concrete value " + fmt.Sprint(v)
		}
		n.concrete = d
		return
	}
	op, args := v.Expr()
	switch op {
	case cue.AndOp:
		for _, a := range args {
			n.scalar(a)
		}
	case cue.NoOp:
		// A basic type (int, string, number, bool): n.kinds has it.
		switch k := v.IncompleteKind(); k {
		case cue.IntKind, cue.FloatKind, cue.NumberKind, cue.StringKind, cue.BoolKind:
			n.kinds &= k
		case cue.TopKind:
			// _ constrains nothing: the probe's own value, unified
			// with a scalar pattern value (hosts: [#HostName]: #Name).
		default:
			n.unsupported = "type " + k.String()
		}
	case cue.RegexMatchOp, cue.NotRegexMatchOp:
		s, err := args[0].String()
		re, err2 := regexp.Compile(s)
		if err != nil || err2 != nil {
			n.unsupported = "regular expression " + fmt.Sprint(args[0])
			return
		}
		if op == cue.RegexMatchOp {
			n.regexes = append(n.regexes, newMatcher(re))
		} else {
			n.notRegex = append(n.notRegex, newMatcher(re))
		}
		n.kinds &= cue.StringKind
	case cue.LessThanOp, cue.LessThanEqualOp, cue.GreaterThanOp, cue.GreaterThanEqualOp, cue.NotEqualOp:
		b := vbound{op: op}
		a := args[0]
		switch a.Kind() {
		case cue.IntKind:
			i, err := a.Int64()
			if err != nil {
				n.unsupported = "bound " + fmt.Sprint(a)
				return
			}
			b.i, b.n, b.isInt = i, float64(i), true
		case cue.FloatKind:
			f, err := a.Float64()
			if err != nil {
				n.unsupported = "bound " + fmt.Sprint(a)
				return
			}
			b.n = f
		default:
			n.unsupported = "bound " + fmt.Sprint(a)
			return
		}
		if op == cue.NotEqualOp {
			// != also takes other kinds; it is not in lbc's schema.
			n.unsupported = "!= bound"
			return
		}
		n.bounds = append(n.bounds, b)
		n.kinds &= cue.NumberKind
	case cue.SelectorOp, cue.CallOp:
		// A reference (#Name): its evaluated value carries the constraints.
		if ev := v.Eval(); ev.Err() == nil {
			if op2, _ := ev.Expr(); op2 != op {
				n.scalar(ev)
				return
			}
		}
		n.unsupported = "reference " + fmt.Sprint(v)
	default:
		n.unsupported = "operator " + op.String()
	}
}

func concreteData(v cue.Value) (*dval, bool) {
	switch v.Kind() {
	case cue.StringKind:
		s, err := v.String()
		return &dval{kind: dString, s: s}, err == nil
	case cue.BoolKind:
		b, err := v.Bool()
		return &dval{kind: dBool, b: b}, err == nil
	case cue.IntKind:
		i, err := v.Int64()
		return &dval{kind: dInt, i: i}, err == nil
	}
	return nil, false
}

// check reports whether the data x is valid against n (and so against the
// schema): every required field present, no unknown field, every value of
// its kind and within its constraints. why says what failed, for tests.
func (n *vnode) check(x *dval) (ok bool, why string) {
	if n.unsupported != "" {
		return false, "unsupported: " + n.unsupported
	}
	switch x.kind {
	case dStruct:
		if n.kinds != cue.StructKind {
			return false, "struct not allowed"
		}
		for _, r := range n.required {
			if x.get(r) == nil {
				return false, "missing " + r
			}
		}
		for _, xf := range x.fields {
			k := xf.name
			sub := n.pattern
			if f, ok := n.fields[k]; ok {
				sub = f.node
			} else if sub == nil || !n.allows(k) {
				return false, "field not allowed: " + k
			}
			if ok, why := sub.check(xf.v); !ok {
				return false, k + ": " + why
			}
		}
		return true, ""
	case dList:
		if n.kinds != cue.ListKind {
			return false, "list not allowed"
		}
		for i, e := range x.elems {
			if ok, why := n.elem.check(e); !ok {
				return false, fmt.Sprintf("[%d]: %s", i, why)
			}
		}
		return true, ""
	}
	if n.concrete != nil {
		c := n.concrete
		same := c.kind == x.kind && (c.kind != dString || c.s == x.s) &&
			(c.kind != dInt || c.i == x.i) && (c.kind != dBool || c.b == x.b)
		if !same {
			return false, "not the schema's value"
		}
		return true, ""
	}
	var k cue.Kind
	switch x.kind {
	case dString:
		k = cue.StringKind
	case dInt:
		k = cue.IntKind
	case dFloat:
		k = cue.FloatKind
	case dBool:
		k = cue.BoolKind
	}
	if n.kinds&k == 0 {
		return false, "kind " + k.String() + " not allowed"
	}
	for _, re := range n.regexes {
		if !re.MatchString(x.s) {
			return false, "does not match " + re.String()
		}
	}
	for _, re := range n.notRegex {
		if re.MatchString(x.s) {
			return false, "matches " + re.String()
		}
	}
	for _, b := range n.bounds {
		if !b.holds(x) {
			return false, "out of bound"
		}
	}
	return true, ""
}

func (b vbound) holds(x *dval) bool {
	if x.kind == dInt && b.isInt {
		switch b.op {
		case cue.LessThanOp:
			return x.i < b.i
		case cue.LessThanEqualOp:
			return x.i <= b.i
		case cue.GreaterThanOp:
			return x.i > b.i
		case cue.GreaterThanEqualOp:
			return x.i >= b.i
		}
		return false
	}
	f := x.float()
	if x.kind == dInt {
		f = float64(x.i)
	}
	switch b.op {
	case cue.LessThanOp:
		return f < b.n
	case cue.LessThanEqualOp:
		return f <= b.n
	case cue.GreaterThanOp:
		return f > b.n
	case cue.GreaterThanEqualOp:
		return f >= b.n
	}
	return false
}

// unsupportedParts lists the parts of the schema the validator cannot
// check (a test keeps it empty for lbc's schema).
func (n *vnode) unsupportedParts(path string, out *[]string) {
	if n.unsupported != "" {
		*out = append(*out, path+": "+n.unsupported)
		return
	}
	for k, f := range n.fields {
		f.node.unsupportedParts(path+"."+k, out)
	}
	if n.pattern != nil {
		n.pattern.unsupportedParts(path+".[pattern]", out)
	}
	if n.elem != nil {
		n.elem.unsupportedParts(path+"[]", out)
	}
}

// shape writes the CUE source of the fields unification with n adds to a
// value although the data does not set them: the regular struct and list
// fields of the schema (a device's ssh: {}, a balancer's placement:
// {zones: [], tags: []}), open and unconstrained, under the same optional
// fields and patterns as in the schema. An instance evaluated alone is
// unified with it, so that a reference to such a field (`if x.tags !=
// _|_`) sees what it sees unified with the schema.
func (n *vnode) shape(b *strings.Builder) {
	switch n.kinds {
	case cue.ListKind:
		b.WriteString("[...]")
		return
	case cue.StructKind:
	default:
		b.WriteString("_")
		return
	}
	b.WriteString("{")
	names := make([]string, 0, len(n.fields))
	for k := range n.fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := n.fields[k]
		if f.required || (f.node.kinds != cue.StructKind && f.node.kinds != cue.ListKind) {
			continue
		}
		b.WriteString(strconv.Quote(k))
		if !f.regular {
			b.WriteString("?")
		}
		b.WriteString(": ")
		f.node.shape(b)
		b.WriteString("\n")
	}
	if n.pattern != nil && n.pattern.kinds == cue.StructKind {
		b.WriteString("[string]: ")
		n.pattern.shape(b)
		b.WriteString("\n")
	}
	b.WriteString("...}")
}
