package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLoaderLargeTree measures a one-file edit against a full load on a
// generated tree (go run ./internal/gen -out DIR -schema ""; then
// LBC_GEN_TREE=DIR/lbc). Skipped when the variable is unset.
func TestLoaderLargeTree(t *testing.T) {
	root := os.Getenv("LBC_GEN_TREE")
	if root == "" {
		t.Skip("LBC_GEN_TREE not set (a tree from internal/gen)")
	}
	ctx := context.Background()
	l := NewLoader(root)
	start := time.Now()
	spec, err := l.Load(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	t.Logf("first load: %d instances, %d devices, %d balancers in %v", len(l.Reloaded), len(spec.Devices), len(spec.Balancers), full)

	f := filepath.Join(root, "balancers/t042/balancers.cue")
	src, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(f, src, 0o644)
	for i := range 3 {
		if err := os.WriteFile(f, append(src, []byte("\n// edit "+string(rune('a'+i))+"\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := l.Load(ctx, []string{"balancers/t042"}); err != nil {
			t.Fatal(err)
		}
		t.Logf("one-file edit: reloaded %q in %v", l.Reloaded, time.Since(start))
	}
}
