package schema

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
)

// TestProbeImportedSource: a comprehension whose source is a value of a
// package of the tree's module is measured by the probe (which takes the
// imports of the instance CUE's loader loaded) and refused with its
// position before CUE evaluates it, not counted afterwards.
func TestProbeImportedSource(t *testing.T) {
	fsys := fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"example.com/specs\"\nlanguage: version: \"v0.9.0\"\n")},
		"defs/defs.cue":      {Data: []byte("package defs\n\nimport \"list\"\n\n#Zones: [for i in list.Range(0, 20, 1) {\"z\\(i)\"}]\n")},
		"devices/d.cue": {Data: []byte(`package spec

import "example.com/specs/defs"

devices: {
	for i, z in defs.#Zones {
		"d\(i)": {address: "192.0.2.2", zone: z}
	}
}
`)},
	}
	l := DefaultLimits
	l.MaxBalancers, l.MaxDevices = 5, 5
	_, err := l.Load(context.Background(), fsys)
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("err = %v, want diagnostics", err)
	}
	want := "devices/d.cue:6:2: this comprehension iterates over 20 values, more than the limits of 5 balancers and 5 devices allow"
	if !strings.HasPrefix(ds.Error(), want) {
		t.Errorf("got %v\nwant %s...", ds, want)
	}
}

// A comprehension over a list the files write (a top-level field's list
// literal, or a literal) is measured without evaluating the probe, and
// refused as the evaluated probe refuses it; a name another scope declares
// again, or a field declared twice, is left to the evaluated probe.
func TestProbeStaticLengths(t *testing.T) {
	list := func(n int) string { return "[" + strings.Repeat("{},", n) + "]" }
	comp := "balancers: {\n\tfor i, s in _s {\n\t\t\"b\\(i)\": {vips: [{address: \"203.0.113.10\", port: 1 + i}], nodes: [{address: \"198.51.100.5\", port: 8080}]}\n\t}\n}\n"
	l := DefaultLimits
	l.MaxBalancers, l.MaxDevices = 5, 5
	for _, c := range []struct {
		name, src string
		static    bool
		refused   bool
	}{
		{"top-level list", "package spec\n\n_s: " + list(12) + "\n" + comp, true, true},
		{"small top-level list", "package spec\n\n_s: " + list(3) + "\n" + comp, true, false},
		{"literal", "package spec\n\n" + strings.Replace(comp, "in _s", "in "+list(12), 1), true, true},
		{"shadowed", "package spec\n\n_s: " + list(12) + "\n" + strings.Replace(comp, "balancers: {\n", "balancers: {\n\t_s: "+list(2)+"\n", 1), false, false},
		{"declared twice", "package spec\n\n_s: " + list(12) + "\n_s: " + list(12) + "\n" + comp, false, true},
		{"not a literal", "package spec\n\nimport \"list\"\n\n_s: list.Repeat([{}], 12)\n" + comp, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := parser.ParseFile("d/d.cue", c.src)
			if err != nil {
				t.Fatal(err)
			}
			lists := topLists([]*ast.File{f})
			probes, undo := probeFile(f, relName, 0)
			undo()
			if got := staticLengths(probes, lists); got != c.static {
				t.Errorf("static = %v, want %v", got, c.static)
			}
			fsys := fstest.MapFS{"d/d.cue": {Data: []byte(c.src)}}
			_, err = l.Load(context.Background(), fsys)
			refused := err != nil && strings.Contains(err.Error(), "this comprehension iterates over 12 values")
			if refused != c.refused {
				t.Errorf("refused = %v, want %v: %v", refused, c.refused, err)
			}
		})
	}
}
