package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lbc/internal/testkit/testproc"
)

// The watch tests run lbc as a real process (this test binary with
// LBC_TEST_MAIN=1, see TestMain), make real edits to a spec tree and read
// what lbc watch prints. Every wait is bounded by waitTimeout; the process
// is killed at the end whatever happens.

const waitTimeout = 10 * time.Second

const watchDevices = `package spec

devices: "lb-a1": {
	address:  "192.0.2.11"
	zone:     "az-a"
	capacity: {balancers: 10, maxconn: 100000}
	vipInterface: "eth0"
	vipNetworks: ["203.0.113.0/24"]
}
devices: "lb-b1": {
	address:  "192.0.2.12"
	zone:     "az-b"
	capacity: {balancers: 10, maxconn: 100000}
	vipInterface: "eth0"
	vipNetworks: ["203.0.113.0/24"]
}
`

// balancerCUE is one balancer pinned to device, with one node of weight.
func balancerCUE(name, vip, device string, weight int) string {
	return fmt.Sprintf(`package spec

balancers: %q: {
	tenant:    "shop"
	protocol:  "http"
	algorithm: "roundrobin"
	vips: [{address: %q, port: 80}]
	nodes: [{address: "198.51.100.11", port: 8080, weight: %d}]
	healthMonitor: {type: "tcp", interval: "2s", timeout: "1s", rise: 2, fall: 3}
	placement: device: %q
}
`, name, vip, weight, device)
}

// startWatch runs `lbc args...` in dir. The process lives at most a minute.
func startWatch(t *testing.T, dir string, args ...string) *testproc.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return testproc.Start(t, dir, time.Minute, waitTimeout, []string{"LBC_TEST_MAIN=1", "NO_COLOR=1"}, exe, args...)
}

// stopWatch sends sig and checks for a clean exit with "watch: stopped".
func stopWatch(t *testing.T, p *testproc.Proc, sig os.Signal) {
	t.Helper()
	if err := p.Stop(sig); err != nil {
		t.Errorf("lbc watch after %v: %v, want exit 0", sig, err)
	}
	if !strings.Contains(p.Stderr(), "watch: stopped\n") {
		t.Errorf("stderr lacks \"watch: stopped\":\n%s", p.Stderr())
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkFile checks that the file at path contains (or, with want false,
// lacks) substr. lbc watch writes OUT before it prints its line, so once
// the line is read the file must be there, without waiting.
func checkFile(t *testing.T, path, substr string, want bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || strings.Contains(string(b), substr) != want {
		t.Fatalf("%s: want contains %q = %v once the line is printed; read: %v\n%s", path, substr, want, err, b)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newWatchTree writes a tree: devices/, balancers/shop/{web,api}.cue.
func newWatchTree(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "specs/devices/devices.cue"), watchDevices)
	writeFile(t, filepath.Join(dir, "specs/balancers/shop/web.cue"), balancerCUE("web", "203.0.113.10", "lb-a1", 9))
	writeFile(t, filepath.Join(dir, "specs/balancers/shop/api.cue"), balancerCUE("api", "203.0.113.11", "lb-b1", 3))
	return dir
}

const changedLine = `^\d\d:\d\d:\d\d\.\d{3} change in %s: %d file\(s\) changed \(reloaded \d+ instance\(s\), compiled in \d+ ms\)\n`

func TestWatchEdits(t *testing.T) {
	dir := newWatchTree(t)
	specs := filepath.Join(dir, "specs")
	web := filepath.Join(specs, "balancers/shop/web.cue")
	outA1 := filepath.Join(dir, "out/lb-a1/haproxy.cfg")

	p := startWatch(t, dir, "watch", "specs", "-o", "out")
	p.WaitFor(`^watching specs: 2 devices, 2 balancers \(compiled in \d+ ms\)\n`)
	checkFile(t, outA1, " weight 9 check\n", true)

	t.Log("write in place: weight 9 → 8")
	writeFile(t, web, balancerCUE("web", "203.0.113.10", "lb-a1", 8))
	p.WaitFor(fmt.Sprintf(changedLine, "balancers/shop", 1),
		`^--- old/lb-a1/haproxy.cfg\n\+\+\+ new/lb-a1/haproxy.cfg\n`,
		`^-    server 198.51.100.11_8080 198.51.100.11:8080 weight 9 check\n`,
		`^\+    server 198.51.100.11_8080 198.51.100.11:8080 weight 8 check\n`)
	checkFile(t, outA1, " weight 8 check\n", true)

	t.Log("save by rename: write a temporary file, rename it over web.cue")
	tmp := filepath.Join(specs, "balancers/shop/web.cue.tmp-save")
	writeFile(t, tmp, balancerCUE("web", "203.0.113.10", "lb-a1", 7))
	if err := os.Rename(tmp, web); err != nil {
		t.Fatal(err)
	}
	chunk := p.WaitFor(fmt.Sprintf(changedLine, "balancers/shop", 1),
		`^-    server 198.51.100.11_8080 198.51.100.11:8080 weight 8 check\n`,
		`^\+    server 198.51.100.11_8080 198.51.100.11:8080 weight 7 check\n`)
	if strings.Contains(chunk, "lb-b1") {
		t.Errorf("an edit of web (on lb-a1) changed lb-b1:\n%s", chunk)
	}

	t.Log("a new tenant directory with a balancer")
	writeFile(t, filepath.Join(specs, "balancers/blog/blog.cue"), balancerCUE("blog", "203.0.113.40", "lb-b1", 4))
	p.WaitFor(fmt.Sprintf(changedLine, "balancers/blog", 2),
		`^--- old/lb-b1/haproxy.cfg\n`,
		`^\+frontend fe_blog_203.0.113.40_80\n`,
		`^\+backend be_blog\n`,
		`^--- old/lb-b1/vips.json\n`,
		`^\+.*"address":"203.0.113.40"`)
	checkFile(t, filepath.Join(dir, "out/lb-b1/haproxy.cfg"), "backend be_blog\n", true)

	t.Log("a second edit in the new directory: it is watched")
	writeFile(t, filepath.Join(specs, "balancers/blog/blog.cue"), balancerCUE("blog", "203.0.113.40", "lb-b1", 6))
	p.WaitFor(fmt.Sprintf(changedLine, "balancers/blog", 1),
		`^\+    server 198.51.100.11_8080 198.51.100.11:8080 weight 6 check\n`)

	t.Log("delete a file")
	if err := os.Remove(filepath.Join(specs, "balancers/shop/api.cue")); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(fmt.Sprintf(changedLine, "balancers/shop", 2),
		`^-frontend fe_api_203.0.113.11_80\n`,
		`^-backend be_api\n`)
	checkFile(t, filepath.Join(dir, "out/lb-b1/haproxy.cfg"), "be_api", false)

	t.Log("an invalid edit: the error with its place, the last good result kept")
	checkFile(t, outA1, " weight 7 check\n", true)
	before := readFile(t, outA1)
	writeFile(t, web, balancerCUE("web", "203.0.113.10", "lb-a1", 999))
	p.WaitFor(`^\d\d:\d\d:\d\d\.\d{3} invalid specs: keeping the last good result\n`,
		`^specs/balancers/shop/web.cue:8:\d+: balancers\.web\.nodes\[0\]\.weight: invalid value 999: must be <= 256\n`)
	if got := readFile(t, outA1); got != before {
		t.Errorf("out/lb-a1/haproxy.cfg changed by an invalid edit:\n%s", got)
	}

	t.Log("a syntax error, then the fix")
	writeFile(t, web, "package spec\n\nbalancers: {\n")
	p.WaitFor(`invalid specs: keeping the last good result\n`, `^specs/balancers/shop/web.cue:\d+:\d+: `)
	writeFile(t, web, balancerCUE("web", "203.0.113.10", "lb-a1", 5))
	chunk = p.WaitFor(fmt.Sprintf(changedLine, "balancers/shop", 1),
		`^-    server 198.51.100.11_8080 198.51.100.11:8080 weight 7 check\n`,
		`^\+    server 198.51.100.11_8080 198.51.100.11:8080 weight 5 check\n`)
	if strings.Contains(chunk, "invalid") {
		t.Errorf("recovery printed an error:\n%s", chunk)
	}
	checkFile(t, outA1, " weight 5 check\n", true)

	stopWatch(t, p, os.Interrupt)
	if rest := p.Rest(); rest != "" {
		t.Errorf("unexpected output at the end:\n%s", rest)
	}
}

// TestWatchExistingOut: watch -o into an OUT that an earlier run left
// behind prints the watching line (not a diff against OUT), and brings OUT
// up to date before it prints it: files changed since, devices gone.
func TestWatchExistingOut(t *testing.T) {
	dir := newWatchTree(t)
	outA1 := filepath.Join(dir, "out/lb-a1/haproxy.cfg")
	p := startWatch(t, dir, "watch", "specs", "-o", "out")
	p.WaitFor(`^watching specs: 2 devices, 2 balancers \(compiled in \d+ ms\)\n`)
	checkFile(t, outA1, " weight 9 check\n", true)
	stopWatch(t, p, os.Interrupt)

	writeFile(t, filepath.Join(dir, "specs/balancers/shop/web.cue"), balancerCUE("web", "203.0.113.10", "lb-a1", 4))
	writeFile(t, filepath.Join(dir, "out/lb-gone/haproxy.cfg"), "# a device no longer in the specs\n")
	p = startWatch(t, dir, "watch", "specs", "-o", "out")
	chunk := p.WaitFor(`^watching specs: 2 devices, 2 balancers \(compiled in \d+ ms\)\n`)
	if !strings.HasPrefix(chunk, "watching ") {
		t.Errorf("printed before the watching line:\n%s", chunk)
	}
	checkFile(t, outA1, " weight 4 check\n", true)
	if _, err := os.Stat(filepath.Join(dir, "out/lb-gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("out/lb-gone still there (stat: %v)", err)
	}
	stopWatch(t, p, os.Interrupt)
	if rest := p.Rest(); rest != "" {
		t.Errorf("unexpected output:\n%s", rest)
	}
}

// TestWatchSignals: SIGTERM and SIGINT both stop lbc watch cleanly (exit 0,
// "watch: stopped"), also while the specs are invalid.
func TestWatchSignals(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := newWatchTree(t)
			p := startWatch(t, dir, "watch", "specs")
			p.WaitFor(`^watching specs: 2 devices, 2 balancers`)
			writeFile(t, filepath.Join(dir, "specs/balancers/shop/web.cue"), "package spec\nbalancers: web: 1\n")
			p.WaitFor(`invalid specs: keeping the last good result\n`)
			stopWatch(t, p, sig)
		})
	}
}

// TestWatchInvalidAtStart: specs invalid from the start print their errors
// and keep watching; the first good version is then the baseline.
func TestWatchInvalidAtStart(t *testing.T) {
	dir := newWatchTree(t)
	web := filepath.Join(dir, "specs/balancers/shop/web.cue")
	writeFile(t, web, balancerCUE("web", "203.0.113.10", "lb-zz", 9))
	p := startWatch(t, dir, "watch", "specs", "-o", "out")
	p.WaitFor(`invalid specs: keeping the last good result\n`,
		`^specs/balancers/shop/web.cue:10:\d+: balancers\.web\.placement\.device: unknown device "lb-zz"\n`)
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("out written from invalid specs (stat: %v)", err)
	}
	writeFile(t, web, balancerCUE("web", "203.0.113.10", "lb-a1", 9))
	p.WaitFor(`^watching specs: 2 devices, 2 balancers`)
	checkFile(t, filepath.Join(dir, "out/lb-a1/haproxy.cfg"), "backend be_web\n", true)
	stopWatch(t, p, syscall.SIGTERM)
}
