package cli

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lbc/compiler"
)

// copyFleet copies examples/fleet (devices, three tenants, definitions
// imported from defs/) into a new directory.
func copyFleet(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("..", "..", "examples", "fleet"))); err != nil {
		t.Fatal(err)
	}
	// A host table, so that OUT holds a map file too.
	l7 := `package spec

balancers: "web-l7": {
	vips: [{address: "203.0.113.50", port: 80}]
	nodes: [{address: "198.51.100.90", port: 8080}]
	pools: api: nodes: [{address: "198.51.100.91", port: 9000}]
	hosts: {"api.example.com": "api", "www.example.com": "default"}
}
`
	if err := os.MkdirAll(filepath.Join(dst, "balancers", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "balancers", "web", "l7.cue"), []byte(l7), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// compileTo runs lbc compile DIR -o OUT (extra flags after) in process and
// returns OUT's files and whether the result came from the cache.
func compileTo(t *testing.T, dir, out string, flags ...string) (map[string]string, bool) {
	t.Helper()
	hits := resultHits.Load()
	var stdout, stderr bytes.Buffer
	args := append([]string{"compile", dir, "-o", out, "--no-lock-update"}, flags...)
	if code := Main(args, &stdout, &stderr); code != 0 {
		t.Fatalf("lbc %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return readOut(t, out), resultHits.Load() > hits
}

func readOut(t *testing.T, out string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(out, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCompileResultCache: an unchanged tree's compile is read from the
// cache and writes the same files as a compile without it; a changed
// definition that every tenant imports, a changed tenant file and a
// damaged entry are misses that give what --no-cache gives, and the
// damaged entry is written again.
func TestCompileResultCache(t *testing.T) {
	t.Setenv("LBC_CACHE", t.TempDir())
	dir, tmp := copyFleet(t), t.TempDir()
	out := func(name string) string { return filepath.Join(tmp, name) }

	fresh, hit := compileTo(t, dir, out("a"))
	if hit {
		t.Fatal("first compile: read from an empty cache")
	}
	maps := 0
	for f := range fresh {
		if strings.HasSuffix(f, ".map") {
			maps++
		}
	}
	if maps == 0 {
		t.Fatalf("no map file in OUT: %v", fresh)
	}
	again, hit := compileTo(t, dir, out("b"))
	if !hit {
		t.Fatal("unchanged tree: not read from the cache")
	}
	if diff := cmp.Diff(fresh, again); diff != "" {
		t.Fatalf("cached compile differs (-fresh +cached):\n%s", diff)
	}

	edit := func(file, old, new string) {
		t.Helper()
		p := filepath.Join(dir, file)
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s: no %q (%v)", file, old, err)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Each change is a miss, then a hit, and gives what --no-cache gives.
	changed := func(what string) {
		t.Helper()
		want, _ := compileTo(t, dir, out(what+"-nocache"), "--no-cache")
		if diff := cmp.Diff(fresh, want); diff == "" {
			t.Fatalf("%s: the output did not change", what)
		}
		got, hit := compileTo(t, dir, out(what))
		if hit {
			t.Errorf("%s: read from the cache", what)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: differs from --no-cache (-want +got):\n%s", what, diff)
		}
		if _, hit := compileTo(t, dir, out(what+"-again")); !hit {
			t.Errorf("%s: compiled again, not read from the cache", what)
		}
		fresh = want
	}
	edit("defs/defs.cue", `interval: "2s"`, `interval: "3s"`)
	changed("imported definition")
	edit("balancers/shop/shop.cue", "weight: 20", "weight: 21")
	changed("tenant file")

	entries, _ := filepath.Glob(filepath.Join(os.Getenv("LBC_CACHE"), "results", "*"))
	if len(entries) == 0 {
		t.Fatal("no result entry")
	}
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		os.WriteFile(e, b[:len(b)/2], 0o600)
	}
	got, hit := compileTo(t, dir, out("truncated"))
	if hit {
		t.Error("truncated entry: read from the cache")
	}
	if diff := cmp.Diff(fresh, got); diff != "" {
		t.Errorf("truncated entry: differs (-want +got):\n%s", diff)
	}
	if _, hit := compileTo(t, dir, out("rewritten")); !hit {
		t.Error("truncated entry: not written again")
	}
}

// TestCompileResultCacheConcurrent: compiles of one tree sharing a cache
// at once all succeed with the same files.
func TestCompileResultCacheConcurrent(t *testing.T) {
	t.Setenv("LBC_CACHE", t.TempDir())
	dir, tmp := copyFleet(t), t.TempDir()
	want, _ := compileTo(t, dir, filepath.Join(tmp, "want"), "--no-cache")
	var wg sync.WaitGroup
	outs := make([]map[string]string, 8)
	for i := range outs {
		wg.Go(func() {
			o := filepath.Join(tmp, "out", string(rune('a'+i)))
			var stdout, stderr bytes.Buffer
			if code := Main([]string{"compile", dir, "-o", o, "--no-lock-update"}, &stdout, &stderr); code != 0 {
				t.Errorf("compile %d: exit %d: %s", i, code, stderr.String())
				return
			}
			outs[i] = readOut(t, o)
		})
	}
	wg.Wait()
	for i, got := range outs {
		if diff := cmp.Diff(want, got); got != nil && diff != "" {
			t.Errorf("compile %d differs (-want +got):\n%s", i, diff)
		}
	}
	if _, hit := compileTo(t, dir, filepath.Join(tmp, "after")); !hit {
		t.Error("after the concurrent compiles: not read from the cache")
	}
}

// A damaged payload never decodes, whatever the damage.
func TestDecodeResultDamaged(t *testing.T) {
	res := writeTestResult(5)
	res.Devices["lb-001"].AuxFiles = []compiler.AuxFile{
		{Path: "/etc/haproxy/lbc-hosts-web.map", Kind: compiler.AuxMap, Data: []byte("www.example.com be_web\n")},
		{Path: "/etc/haproxy/certs/web.pem", Kind: compiler.AuxCert, Ref: "web"},
	}
	b := encodeResult(res, 7)
	got, n, err := decodeResult(b)
	if err != nil || n != 7 || len(got.Devices) != 5 {
		t.Fatalf("round trip: %v, %d, %+v", err, n, got)
	}
	for name, d := range res.Devices {
		if diff := cmp.Diff(d.Files(), got.Devices[name].Files()); diff != "" {
			t.Errorf("%s: files differ (-want +got):\n%s", name, diff)
		}
	}
	for i := range len(b) {
		if _, _, err := decodeResult(b[:i]); err == nil {
			t.Errorf("cut at %d of %d: decoded", i, len(b))
		}
	}
}

// TestCompileOneTenantRewritesItsFiles: after a change in one tenant's
// file, a compile into the same OUT writes exactly the files whose bytes
// changed (those of the devices the tenant's balancer is placed on; every
// other file keeps its inode), and OUT then equals a --no-cache compile
// into a new directory, byte for byte.
func TestCompileOneTenantRewritesItsFiles(t *testing.T) {
	t.Setenv("LBC_CACHE", t.TempDir())
	dir, tmp := copyFleet(t), t.TempDir()
	out := filepath.Join(tmp, "out")
	old, _ := compileTo(t, dir, out)
	before := inodes(t, out)

	p := filepath.Join(dir, "balancers", "shop", "shop.cue")
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Contains(b, []byte("weight: 20")) {
		t.Fatalf("%s: no weight: 20 (%v)", p, err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte("weight: 20"), []byte("weight: 21"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := compileTo(t, dir, out)
	want, _ := compileTo(t, dir, filepath.Join(tmp, "nocache"), "--no-cache")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("OUT differs from a --no-cache compile (-want +got):\n%s", diff)
	}
	var differ []string
	for f, s := range got {
		if old[f] != s {
			differ = append(differ, filepath.ToSlash(f))
		}
	}
	sort.Strings(differ)
	if len(differ) == 0 || len(differ) == len(got) {
		t.Fatalf("files whose bytes changed: %v of %d: the edit should change some, not all", differ, len(got))
	}
	if rewritten := changedFiles(before, inodes(t, out)); !slices.Equal(rewritten, differ) {
		t.Errorf("files rewritten %v, want exactly those that changed %v", rewritten, differ)
	}
}
