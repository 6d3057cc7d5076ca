package schema

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
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
