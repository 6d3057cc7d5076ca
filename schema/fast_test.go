package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// The validator must model every part of lbc's schema; a part it cannot
// would send every instance touching it to CUE (correct, but slow).
func TestValidatorCoversSchema(t *testing.T) {
	c, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	c.validator.unsupportedParts("#Spec", &parts)
	if len(parts) > 0 {
		t.Errorf("parts of the schema the fast path cannot check:\n%s", strings.Join(parts, "\n"))
	}
	for _, top := range []string{"devices", "balancers"} {
		f := c.validator.fields[top]
		if f == nil || f.node.pattern == nil {
			t.Fatalf("%s: no pattern found in the schema", top)
		}
		if !f.node.allows("lb-a1") || f.node.allows("Lb") || f.node.allows("a b") {
			t.Errorf("%s: pattern admits wrong names", top)
		}
	}
}

// loadBoth loads every instance of fsys through CUE and through the
// default path, and fails when the partials differ. It returns how many
// instances the fast path took, and the default path's spec and error.
func loadBoth(t *testing.T, fsys fs.FS) (fast int, spec *Spec, err error) {
	t.Helper()
	dirs, err := Instances(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var auto []*Partial
	for _, d := range dirs {
		viaCUE, err1 := loadInstance(fsys, d, pathCUE)
		viaAuto, err2 := loadInstance(fsys, d, pathAuto)
		if err1 != nil || err2 != nil {
			if fmt.Sprint(err1) != fmt.Sprint(err2) {
				t.Fatalf("%s: errors differ: CUE %v, auto %v", d, err1, err2)
			}
			return 0, nil, err1
		}
		if diff := cmp.Diff(viaCUE, viaAuto, cmp.AllowUnexported(Partial{}),
			cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s: CUE and default path differ (-CUE +default):\n%s", d, diff)
		}
		if _, err := loadInstance(fsys, d, pathFast); err == nil {
			fast++
			if len(viaCUE.Diagnostics) > 0 {
				// Only schema-valid data takes the fast path; what it
				// reports then comes from the shared Go checks.
				for _, dg := range viaCUE.Diagnostics {
					if strings.HasPrefix(dg.Message, "invalid value") || strings.Contains(dg.Message, "conflicting") {
						t.Errorf("%s: fast path took an instance with schema error %v", d, dg)
					}
				}
			}
		} else if !errors.Is(err, errNotFast) {
			t.Fatalf("%s: fast path: %v", d, err)
		}
		auto = append(auto, viaAuto)
	}
	spec, err = Merge(auto)
	return fast, spec, err
}

// Every case of testdata: both paths decode the same partials, and a tree
// of plain data is decoded by the fast path when CUE finds it valid.
func TestFastPathMatchesCUE(t *testing.T) {
	for _, dir := range []string{"good", "bad"} {
		for _, file := range cases(t, dir) {
			t.Run(dir+"/"+strings.TrimSuffix(file[strings.LastIndex(file, "/")+1:], ".txtar"), func(t *testing.T) {
				_, fsys, _ := readCase(t, file)
				fast, _, _ := loadBoth(t, fsys)
				if dir == "good" && fast == 0 {
					t.Errorf("no instance took the fast path")
				}
			})
		}
	}
}

// Plain data the fast path must take, and data it must leave to CUE
// (because it is not plain data or because CUE rejects it).
func TestFastPathCases(t *testing.T) {
	const dev = `devices: "lb-a1": {address: "192.0.2.11", vipNetworks: ["203.0.113.0/24"]}` + "\n"
	const bal = `balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}` + "\n"
	for _, tc := range []struct {
		name, src string
		fast      bool
	}{
		{"plain", dev + bal, true},
		{"pattern", "balancers: [string]: tenant: \"shop\"\n" + bal, true},
		{"pattern-any", "balancers: [_]: {tenant: \"shop\", maxconn: 10}\n" + bal, true},
		{"pattern-conflict", "balancers: [string]: tenant: \"shop\"\n" + bal + "balancers: web: tenant: \"blog\"\n", false},
		{"repeat-equal", bal + bal + "balancers: web: nodes: [{weight: 3}]\n", true},
		{"list-length", bal + "balancers: web: nodes: [{weight: 3}, {weight: 2}]\n", false},
		{"scheduler", "scheduler: {filters: [\"zone\"], costs: {spread: 0.25, balancers: 2}}\n", true},
		{"int-as-float", "scheduler: costs: spread: 1\n", true},
		{"float-for-int", dev + `devices: "lb-a1": capacity: balancers: 1.0` + "\n", false},
		{"negative", dev + `devices: "lb-a1": capacity: balancers: -1` + "\n", false},
		{"hex", dev + `devices: "lb-a1": capacity: balancers: 0x10` + "\n", false},
		{"raw-string", `devices: "lb-a1": address: #"192.0.2.1"#` + "\n", true},
		{"multiline-string", "devices: \"lb-a1\": address: \"\"\"\n\t192.0.2.1\n\t\"\"\"\n", true},
		{"bytes", `devices: "lb-a1": address: '192.0.2.1'` + "\n", false},
		{"reference", "x: 80\n" + bal, false},
		{"ref-inside", `balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: vips[0].port}]}`, false},
		{"interpolation", `devices: "lb-a1": address: "192.0.2.\(1)"`, false},
		{"optional", `devices: "lb-a1"?: address: "192.0.2.1"`, false},
		{"definition", "#X: 1\n" + dev, false},
		{"hidden", "_x: 1\n" + dev, false},
		{"disjunction", `devices: "lb-a1": address: *"192.0.2.1" | "192.0.2.2"`, false},
		{"unification", `devices: "lb-a1": address: "192.0.2.1" & string`, false},
		{"comprehension", `for x in ["a"] {devices: (x): address: "192.0.2.1"}`, false},
		{"embedding", `devices: {{"lb-a1": address: "192.0.2.1"}}`, false},
		{"let", "let a = \"192.0.2.1\"\n" + `devices: "lb-a1": address: a`, false},
		{"import", "import \"strings\"\n" + dev, false},
		{"attribute", "@if(prod)\n" + dev, false},
		{"field-attribute", `devices: "lb-a1": address: "192.0.2.1" @doc(x)`, true},
		{"null", `devices: "lb-a1": zone: null`, false},
		{"unknown", dev + `devices: "lb-a1": colour: "red"`, false},
		{"bad-name", `devices: "LB": address: "192.0.2.1"`, false},
		{"missing-required", `devices: "lb-a1": zone: "a"`, false},
		{"regex", `devices: "lb-a1": address: "192.0.2.1;x"`, false},
		{"bound", bal + "balancers: web: nodes: [{weight: 300}]\n", false},
		{"wrong-kind", bal + "balancers: web: nodes: [{backup: 1}]\n", false},
		{"string-label", `"string": 1`, false},
		{"ident-string-label", "string: 1\n", false},
		{"top-scalar", "devices: 1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"d/a.cue": {Data: []byte(tc.src)}}
			_, err := loadInstance(fsys, "d", pathFast)
			if got := err == nil; got != tc.fast {
				t.Errorf("fast path taken = %v, want %v (err %v)", got, tc.fast, err)
			}
			loadBoth(t, fsys)
		})
	}
}

// The generated tree's shape (a tenant pattern, devices in one struct)
// takes the fast path, and decodes as CUE does.
func TestFastPathGeneratedTree(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, 30, 3, 10)
	fsys := os.DirFS(dir)
	fast, spec, err := loadBoth(t, fsys)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := Instances(fsys)
	if fast != len(dirs) {
		t.Errorf("fast path took %d of %d instances", fast, len(dirs))
	}
	if len(spec.Balancers) != 30 {
		t.Errorf("%d balancers", len(spec.Balancers))
	}
	if _, err := Load(context.Background(), fsys); err != nil {
		t.Fatal(err)
	}
}

// FuzzFastPath: for any file, the default path (fast when it can) decodes
// the same partial as CUE.
func FuzzFastPath(f *testing.F) {
	f.Add(`balancers: [string]: tenant: "t"` + "\n" + `balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: 8080, weight: 0}, {address: "198.51.100.6", port: 1}]}`)
	f.Add(`devices: "lb-a1": {address: "192.0.2.11", ssh: {user: "x", port: 22, sudo: true}, capacity: {balancers: 1, maxconn: 2}, tags: ["a"], vipNetworks: ["203.0.113.0/24"]}`)
	f.Add(`scheduler: {filters: ["zone", "ha"], costs: {balancers: 2.5, maxconn: 0, spread: 1e1}}`)
	f.Add(`balancers: web: {healthMonitor: {type: "http", path: "/x", expect: 200}, persistence: {type: "cookie", cookie: "S"}, timeouts: connect: "1s", placement: {zones: ["a"], ha: true}}`)
	f.Add(`devices: [_]: {zone: "z", haproxy: {config: "/a/b", reload: "x y", check: "c -f"}}` + "\n" + `devices: "a": address: "h.example"`)
	f.Fuzz(func(t *testing.T, src string) {
		fsys := fstest.MapFS{"d/a.cue": {Data: []byte(src)}}
		viaCUE, err1 := loadInstance(fsys, "d", pathCUE)
		viaAuto, err2 := loadInstance(fsys, "d", pathAuto)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("errors differ: CUE %v, default %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if diff := cmp.Diff(viaCUE, viaAuto, cmp.AllowUnexported(Partial{}),
			cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("CUE and default path differ (-CUE +default):\n%s", diff)
		}
	})
}

// CUE as people write it (definitions imported from the tree's module,
// comprehensions, defaults of their own): every instance is evaluated
// alone and taken by the validator, and decodes as CUE unified with the
// schema decodes it.
func TestEvaluatedPathIdiomatic(t *testing.T) {
	fsys := fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"example.com/x\"\nlanguage: version: \"v0.12.0\"\n")},
		"defs/defs.cue": {Data: []byte(`package defs

#Service: {
	name:     string
	vip:      string
	protocol: *"http" | "tcp"
	ports:    *[80] | [...int]
	nodes: [...{address: string, weight: *1 | int}]
	sticky?: bool
}

#Balancer: {
	S=in:     #Service
	T=tenant: string
	out: {
		tenant:   T
		protocol: S.protocol
		vips: [for p in S.ports {address: S.vip, port: p}]
		nodes: [for n in S.nodes {address: n.address, port: 8080, weight: n.weight}]
		if S.sticky != _|_ {
			persistence: type: "source"
		}
	}
}
`)},
		"devices/devices.cue": {Data: []byte(`package spec

import "list"

_zones: ["az-a", "az-b"]
devices: {
	for k in list.Range(0, 3, 1) for z, zn in _zones
	let i = 2*k + z {
		"lb-\(i)": {address: "192.0.2.\(10+i)", zone: zn, vipNetworks: ["203.0.113.0/24"]}
	}
}
`)},
		"balancers/shop/shop.cue": {Data: []byte(`package spec

import "example.com/x/defs"

_services: [
	{name: "web", vip: "203.0.113.10", nodes: [{address: "198.51.100.1", weight: 3}, {address: "198.51.100.2"}]},
	{name: "db", vip: "203.0.113.11", protocol: "tcp", ports: [5432], sticky: true, nodes: [{address: "198.51.100.3"}]},
]
balancers: {
	for s in _services {
		"shop-\(s.name)": (defs.#Balancer & {in: s, tenant: "shop"}).out
	}
}
`)},
	}
	_, spec, err := loadBoth(t, fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"defs", "devices", "balancers/shop"} {
		if _, err := loadInstance(fsys, d, pathEvaluated); err != nil {
			t.Errorf("%s: not taken by the evaluated path: %v", d, err)
		}
	}
	if len(spec.Devices) != 6 || len(spec.Balancers) != 2 {
		t.Fatalf("%d devices, %d balancers; want 6 and 2", len(spec.Devices), len(spec.Balancers))
	}
	db := spec.Balancers["shop-db"]
	if db.Protocol != "tcp" || db.Persistence == nil || db.HealthMonitor.Type != "tcp" || db.Nodes[0].Weight != 1 {
		t.Errorf("shop-db: %+v", db)
	}
	// A generated entity is placed where the comprehension writes it.
	if p := spec.Balancers["shop-web"].Pos; p.File != "defs/defs.cue" && p.File != "balancers/shop/shop.cue" || p.Line == 1 {
		t.Errorf("shop-web at %v, want the text that produced it", p)
	}
}

// A device two comprehensions make is placed, by the evaluated path, at
// the label of the second (CUE unified with the schema places it at the
// second's value: the paths differ here, both at the user's text).
func TestEvaluatedPathEntityOfTwoFields(t *testing.T) {
	fsys := fstest.MapFS{"d/a.cue": {Data: []byte("for x in [\"a\"] {devices: (x): address: \"192.0.2.1\"}\nfor x in [\"a\"] {devices: (x): zone: \"z\"}\n")}}
	p, err := loadInstance(fsys, "d", pathEvaluated)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Devices["a"].Pos, (Pos{File: "d/a.cue", Line: 2, Col: 26}); got != want {
		t.Errorf("device at %v, want %v", got, want)
	}
}

// A reference to a field the schema adds although the data does not set it
// (a device's tags: [], a balancer's placement) sees it in the evaluated
// path as it does unified with the schema.
func TestEvaluatedPathSeesSchemaFields(t *testing.T) {
	fsys := fstest.MapFS{"d/a.cue": {Data: []byte(`devices: "lb-a1": {address: "192.0.2.11", vipNetworks: ["203.0.113.0/24"]}
balancers: web: {
	vips: [{address: "203.0.113.10", port: 80}]
	nodes: [{address: "198.51.100.5", port: 8080}]
	if devices["lb-a1"].tags != _|_ {tenant: "tagged"}
	if devices["lb-a1"].ssh.port != _|_ {algorithm: "leastconn"}
}
`)}}
	_, spec, err := loadBoth(t, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadInstance(fsys, "d", pathEvaluated); err != nil {
		t.Errorf("not taken by the evaluated path: %v", err)
	}
	if b := spec.Balancers["web"]; b.Tenant != "tagged" || b.Algorithm != "roundrobin" {
		t.Errorf("tenant %q, algorithm %q; want tagged (tags is there) and roundrobin (ssh.port is a default, not there)", b.Tenant, b.Algorithm)
	}
}
