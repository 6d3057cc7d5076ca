package watch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// harness runs a Watcher on a temporary tree and collects its reports.
type harness struct {
	t       *testing.T
	root    string
	reports chan []string
	done    chan error
	cancel  context.CancelFunc
	w       *Watcher
}

func start(t *testing.T, opts Options, files map[string]string) *harness {
	t.Helper()
	root := t.TempDir()
	h := &harness{t: t, root: root, reports: make(chan []string, 100), done: make(chan error, 1)}
	for name, body := range files {
		h.write(name, body)
	}
	if opts.Debounce == 0 {
		// Long enough that a multi-step save on a loaded machine stays
		// one burst.
		opts.Debounce = 300 * time.Millisecond
	}
	opts.Logf = t.Logf
	w, err := New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- w.Run(ctx, func(ctx context.Context, changed []string) error {
			h.reports <- changed
			return nil
		})
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		h.t.Error("Run did not return within 5 s of cancel")
	}
	h.done <- nil // later calls return at once
}

func (h *harness) path(name string) string { return filepath.Join(h.root, filepath.FromSlash(name)) }

func (h *harness) write(name, body string) {
	h.t.Helper()
	p := h.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) rename(from, to string) {
	h.t.Helper()
	if err := os.Rename(from, to); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := os.RemoveAll(h.path(name)); err != nil {
		h.t.Fatal(err)
	}
}

// expect waits (5 s at most) for the next report and compares it.
func (h *harness) expect(step string, want ...string) {
	h.t.Helper()
	select {
	case got := <-h.reports:
		if !slices.Equal(got, want) {
			h.t.Errorf("%s: reported %q, want %q", step, got, want)
		}
	case <-time.After(5 * time.Second):
		h.t.Fatalf("%s: no report within 5 s (want %q)", step, want)
	}
}

// quiet asserts that nothing is reported for a while (several debounces).
func (h *harness) quiet(step string) {
	h.t.Helper()
	select {
	case got := <-h.reports:
		h.t.Errorf("%s: reported %q, want nothing", step, got)
	case <-time.After(1200 * time.Millisecond):
	}
}

var tree = map[string]string{
	"cue.mod/module.cue":            "module: \"example.com/t\"\n",
	"devices/devices.cue":           "package devices\n",
	"balancers/shop/shop.cue":       "package shop\n",
	"balancers/shop/README.md":      "not a spec\n",
	"balancers/blog/blog.cue":       "package blog\n",
	"balancers/blog/deep/extra.cue": "package deep\n",
	".git/HEAD":                     "ref: refs/heads/main\n",
}

func TestWatcherReportsInstancesOfRealEdits(t *testing.T) {
	h := start(t, Options{}, tree)
	if got, want := h.w.Dirs(), []string{".", "balancers", "balancers/blog", "balancers/blog/deep", "balancers/shop", "cue.mod", "devices"}; !slices.Equal(got, want) {
		t.Fatalf("watched %q, want %q (.git skipped)", got, want)
	}

	h.write("devices/devices.cue", "package devices\n// edited in place\n")
	h.expect("write in place", "devices")

	// Save by rename, as most editors do: temp file, then rename over.
	tmp := h.path("balancers/shop/.shop.cue.tmp.1234")
	if err := os.WriteFile(tmp, []byte("package shop\n// saved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.rename(tmp, h.path("balancers/shop/shop.cue"))
	h.expect("rename over", "balancers/shop")

	// Vim's default save: probe file 4913, backup by rename, new file.
	h.write("balancers/shop/4913", "")
	h.remove("balancers/shop/4913")
	h.rename(h.path("balancers/shop/shop.cue"), h.path("balancers/shop/shop.cue~"))
	h.write("balancers/shop/shop.cue", "package shop\n// vim\n")
	h.remove("balancers/shop/shop.cue~")
	h.expect("vim save", "balancers/shop")

	// A directory made elsewhere, with files in it, moved into the tree.
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "api/v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"api/api.cue", "api/v2/v2.cue"} {
		if err := os.WriteFile(filepath.Join(outside, f), []byte("package x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.rename(filepath.Join(outside, "api"), h.path("balancers/api"))
	h.expect("directory moved in with files", "balancers/api", "balancers/api/v2")
	h.write("balancers/api/v2/v2.cue", "package x\n// now watched\n")
	h.expect("edit in the moved-in subdirectory", "balancers/api/v2")

	// A new directory tree created in place, file written at once.
	h.write("balancers/new/a/b/b.cue", "package b\n")
	h.expect("new nested directory with a file", "balancers/new/a/b")
	h.write("balancers/new/a/b/b.cue", "package b\n// again\n")
	h.expect("edit in the new directory", "balancers/new/a/b")

	h.remove("balancers/shop/shop.cue")
	h.expect("delete a file", "balancers/shop")

	h.remove("balancers/blog")
	h.expect("delete a directory", "balancers/blog", "balancers/blog/deep")

	// Renamed out of the tree: reported, and no longer watched.
	h.rename(h.path("balancers/api"), filepath.Join(outside, "api-gone"))
	h.expect("directory moved out", "balancers/api", "balancers/api/v2")
	if err := os.WriteFile(filepath.Join(outside, "api-gone/v2/v2.cue"), []byte("package x\n// outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.quiet("edit in the moved-out directory")

	h.write("root.cue", "package root\n")
	h.expect("file at the root", ".")

	h.write("cue.mod/module.cue", "module: \"example.com/t2\"\n")
	h.expect("cue.mod edit", "cue.mod")

	for _, name := range []string{
		"devices/.devices.cue.swp", "devices/.devices.cue.swx", "devices/devices.cue~",
		"devices/.#devices.cue", "devices/#devices.cue#", "devices/4913",
		"devices/notes.txt", "balancers/shop/README.md", "devices/_ignored.cue", "devices/.hidden.cue",
		".git/index", ".git/refs/heads/x.cue",
		"cue.mod/.module.cue.swp", "cue.mod/module.cue~", "cue.mod/4913", "cue.mod/.#module.cue",
	} {
		h.write(name, "x")
	}
	h.remove("devices/.devices.cue.swp")
	h.quiet("editor temp files and other non-spec files")

	// A burst across directories is one report.
	for i := range 20 {
		for _, d := range []string{"devices", "balancers/shop", "balancers/new/a/b", "."} {
			h.write(d+"/burst.cue", strings.Repeat("x", i))
		}
	}
	h.expect("burst", ".", "balancers/new/a/b", "balancers/shop", "devices")
	h.quiet("after the burst")
}

func TestWatcherIntervalAndCancel(t *testing.T) {
	h := start(t, Options{Interval: 50 * time.Millisecond}, tree)
	h.expect("interval tick")
	h.expect("second interval tick")

	// Cancel while the callback runs: Run waits for it, then returns.
	root := t.TempDir()
	w, err := New(root, Options{Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan struct{})
	var finished atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(ctx context.Context, _ []string) error {
			close(entered)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond)
			finished.Store(true)
			return ctx.Err()
		})
	}()
	if err := os.WriteFile(filepath.Join(root, "a.cue"), []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("callback not called within 5 s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
		if !finished.Load() {
			t.Error("Run returned before the callback did")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
	}
}

func TestNewRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.cue")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f, Options{}); err == nil {
		t.Error("watching a file succeeded")
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Error("watching a missing directory succeeded")
	}
}
