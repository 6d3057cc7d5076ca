package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/schema"
)

// With Rules, every http balancer of the plain tree gets that many rules
// and a pool, the tree loads and compiles (haproxy.cfg carries the rules),
// and it is otherwise the tree without them: the compile benchmark
// compares the two.
func TestL7TreeCompiles(t *testing.T) {
	load := func(c Config) *schema.Spec {
		t.Helper()
		files, err := Generate(c, nil)
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
		return spec
	}
	c := small
	c.Rules = 10
	spec, plain := load(c), load(small)
	res, err := compiler.Compile(spec, nil, compiler.Options{})
	if err != nil {
		t.Fatalf("the generated tree does not compile: %v", err)
	}
	http := 0
	for name, b := range spec.Balancers {
		p := plain.Balancers[name]
		if b.Protocol == "http" {
			http++
			if len(b.Rules) != 10 || len(b.Pools) != 1 {
				t.Fatalf("%s: %d rules, %d pools", name, len(b.Rules), len(b.Pools))
			}
		}
		x, y := *b, *p
		x.Rules, x.Pools, x.FieldPos, x.Pos, y.FieldPos, y.Pos = nil, nil, nil, schema.Pos{}, nil, schema.Pos{}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("%s differs from the tree without rules beyond its rules and pools", name)
		}
	}
	rules := 0
	for _, d := range res.Devices {
		rules += strings.Count(string(d.HAProxyCfg), "    # rule 9 of ")
	}
	if http == 0 || rules < http {
		t.Errorf("%d http balancers, %d frontends with a tenth rule", http, rules)
	}
}
