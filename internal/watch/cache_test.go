package watch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
)

// countingLoad records which instances were loaded.
type countingLoad struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
}

func (c *countingLoad) load(_ context.Context, dir string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, dir)
	if c.fail[dir] {
		return "", errors.New("load " + dir + ": broken")
	}
	return "result of " + dir, nil
}

func TestCacheReloadsChangedInstancesAndTheirImporters(t *testing.T) {
	fsys := fstest.MapFS{
		"cue.mod/module.cue":           {Data: []byte("module: \"example.com/t@v0\"\nlanguage: version: \"v0.17.1\"\n")},
		"base/base.cue":                {Data: []byte("package base\n")},
		"defs/defs.cue":                {Data: []byte("package defs\n\nimport \"example.com/t/base\"\n\n#X: base\n")},
		"devices/devices.cue":          {Data: []byte("package spec\n\nimport \"strings\"\n")},
		"balancers/shop/shop.cue":      {Data: []byte("package spec\n\nimport (\n\t\"example.com/t/defs\"\n\t\"strings\"\n)\n")},
		"balancers/blog/blog.cue":      {Data: []byte("package spec\n\nimport d \"example.com/t/defs:defs\"\n")},
		"balancers/blog/.blog.cue.swp": {Data: []byte("import \"example.com/t/devices\"\n")},
	}
	dirs := []string{"balancers/blog", "balancers/shop", "base", "defs", "devices"}
	var c Cache[string]
	ld := &countingLoad{}
	ctx := context.Background()
	step := func(name string, dirs, changed, wantReloaded []string) []string {
		t.Helper()
		ld.calls = nil
		got, reloaded, err := c.Update(ctx, fsys, dirs, changed, ld.load)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		slices.Sort(ld.calls)
		if !slices.Equal(reloaded, wantReloaded) || !slices.Equal(ld.calls, wantReloaded) {
			t.Errorf("%s: reloaded %q (load called for %q), want %q", name, reloaded, ld.calls, wantReloaded)
		}
		if len(got) != len(dirs) {
			t.Fatalf("%s: %d results for %d instances", name, len(got), len(dirs))
		}
		for i, d := range dirs {
			if got[i] != "result of "+d {
				t.Errorf("%s: result %d = %q, want that of %s", name, i, got[i], d)
			}
		}
		return reloaded
	}

	step("first load", dirs, nil, dirs)
	step("nothing changed (interval re-plan)", dirs, nil, nil)
	step("a leaf", dirs, []string{"devices"}, []string{"devices"})
	step("an imported package", dirs, []string{"defs"}, []string{"balancers/blog", "balancers/shop", "defs"})
	step("imported transitively", dirs, []string{"base"}, []string{"balancers/blog", "balancers/shop", "base", "defs"})
	step("cue.mod", dirs, []string{"cue.mod"}, dirs)

	// shop stops importing defs: a defs change no longer reloads it.
	fsys["balancers/shop/shop.cue"] = &fstest.MapFile{Data: []byte("package spec\n")}
	step("shop edited", dirs, []string{"balancers/shop"}, []string{"balancers/shop"})
	step("defs after shop dropped it", dirs, []string{"defs"}, []string{"balancers/blog", "defs"})

	// A new instance is loaded even if no one reported it.
	fsys["balancers/api/api.cue"] = &fstest.MapFile{Data: []byte("package spec\n")}
	dirs2 := append([]string{"balancers/api"}, dirs...)
	step("new instance", dirs2, nil, []string{"balancers/api"})

	// defs deleted: its importers are reloaded (to report the broken import).
	delete(fsys, "defs/defs.cue")
	dirs3 := []string{"balancers/api", "balancers/blog", "balancers/shop", "base", "devices"}
	step("imported package deleted", dirs3, []string{"defs"}, []string{"balancers/blog"})

	// A load error is returned and that instance is retried next time.
	ld.fail = map[string]bool{"devices": true}
	ld.calls = nil
	if _, _, err := c.Update(ctx, fsys, dirs3, []string{"devices"}, ld.load); err == nil {
		t.Fatal("load error not returned")
	}
	ld.fail = nil
	step("retry after error", dirs3, nil, []string{"devices"})

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Update(cctx, fsys, dirs3, []string{"cue.mod"}, ld.load); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled update: %v", err)
	}
	step("after a cancelled update", dirs3, nil, dirs3)
}
