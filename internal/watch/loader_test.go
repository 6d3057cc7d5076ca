package watch

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lbc/schema"
)

// copyTree copies a directory tree (the examples) into a temporary one.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestLoaderMatchesAFullLoad(t *testing.T) {
	root := copyTree(t, "../../examples/fleet")
	ctx := context.Background()
	l := NewLoader(root)
	check := func(step string, changed, wantReloaded []string) *schema.Spec {
		t.Helper()
		got, err := l.Load(ctx, changed)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !slices.Equal(l.Reloaded, wantReloaded) {
			t.Errorf("%s: reloaded %q, want %q", step, l.Reloaded, wantReloaded)
		}
		full, err := schema.LoadDir(ctx, root)
		if err != nil {
			t.Fatalf("%s: full load: %v", step, err)
		}
		if d := cmp.Diff(full, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
			t.Errorf("%s: incremental load differs from a full load (-full +incremental):\n%s", step, d)
		}
		return got
	}
	all, err := schema.Instances(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	spec := check("first load", nil, all)
	n := len(spec.Balancers)
	check("no change", nil, nil)

	// Add a balancer to the blog tenant.
	blog := filepath.Join(root, "balancers/blog/blog.cue")
	src, err := os.ReadFile(blog)
	if err != nil {
		t.Fatal(err)
	}
	extra := "\nbalancers: \"blog-extra\": {\n\tprotocol: \"tcp\"\n\talgorithm: \"roundrobin\"\n" +
		"\tvips: [{address: \"203.0.113.250\", port: 7000}]\n\tnodes: [{address: \"198.51.100.99\", port: 7000}]\n" +
		"\thealthMonitor: {type: \"tcp\"}\n}\n"
	if err := os.WriteFile(blog, append(src, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	spec = check("balancer added", []string{"balancers/blog"}, []string{"balancers/blog"})
	if len(spec.Balancers) != n+1 || spec.Balancers["blog-extra"] == nil {
		t.Errorf("balancer added: %d balancers, blog-extra %v", len(spec.Balancers), spec.Balancers["blog-extra"])
	}

	// Break it: the error comes back, with the file named.
	if err := os.WriteFile(blog, append(src, "\nbalancers: \"blog-web\": algorithm: \"nope\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = l.Load(ctx, []string{"balancers/blog"})
	var ds schema.Diagnostics
	if !errors.As(err, &ds) || !strings.Contains(err.Error(), "balancers/blog/blog.cue") {
		t.Errorf("broken spec: %v, want diagnostics naming the file", err)
	}

	// Fix it; a change of the shared defs reloads every importer.
	if err := os.WriteFile(blog, src, 0o644); err != nil {
		t.Fatal(err)
	}
	check("fixed", []string{"balancers/blog"}, []string{"balancers/blog"})
	var importers []string
	for _, d := range all {
		b, _ := os.ReadFile(filepath.Join(root, d, filepath.Base(d)+".cue"))
		if strings.Contains(string(b), "example.com/fleet/defs") {
			importers = append(importers, d)
		}
	}
	if len(importers) == 0 {
		t.Fatal("no instance of examples/fleet imports defs; the test needs one")
	}
	want := append(importers, "defs")
	slices.Sort(want)
	// A stale importer would now differ from the full load.
	defs := filepath.Join(root, "defs/defs.cue")
	b, err := os.ReadFile(defs)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "fall:     3", "fall:     4", 1)
	if edited == string(b) {
		t.Fatal("examples/fleet/defs/defs.cue no longer has \"fall:     3\"; update the test")
	}
	if err := os.WriteFile(defs, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	check("defs changed", []string{"defs"}, want)
	check("cue.mod changed", []string{"cue.mod"}, all)
}
