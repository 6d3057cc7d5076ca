package schema

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// An instance that imports from the tree's module is loaded by CUE's
// loader; the .cue files of directories above it must not join it (CUE
// would otherwise unify same-package files of parent directories).
func TestLoadDirImportsAndParentFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cue.mod/module.cue":   "module: \"example.com/x\"\nlanguage: version: \"v0.12.0\"\n",
		"root.cue":             "package spec\n\ndevices: \"lb-a1\": address: \"192.0.2.1\"\n",
		"lib/lib.cue":          "package lib\n\n#Port: 8080\n",
		"balancers/shop/b.cue": "package spec\n\nimport \"example.com/x/lib\"\n\nballast: lib.#Port\nbalancers: web: {vips: [{address: \"203.0.113.1\", port: 80}], nodes: [{address: \"198.51.100.5\", port: lib.#Port}]}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadDir(context.Background(), dir)
	want := `balancers/shop/b.cue:5:1: ballast: unknown field "ballast"`
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v, want %s", err, want)
	}
	os.WriteFile(filepath.Join(dir, "balancers/shop/b.cue"), []byte(strings.Replace(files["balancers/shop/b.cue"], "ballast: lib.#Port\n", "", 1)), 0o644)
	spec, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Balancers["web"].Nodes[0].Port; got != 8080 {
		t.Errorf("imported port = %d, want 8080", got)
	}
	if len(spec.Devices) != 1 {
		t.Errorf("devices = %v, want lb-a1 once", spec.DeviceNames())
	}
}

func TestInstancesSkipsHiddenAndCueMod(t *testing.T) {
	fsys := fstest.MapFS{
		"a.cue":                 {},
		"cue.mod/module.cue":    {},
		"cue.mod/pkg/x/x.cue":   {},
		".git/x.cue":            {},
		"b/c/d.cue":             {},
		"b/notes.txt":           {},
		"b/.hidden.cue":         {},
		"z/_scratch/x.cue":      {},
		"balancers/t1/a.cue":    {},
		"balancers/t1/b.cue":    {},
		"balancers/t2/x/y.json": {},
	}
	got, err := Instances(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "b/c", "balancers/t1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Instances = %q, want %q", got, want)
	}
}

// Watch mode reloads one instance and merges it with the others it kept.
func TestIncrementalMerge(t *testing.T) {
	fsys := fstest.MapFS{
		"d/d.cue": {Data: []byte(`devices: "lb-a1": address: "192.0.2.1"`)},
		"a/a.cue": {Data: []byte(`balancers: a: {vips: [{address: "203.0.113.1", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}`)},
		"b/b.cue": {Data: []byte(`balancers: b: {vips: [{address: "203.0.113.2", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}`)},
	}
	dirs, _ := Instances(fsys)
	parts := map[string]*Partial{}
	for _, d := range dirs {
		p, err := LoadInstance(fsys, d)
		if err != nil {
			t.Fatal(err)
		}
		parts[d] = p
	}
	merge := func() (*Spec, error) {
		var ps []*Partial
		for _, p := range parts {
			ps = append(ps, p)
		}
		return Merge(ps)
	}
	if _, err := merge(); err != nil {
		t.Fatal(err)
	}
	// b now takes a's VIP.
	fsys["b/b.cue"].Data = []byte(`balancers: b: {vips: [{address: "203.0.113.1", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}`)
	p, err := LoadInstance(fsys, "b")
	if err != nil {
		t.Fatal(err)
	}
	parts["b"] = p
	_, err = merge()
	want := `b/b.cue:1:23: balancers.b.vips[0]: duplicate VIP 203.0.113.1:80: also used by balancers.a.vips[0] at a/a.cue:1:23`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestDiagnosticJSON(t *testing.T) {
	d := Diagnostic{Severity: SeverityError, Message: "m", Path: `balancers."a-b".vips[0]`, Pos: Pos{File: "f.cue", Line: 2, Col: 3}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"severity":"error","message":"m","path":"balancers.\"a-b\".vips[0]","file":"f.cue","line":2,"column":3}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	if got := d.String(); got != `f.cue:2:3: balancers."a-b".vips[0]: m` {
		t.Errorf("String = %s", got)
	}
}

func TestSourceIsTheSchema(t *testing.T) {
	if !strings.Contains(Source(), "#Balancer: {") || !strings.Contains(Source(), `tenant:    *"default" | #Name`) {
		t.Fatal("Source does not return the schema with its defaults")
	}
}
