package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lbc/internal/exitcode"
	"lbc/internal/testkit/testproc"
)

// TestWatchCancel runs lbc watch in process: cancelling its context (what
// SIGINT and SIGTERM do in Main) ends it with exit code 0 and "watch: stopped".
func TestWatchCancel(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"devices/d.cue": `package spec
devices: "lb-a1": {address: "192.0.2.11", zone: "az-a", capacity: {balancers: 10, maxconn: 100000}, vipInterface: "eth0", vipNetworks: ["203.0.113.0/24"]}
`,
		"balancers/web.cue": `package spec
balancers: web: {tenant: "shop", protocol: "http", algorithm: "roundrobin", vips: [{address: "203.0.113.10", port: 80}],
	nodes: [{address: "198.51.100.11", port: 8080}], healthMonitor: {type: "none"}}
`,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testproc.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", dir}, &stdout, &stderr) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "watching ") {
		select {
		case code := <-done:
			t.Fatalf("watch returned %d before watching; stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watching line within 10s; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if want := "watching " + dir + ": 1 devices, 1 balancers (compiled in "; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("stdout = %q, want prefix %q", stdout.String(), want)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitcode.OK {
			t.Errorf("exit code %d after cancel, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still running 10s after cancel")
	}
	if got := stderr.String(); got != "watch: stopped\n" {
		t.Errorf("stderr = %q, want %q", got, "watch: stopped\n")
	}
}
