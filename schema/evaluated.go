package schema

import (
	"strconv"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/token"
)

// The evaluated path: an instance that is not plain data (it imports
// definitions, has comprehensions, references, defaults of its own) is
// evaluated by CUE on its own, without lbc's schema, the work `cue export`
// does for it. When that gives concrete data, the data goes through the
// validator generated from the schema, as plain data does; only an instance
// that fails, stays incomplete or that the validator does not accept is
// evaluated again unified with the schema, and CUE reports its problems.
//
// Unifying with the schema adds no regular field (its defaults are optional
// fields, see checkFile) and data the validator accepts is data the schema
// accepts, so the unified value holds the same data: the two paths give the
// same Partial (tests compare them instance by instance).

// evaluatedData converts the concrete value v (an instance evaluated alone)
// into plain data; ok is false when a part of it is not concrete, is an
// error, or is something plain data cannot hold.
func evaluatedData(v cue.Value) (d *dval, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, is := r.(notData); !is {
				panic(r)
			}
			d, ok = nil, false
		}
	}()
	return fromValue(v, 0), true
}

// maxDepth bounds the nesting fromValue follows (the schema is 5 deep).
const maxDepth = 16

func fromValue(v cue.Value, depth int) *dval {
	if depth > maxDepth {
		panic(notData{})
	}
	if dv, ok := v.Default(); ok {
		v = dv
	}
	d := &dval{}
	if depth == 2 {
		// A device or balancer: where the files write its value (the
		// shape has no positions, see shapeFile); entitiesAtLabels
		// turns that into the position of its label. No other position
		// of a value is read.
		d.at = v.Pos()
	}
	switch v.Kind() {
	case cue.StructKind:
		d.kind, d.dagg = dStruct, &dagg{}
		opts := []cue.Option{cue.Optional(true)}
		if depth > 0 {
			// Below the top, a definition or hidden field is not data the
			// validator can judge: leave the instance to CUE.
			opts = append(opts, cue.Definitions(true), cue.Hidden(true))
		}
		it, err := v.Fields(opts...)
		if err != nil {
			panic(notData{})
		}
		for it.Next() {
			sel := it.Selector()
			switch {
			case !sel.IsString():
				panic(notData{})
			case sel.ConstraintType() == cue.OptionalConstraint:
				continue // no data, and CUE allows it in a closed struct
			case sel.ConstraintType() != 0:
				panic(notData{}) // a required field left unset
			}
			name := sel.Unquoted()
			if d.get(name) != nil {
				panic(notData{})
			}
			d.add(name, fromValue(it.Value(), depth+1))
		}
	case cue.ListKind:
		d.kind, d.dagg = dList, &dagg{}
		it, err := v.List()
		if err != nil {
			panic(notData{})
		}
		for it.Next() {
			d.elems = append(d.elems, fromValue(it.Value(), depth+1))
		}
	case cue.StringKind:
		s, err := v.String()
		if err != nil {
			panic(notData{})
		}
		d.kind, d.s = dString, s
	case cue.IntKind:
		i, err := v.Int64()
		if err != nil {
			panic(notData{})
		}
		d.kind, d.i, d.s = dInt, i, strconv.FormatInt(i, 10)
	case cue.FloatKind:
		f, err := v.Float64()
		if err != nil {
			panic(notData{})
		}
		d.setFloat(f, strconv.FormatFloat(f, 'g', -1, 64))
	case cue.BoolKind:
		b, err := v.Bool()
		if err != nil {
			panic(notData{})
		}
		d.kind, d.b = dBool, b
	default: // bottom (an error), incomplete, null, bytes
		panic(notData{})
	}
	return d
}

// entitiesAtLabels moves the position of each device and balancer of data
// (the value of the field that makes it, see fromValue) to that field's
// label, found in the files of inst and of the packages it imports: the
// position userPos gives on the CUE path, which decode's entityAt reads
// when the files do not write the entity's key literally (a comprehension
// made it). userPos itself would evaluate every conjunct of each entity
// once more alone (cue's Value.Expr): 40 % of the load of an instance made
// by a comprehension. An entity that several fields of the files make
// (two comprehensions) gets the last one's label here, and the second
// one's value on the CUE path (TestEvaluatedPathEntityOfTwoFields): both
// the user's text.
func entitiesAtLabels(data *dval, inst *build.Instance) {
	var labels map[token.Pos]token.Pos
	for _, top := range []string{"devices", "balancers"} {
		m := data.get(top)
		if m == nil || m.kind != dStruct {
			continue
		}
		for _, f := range m.fields {
			e := f.v
			if !e.at.IsValid() {
				continue
			}
			if labels == nil {
				labels = fieldLabels(inst)
			}
			if l, ok := labels[e.at]; ok {
				e.at = l
			}
		}
	}
}

// fieldLabels maps the position of every field's value in the files of
// inst and its imports to the position of the field's label.
func fieldLabels(inst *build.Instance) map[token.Pos]token.Pos {
	m := map[token.Pos]token.Pos{}
	seen := map[*build.Instance]bool{}
	var walk func(*build.Instance)
	walk = func(in *build.Instance) {
		if in == nil || seen[in] {
			return
		}
		seen[in] = true
		for _, f := range in.Files {
			ast.Walk(f, func(n ast.Node) bool {
				if fd, ok := n.(*ast.Field); ok && fd.Value != nil {
					if vp := fd.Value.Pos(); vp.IsValid() {
						m[vp] = fd.Label.Pos()
					}
				}
				return true
			}, nil)
		}
		for _, im := range in.Imports {
			walk(im)
		}
	}
	walk(inst)
	return m
}
