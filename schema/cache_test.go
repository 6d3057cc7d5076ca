package schema

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var cmpSpec = cmp.Options{
	cmp.AllowUnexported(Partial{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// fill sets every field reachable from v to a random non-zero value, so
// that a field the cache's codec forgets fails the round trip.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", r.IntN(5)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(r.IntN(1000)) - 10)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float64:
		v.SetFloat(r.Float64())
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(r, v.Elem(), depth+1)
	case reflect.Slice:
		n := 1 + r.IntN(3)
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(r, v.Index(i), depth+1)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 1 + r.IntN(3) {
			k := reflect.New(v.Type().Key()).Elem()
			fill(r, k, depth+1)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(r, e, depth+1)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		switch v.Addr().Interface().(type) {
		case *netip.Addr:
			v.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(256))})))
			return
		case *netip.Prefix:
			v.Set(reflect.ValueOf(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(r.IntN(256))}), r.IntN(129))))
			return
		}
		for i := range v.NumField() {
			f := v.Field(i)
			if !f.CanSet() {
				f = reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem() // rejected, schedulerFields
			}
			fill(r, f, depth+1)
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func TestCacheCodecRoundTrip(t *testing.T) {
	check := func(name string, p *Partial) {
		t.Helper()
		b, err := unseal(seal(encodePartial(p), cacheFormat), cacheFormat)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := decodePartial(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(p, got, cmpSpec); diff != "" {
			t.Errorf("%s: round trip differs (-want +got):\n%s", name, diff)
		}
	}
	// Every field set.
	for i := range 50 {
		p := &Partial{}
		fill(rand.New(rand.NewPCG(uint64(i), 1)), reflect.ValueOf(p).Elem(), 0)
		check(fmt.Sprintf("random %d", i), p)
	}
	// Nil and empty stay apart.
	check("empty", &Partial{Devices: map[string]*Device{}, Files: []string{}, Balancers: map[string]*Balancer{
		"b": {Timeouts: &Timeouts{}, Persistence: &Persistence{}, VIPs: []VIP{}, Placement: Placement{Zones: []string{}}},
		"c": nil,
	}})
	check("zero", &Partial{})
	// What the loader makes of every test case.
	for _, dir := range []string{"good", "bad"} {
		for _, file := range cases(t, dir) {
			_, fsys, _ := readCase(t, file)
			dirs, _ := Instances(fsys)
			for _, d := range dirs {
				p, err := loadInstance(fsys, d, pathAuto)
				if err != nil {
					continue
				}
				check(file+" "+d, p)
			}
		}
	}
}

// A damaged entry is never taken for a result, whatever the damage.
func FuzzCacheDecode(f *testing.F) {
	p := &Partial{}
	fill(rand.New(rand.NewPCG(1, 1)), reflect.ValueOf(p).Elem(), 0)
	f.Add(encodePartial(p))
	f.Add(encodePartial(&Partial{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePartial(b)
		if err == nil {
			// What decodes must encode back to the same bytes.
			if again := encodePartial(p); string(again) != string(b) {
				t.Skip("non-canonical input") // e.g. a string written twice instead of referenced
			}
		}
	})
}

// cacheTree is a spec tree whose two tenants import a definition of the
// tree's module and whose devices do not.
func cacheTree() fstest.MapFS {
	return fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"example.com/x\"\nlanguage: version: \"v0.12.0\"\n")},
		"defs/defs.cue":      {Data: []byte("package defs\n\n#Web: {protocol: \"http\", maxconn: 100, ...}\n")},
		"devices/d.cue":      {Data: []byte(`devices: "lb-a1": {address: "192.0.2.11", vipNetworks: ["203.0.113.0/24"]}` + "\n")},
		"balancers/a/a.cue": {Data: []byte("package spec\n\nimport \"example.com/x/defs\"\n\n" +
			`balancers: web: defs.#Web & {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.5", port: 8080}]}` + "\n")},
		"balancers/b/b.cue": {Data: []byte("package spec\n\nimport \"example.com/x/defs\"\n\n" +
			`balancers: api: defs.#Web & {vips: [{address: "203.0.113.11", port: 80}], nodes: [{address: "198.51.100.6", port: 8080}]}` + "\n")},
	}
}

// loadCounting loads fsys with cache and returns the spec and how many
// instances were evaluated rather than read from the cache.
func loadCounting(t *testing.T, fsys fstest.MapFS, c *Cache) (*Spec, int64) {
	t.Helper()
	before := evaluations.Load()
	spec, err := LoadCached(context.Background(), fsys, c)
	if err != nil {
		t.Fatal(err)
	}
	return spec, evaluations.Load() - before
}

func TestCacheHitsAndInvalidation(t *testing.T) {
	c, err := OpenCache(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fsys := cacheTree()
	want, err := Load(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	cold, n := loadCounting(t, fsys, c)
	if n != 4 {
		t.Errorf("cold: %d instances evaluated, want 4", n)
	}
	warm, n := loadCounting(t, fsys, c)
	if n != 0 {
		t.Errorf("warm: %d instances evaluated, want 0", n)
	}
	for name, got := range map[string]*Spec{"cold": cold, "warm": warm} {
		if diff := cmp.Diff(want, got, cmpSpec); diff != "" {
			t.Errorf("%s: spec differs from an uncached load (-want +got):\n%s", name, diff)
		}
	}

	// A changed imported definition: both tenants that import it are
	// evaluated again and see the change; the devices are not.
	fsys["defs/defs.cue"] = &fstest.MapFile{Data: []byte("package defs\n\n#Web: {protocol: \"http\", maxconn: 200, ...}\n")}
	spec, n := loadCounting(t, fsys, c)
	if n != 3 { // defs itself and the two tenants
		t.Errorf("after the definition changed: %d instances evaluated, want 3", n)
	}
	for _, b := range []string{"web", "api"} {
		if got := spec.Balancers[b].Maxconn; got != 200 {
			t.Errorf("%s: maxconn %d after the definition changed, want 200", b, got)
		}
	}
	// A file added above the imported package, of its package name, is
	// part of it for CUE's loader: it too invalidates.
	fsys["x.cue"] = &fstest.MapFile{Data: []byte("package defs\n")}
	if _, n := loadCounting(t, fsys, c); n != 3 { // the root instance and the two tenants
		t.Errorf("after a file above the definitions was added: %d instances evaluated, want 3", n)
	}
	delete(fsys, "x.cue")

	// One tenant changed: only it is evaluated.
	fsys["balancers/a/a.cue"].Data = append(fsys["balancers/a/a.cue"].Data, []byte("balancers: web: maxconn: 200\n")...)
	if _, n := loadCounting(t, fsys, c); n != 1 {
		t.Errorf("after one tenant changed: %d instances evaluated, want 1", n)
	}
}

// Instances with errors are cached too, and report the same.
func TestCacheKeepsDiagnostics(t *testing.T) {
	c, err := OpenCache(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fsys := cacheTree()
	fsys["devices/d.cue"] = &fstest.MapFile{Data: []byte(`devices: "lb-a1": {address: "192.0.2.11;x", vipNetworks: ["203.0.113.0/24"]}` + "\n")}
	_, want := Load(context.Background(), fsys)
	for i := range 2 {
		_, got := LoadCached(context.Background(), fsys, c)
		if want == nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("load %d: %v, want %v", i, got, want)
		}
	}
}

// A truncated or altered entry is ignored and written again.
func TestCacheDamagedEntry(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCache(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	fsys := cacheTree()
	want, _ := loadCounting(t, fsys, c)
	entries, _ := filepath.Glob(filepath.Join(dir, "instances", "*"))
	if len(entries) != 4 {
		t.Fatalf("%d entries, want 4", len(entries))
	}
	for i, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			b = b[:len(b)/2] // truncated
		case 1:
			b[len(b)-1] ^= 1 // altered payload
		case 2:
			b = nil // empty
		}
		if err := os.WriteFile(e, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, n := loadCounting(t, fsys, c)
	if n != 4 {
		t.Errorf("%d instances evaluated, want all 4 (every entry damaged)", n)
	}
	if diff := cmp.Diff(want, got, cmpSpec); diff != "" {
		t.Errorf("spec differs (-want +got):\n%s", diff)
	}
	if _, n := loadCounting(t, fsys, c); n != 0 {
		t.Errorf("damaged entries not rewritten: %d instances evaluated again", n)
	}
}

// Concurrent loads of one tree into one cache directory: every load gets
// the whole, right result, and no temporary file is left.
func TestCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	fsys := cacheTree()
	want, err := Load(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			c, err := OpenCache(dir, 0) // each run opens the cache itself
			if err != nil {
				errs <- err
				return
			}
			for range 3 {
				got, err := LoadCached(context.Background(), fsys, c)
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(want, got, cmpSpec); diff != "" {
					errs <- fmt.Errorf("load %d differs:\n%s", i, diff)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "instances", ".tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The cache directory stays within its bound, dropping the entries used
// longest ago.
func TestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	fsys := cacheTree()
	c, err := OpenCache(dir, 1) // so small that nothing stays
	if err != nil {
		t.Fatal(err)
	}
	loadCounting(t, fsys, c)
	if entries, _ := filepath.Glob(filepath.Join(dir, "instances", "*")); len(entries) != 0 {
		t.Errorf("%d entries left in a cache bounded to 1 byte", len(entries))
	}
	// Bounded to three entries' worth: the oldest goes.
	c, _ = OpenCache(dir, 0)
	loadCounting(t, fsys, c)
	entries, _ := filepath.Glob(filepath.Join(dir, "instances", "*"))
	var total int64
	old := time.Now().Add(-48 * time.Hour)
	for i, e := range entries {
		st, _ := os.Stat(e)
		total += st.Size()
		if i == 0 {
			os.Chtimes(e, old, old)
		}
	}
	c.maxSize = total - 1
	c.trim()
	after, _ := filepath.Glob(filepath.Join(dir, "instances", "*"))
	if len(after) != len(entries)-1 || (len(after) > 0 && after[0] == entries[0]) {
		t.Errorf("trim to %d bytes left %v of %v; want all but the oldest", c.maxSize, after, entries)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("LBC_CACHE", "/tmp/somewhere")
	if d, err := CacheDir(); err != nil || d != "/tmp/somewhere" {
		t.Errorf("with LBC_CACHE: %q, %v", d, err)
	}
	t.Setenv("LBC_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if d, err := CacheDir(); err != nil || !strings.HasPrefix(d, "/tmp/xdg/") {
		t.Errorf("without LBC_CACHE: %q, %v", d, err)
	}
}

// Limits.LoadInstanceCached (watch's loader) reads and writes the same entries.
func TestLoadInstanceCached(t *testing.T) {
	c, err := OpenCache(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fsys := cacheTree()
	loadCounting(t, fsys, c)
	before := evaluations.Load()
	for _, d := range []string{"balancers/a", "devices"} {
		p, err := DefaultLimits.LoadInstanceCached(fsys, d, c)
		if err != nil || p.Dir != d {
			t.Fatalf("%s: %v", d, err)
		}
	}
	if n := evaluations.Load() - before; n != 0 {
		t.Errorf("%d instances evaluated, want 0 (all cached)", n)
	}
	fsys["balancers/a/a.cue"].Data = append(fsys["balancers/a/a.cue"].Data, []byte("balancers: web: tenant: \"shop\"\n")...)
	p, err := DefaultLimits.LoadInstanceCached(fsys, "balancers/a", c)
	if err != nil || p.Balancers["web"] == nil || p.Balancers["web"].Tenant != "shop" {
		t.Fatalf("after an edit: %v, %+v", err, p)
	}
	if _, n := loadCounting(t, fsys, c); n != 0 {
		t.Errorf("LoadCached after LoadInstanceCached stored the edit: %d evaluated, want 0", n)
	}
}
