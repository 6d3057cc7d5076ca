package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lbc/compiler"
	"lbc/schema"
)

var small = Config{Devices: 30, Balancers: 250, Tenants: 4, Seed: 1}

func readSchema(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("../../../schema/schema.cue")
	if err != nil {
		t.Fatalf("lbc's schema: %v", err)
	}
	return src
}

func TestGenerateIsDeterministic(t *testing.T) {
	src := readSchema(t)
	a, err := Generate(small, src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(small, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("file counts differ: %d and %d", len(a), len(b))
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two runs with the same seed", p)
		}
	}
	other := small
	other.Seed = 2
	c, err := Generate(other, src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a["lbc/balancers/t000/balancers.cue"], c["lbc/balancers/t000/balancers.cue"]) {
		t.Error("a different seed gave the same balancers")
	}
}

func TestLayout(t *testing.T) {
	files, err := Generate(small, readSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"lbc/cue.mod/module.cue", "lbc/devices/devices.cue", "lbc/balancers/t003/balancers.cue",
		"cue/cue.mod/module.cue", "cue/schema/schema.cue", "cue/devices/zz_schema.cue",
		"cue/balancers/t000/zz_schema.cue", "cue/balancers/t003/balancers.cue",
		"idiomatic/lbc/cue.mod/module.cue", "idiomatic/lbc/defs/defs.cue", "idiomatic/lbc/devices/devices.cue",
		"idiomatic/lbc/balancers/t003/balancers.cue", "idiomatic/cue/schema/schema.cue",
		"idiomatic/cue/balancers/t003/zz_schema.cue", "idiomatic/cue/defs/defs.cue",
	} {
		if _, ok := files[p]; !ok {
			t.Errorf("missing %s", p)
		}
	}
	for p := range files {
		for _, tree := range []string{"", "idiomatic/"} {
			if strings.HasPrefix(p, tree+"lbc/") && strings.Contains(p, "schema") {
				t.Errorf("the lbc variant holds %s: it must be the user's tree", p)
			}
			if strings.HasPrefix(p, tree+"lbc/") {
				peer := tree + "cue/" + strings.TrimPrefix(p, tree+"lbc/")
				if !bytes.Equal(files[p], files[peer]) {
					t.Errorf("%s and %s differ: both variants must hold the same specs", p, peer)
				}
			}
		}
	}
	if _, err := Generate(small, nil); err != nil {
		t.Errorf("without a schema: %v", err)
	}
}

// TestPeerTreeValidates evaluates the cue/ variants of both trees with CUE,
// as `cue export ./...` does, and checks the values a scheduler relies on.
func TestPeerTreeValidates(t *testing.T) {
	files, err := Generate(small, readSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := write(dir, files); err != nil {
		t.Fatal(err)
	}
	for _, tree := range []string{"cue", "idiomatic/cue"} {
		t.Run(tree, func(t *testing.T) { peerTreeValidates(t, filepath.Join(dir, tree)) })
	}
}

func peerTreeValidates(t *testing.T, dir string) {
	insts := load.Instances([]string{"./..."}, &load.Config{Dir: dir})
	ctx := cuecontext.New()
	type vip struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	}
	var spec struct {
		Devices map[string]struct {
			Zone        string   `json:"zone"`
			VIPNetworks []string `json:"vipNetworks"`
			Capacity    struct{ Balancers int }
		} `json:"devices"`
		Balancers map[string]struct {
			Tenant    string `json:"tenant"`
			VIPs      []vip  `json:"vips"`
			Placement struct {
				HA    bool     `json:"ha"`
				Zones []string `json:"zones"`
			} `json:"placement"`
			HealthMonitor struct {
				Method string `json:"method"`
				Type   string `json:"type"`
			} `json:"healthMonitor"`
		} `json:"balancers"`
	}
	n := 0
	for _, inst := range insts {
		if inst.Err != nil {
			t.Fatalf("load %s: %v", inst.Dir, inst.Err)
		}
		v := ctx.BuildInstance(inst)
		if err := v.Validate(cue.Concrete(true)); err != nil {
			t.Fatalf("validate %s: %v", inst.Dir, err)
		}
		b, err := v.MarshalJSON()
		if err != nil {
			t.Fatalf("export %s: %v", inst.Dir, err)
		}
		if err := json.Unmarshal(b, &spec); err != nil { // maps merge across instances
			t.Fatal(err)
		}
		n++
	}
	want := 1 + 1 + small.Tenants // schema, devices, tenants
	if strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "idiomatic") {
		want++ // defs
	}
	if n != want {
		t.Errorf("%d instances, want %d", n, want)
	}
	if len(spec.Devices) != small.Devices || len(spec.Balancers) != small.Balancers {
		t.Fatalf("%d devices and %d balancers, want %d and %d", len(spec.Devices), len(spec.Balancers), small.Devices, small.Balancers)
	}
	var nets []netip.Prefix
	for _, d := range spec.Devices {
		for _, s := range d.VIPNetworks {
			nets = append(nets, netip.MustParsePrefix(s))
		}
	}
	seen := map[vip]string{}
	ha, methods := 0, 0
	for name, b := range spec.Balancers {
		if !strings.HasPrefix(name, b.Tenant+"-") {
			t.Errorf("%s: tenant %q", name, b.Tenant)
		}
		if b.Placement.HA {
			ha++
			if len(b.Placement.Zones) != 2 || b.Placement.Zones[0] == b.Placement.Zones[1] {
				t.Errorf("%s: HA zones %v", name, b.Placement.Zones)
			}
		}
		if b.HealthMonitor.Type == "http" && b.HealthMonitor.Method == "GET" {
			methods++ // the schema's default reached the value: it was applied
		}
		for _, v := range b.VIPs {
			if other, dup := seen[v]; dup {
				t.Errorf("%s and %s share VIP %s:%d", name, other, v.Address, v.Port)
			}
			seen[v] = name
			a := netip.MustParseAddr(v.Address)
			if !netip.MustParsePrefix("198.18.0.0/15").Contains(a) {
				t.Errorf("%s: VIP %s outside the benchmark range", name, a)
			}
			in := false
			for _, p := range nets {
				in = in || p.Contains(a)
			}
			if !in {
				t.Errorf("%s: VIP %s outside every device's vipNetworks", name, a)
			}
		}
	}
	if ha == 0 || methods == 0 {
		t.Errorf("%d HA balancers, %d with the schema's default method: want some of each", ha, methods)
	}
}

// TestPeerTreeRejects checks that the unification files make CUE enforce the
// schema: an unknown field and a bad value must fail as they fail in lbc.
func TestPeerTreeRejects(t *testing.T) {
	files, err := Generate(Config{Devices: 3, Balancers: 2, Tenants: 1, Seed: 1}, readSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown field": `balancers: "x": {bogus: 1, vips: [{address: "198.18.0.200", port: 80}], nodes: [{address: "198.19.0.1", port: 1}]}`,
		"bad name":      `balancers: "X Y": {vips: [{address: "198.18.0.200", port: 80}], nodes: [{address: "198.19.0.1", port: 1}]}`,
		"bad protocol":  `balancers: "x": {protocol: "udp", vips: [{address: "198.18.0.200", port: 80}], nodes: [{address: "198.19.0.1", port: 1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fs := Files{}
			for p, b := range files {
				fs[p] = b
			}
			fs["cue/balancers/t000/bad.cue"] = []byte("package spec\n\n" + bad + "\n")
			if err := write(dir, fs); err != nil {
				t.Fatal(err)
			}
			insts := load.Instances([]string{"./balancers/t000"}, &load.Config{Dir: filepath.Join(dir, "cue")})
			if insts[0].Err != nil {
				t.Fatal(insts[0].Err)
			}
			v := cuecontext.New().BuildInstance(insts[0])
			if err := v.Validate(cue.Concrete(true)); err == nil {
				t.Errorf("CUE accepted %s", bad)
			}
		})
	}
}

// TestLBCTreeLoads loads the lbc/ variant with lbc's own loader: the schema
// and the semantic checks (unique VIPs, VIPs inside some device's networks).
func TestLBCTreeLoads(t *testing.T) {
	files, err := Generate(small, readSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := write(dir, files); err != nil {
		t.Fatal(err)
	}
	spec, err := schema.LoadDir(context.Background(), filepath.Join(dir, "lbc"))
	if err != nil {
		t.Fatalf("lbc rejects the generated tree: %v", err)
	}
	if len(spec.Devices) != small.Devices || len(spec.Balancers) != small.Balancers {
		t.Errorf("%d devices and %d balancers, want %d and %d", len(spec.Devices), len(spec.Balancers), small.Devices, small.Balancers)
	}
	seen := map[string]string{}
	for name, d := range spec.Devices {
		a, err := netip.ParseAddr(d.Address)
		if err != nil || !deviceNet.Contains(a) {
			t.Errorf("device %s: address %q, want an IPv4 address in %s", name, d.Address, deviceNet)
		}
		if other, dup := seen[d.Address]; dup {
			t.Errorf("devices %s and %s share address %s", name, other, d.Address)
		}
		seen[d.Address] = name
	}
	for name, b := range spec.Balancers {
		for _, n := range b.Nodes {
			if !nodeNet.Contains(n.Address) {
				t.Errorf("balancer %s: node %s outside %s", name, n.Address, nodeNet)
			}
		}
	}
}

// TestLBCTreeCompiles compiles the lbc/ variant: every HA VIP must talk
// unicast VRRP between its two device addresses (multicast instances share
// one set of 255 virtual_router_ids, which a large tree runs out of).
func TestLBCTreeCompiles(t *testing.T) {
	files, err := Generate(small, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := write(dir, files); err != nil {
		t.Fatal(err)
	}
	spec, err := schema.LoadDir(context.Background(), filepath.Join(dir, "lbc"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compiler.Compile(spec, nil, compiler.Options{})
	if err != nil {
		t.Fatalf("the generated tree does not compile: %v", err)
	}
	instances := 0
	for name, d := range res.Devices {
		n := bytes.Count(d.Keepalived, []byte("vrrp_instance "))
		instances += n
		if p := bytes.Count(d.Keepalived, []byte("unicast_peer {")); p != n {
			t.Errorf("%s: %d of %d vrrp_instances have a unicast_peer", name, p, n)
		}
	}
	if instances == 0 {
		t.Error("no vrrp_instance: the tree has no HA balancer to check")
	}
}

// The idiomatic tree (definitions, comprehensions) says what the plain tree
// says: lbc loads the same devices and balancers from both.
func TestIdiomaticTreeIsThePlainTree(t *testing.T) {
	files, err := Generate(small, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := write(dir, files); err != nil {
		t.Fatal(err)
	}
	plain, err := schema.LoadDir(context.Background(), filepath.Join(dir, "lbc"))
	if err != nil {
		t.Fatal(err)
	}
	idiomatic, err := schema.LoadDir(context.Background(), filepath.Join(dir, "idiomatic", "lbc"))
	if err != nil {
		t.Fatalf("lbc rejects the idiomatic tree: %v", err)
	}
	noPos := cmp.Options{
		cmpopts.IgnoreFields(schema.Device{}, "Pos", "FieldPos"),
		cmpopts.IgnoreFields(schema.Balancer{}, "Pos", "FieldPos"),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	}
	if diff := cmp.Diff(plain, idiomatic, noPos); diff != "" {
		t.Errorf("the trees differ (-plain +idiomatic):\n%s", diff)
	}
	if len(idiomatic.Balancers) != small.Balancers || len(idiomatic.Devices) != small.Devices {
		t.Errorf("%d devices, %d balancers", len(idiomatic.Devices), len(idiomatic.Balancers))
	}
}
