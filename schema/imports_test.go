package schema

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// Instances that share imported packages within one load (see
// sharedImports) load as each loads alone with its own: the same spec,
// positions included, or the same diagnostics, also when an imported
// package or an instance is wrong.
func TestSharedImportsLoadAsAlone(t *testing.T) {
	defs := `package defs

#Balancer: {
	S=in:     {name: string, vip: string, weight: *1 | int}
	T=tenant: string
	out: {
		tenant: T
		vips: [{address: S.vip, port: 80}]
		nodes: [{address: "198.51.100.1", port: 8080, weight: S.weight}]
	}
}
`
	tenant := func(name, vip, extra string) string {
		return fmt.Sprintf(`package spec

import "example.com/x/defs"

_services: [{name: "web", vip: %q, weight: 3}, {name: "api", vip: %q}]
balancers: {
	for s in _services {
		"%s-\(s.name)": (defs.#Balancer & {in: s, tenant: %q}).out
	}
}
%s`, vip+"0", vip+"1", name, name, extra)
	}
	tree := func(defs string, tenants map[string]string) fstest.MapFS {
		fsys := fstest.MapFS{
			"cue.mod/module.cue": {Data: []byte("module: \"example.com/x\"\nlanguage: version: \"v0.12.0\"\n")},
			"defs/defs.cue":      {Data: []byte(defs)},
			"devices/d.cue":      {Data: []byte("package spec\n\ndevices: \"lb-1\": {address: \"192.0.2.1\", zone: \"az-a\", vipNetworks: [\"203.0.113.0/24\"]}\n")},
		}
		for name, src := range tenants {
			fsys["balancers/"+name+"/b.cue"] = &fstest.MapFile{Data: []byte(src)}
		}
		return fsys
	}
	good := map[string]string{
		"a": tenant("a", "203.0.113.1", ""),
		"b": tenant("b", "203.0.113.2", ""),
		"c": tenant("c", "203.0.113.3", ""),
	}
	wrongTenant := map[string]string{
		"a": tenant("a", "203.0.113.1", ""),
		"b": tenant("b", "203.0.113.2", "balancers: \"b-web\": algorithm: \"fastest\"\n"),
		"c": "package spec\n\nimport \"example.com/x/defs\"\n\nbalancers: \"c-x\": {tenant: \"c\", vips: [{address: \"203.0.113.99\", port: 80}], nodes: [{address: \"198.51.100.9\", port: 80}]}\n",
		"d": tenant("d", "203.0.113.4", "x: _undefined\n"),
	}
	for name, fsys := range map[string]fstest.MapFS{
		"good":         tree(defs, good),
		"wrong tenant": tree(defs, wrongTenant),
		"wrong defs":   tree(defs+"#Other: nope\n", good),
	} {
		t.Run(name, func(t *testing.T) {
			before := sharedBuilds.Load()
			shared, errShared := Load(context.Background(), fsys)
			if n := sharedBuilds.Load() - before; name == "good" && n != 2 {
				t.Errorf("%d of 3 tenants made with the imports the first loaded; want 2", n)
			}
			dirs, err := Instances(fsys)
			if err != nil {
				t.Fatal(err)
			}
			var parts []*Partial
			for _, d := range dirs {
				p, err := loadInstance(fsys, d, pathAuto)
				if err != nil {
					t.Fatal(err)
				}
				parts = append(parts, p)
			}
			alone, errAlone := Merge(parts)
			if fmt.Sprint(errShared) != fmt.Sprint(errAlone) {
				t.Fatalf("errors differ:\nshared: %v\nalone:  %v", errShared, errAlone)
			}
			if diff := cmp.Diff(alone, shared, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("specs differ (-alone +shared):\n%s", diff)
			}
			if name == "good" && (errShared != nil || len(shared.Balancers) != 6) {
				t.Errorf("%v, %d balancers; want 6", errShared, len(shared.Balancers))
			}
			if name != "good" && errShared == nil {
				t.Error("no error")
			}
		})
	}
}
