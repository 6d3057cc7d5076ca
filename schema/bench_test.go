package schema

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeTree writes a spec tree of devices devices (in 10 files) and
// tenants×perTenant balancers, one directory per tenant, as a user would:
// one VIP each from 198.18.0.0/15 (RFC 2544, room for 10k unique VIPs),
// 3 to 5 nodes, an HTTP health monitor.
func writeTree(tb testing.TB, dir string, devices, tenants, perTenant int) {
	tb.Helper()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("cue.mod/module.cue", "module: \"example.com/bench\"\nlanguage: version: \"v0.12.0\"\n")
	zones := []string{"az-a", "az-b", "az-c"}
	var b strings.Builder
	for f := 0; f < 10; f++ {
		b.Reset()
		b.WriteString("package spec\n\n")
		for i := f * devices / 10; i < (f+1)*devices/10; i++ {
			fmt.Fprintf(&b, "devices: \"lb-%04d\": {\n\taddress: \"lb-%04d.example.net\"\n\tzone: %q\n\tcapacity: {balancers: 100, maxconn: 500000}\n\ttags: [\"public\"]\n\tvipNetworks: [\"198.18.0.0/15\"]\n}\n",
				i, i, zones[i%3])
		}
		write(fmt.Sprintf("devices/devices-%d.cue", f), b.String())
	}
	n := 0
	for t := 0; t < tenants; t++ {
		b.Reset()
		b.WriteString("package spec\n\n")
		for i := 0; i < perTenant; i++ {
			vip := 198<<24 | 18<<16 | (n + 1)
			fmt.Fprintf(&b, "balancers: \"t%03d-svc-%03d\": {\n\ttenant: \"t%03d\"\n\tvips: [{address: \"%d.%d.%d.%d\", port: 443}]\n\tnodes: [\n",
				t, i, t, vip>>24, vip>>16&255, vip>>8&255, vip&255)
			for k := 0; k < 3+n%3; k++ {
				fmt.Fprintf(&b, "\t\t{address: \"198.19.%d.%d\", port: 8080, weight: %d, maxconn: 1000},\n", n%250, k+1, 10+k)
			}
			fmt.Fprintf(&b, "\t]\n\thealthMonitor: {type: \"http\", path: \"/healthz\", interval: \"2s\"}\n\tplacement: zones: [%q]\n}\n", zones[n%3])
			n++
		}
		write(fmt.Sprintf("balancers/t%03d/balancers.cue", t), b.String())
	}
}

// TestGeneratedTree loads a small generated tree, and writes the full-size
// one to $LBC_WRITE_TREE when set (to compare with `cue export ./...`).
func TestGeneratedTree(t *testing.T) {
	if out := os.Getenv("LBC_WRITE_TREE"); out != "" {
		writeTree(t, out, 1000, 100, 100)
	}
	dir := t.TempDir()
	writeTree(t, dir, 30, 3, 10)
	spec, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Devices) != 30 || len(spec.Balancers) != 30 {
		t.Fatalf("got %d devices, %d balancers, want 30, 30", len(spec.Devices), len(spec.Balancers))
	}
	b := spec.Balancers["t001-svc-002"]
	if b.Tenant != "t001" || len(b.Nodes) != 3+12%3 || b.HealthMonitor.Path != "/healthz" || b.PosOf("nodes[1].weight").Line == 0 {
		t.Fatalf("unexpected balancer: %+v", b)
	}
}

// BenchmarkLoad loads 1,000 devices and 10,000 balancers in 100 tenant
// directories (BENCH_SMALL=1: a tenth of that).
func BenchmarkLoad(b *testing.B) {
	devices, tenants, per := 1000, 100, 100
	if os.Getenv("BENCH_SMALL") != "" {
		devices, tenants, per = 100, 10, 100
	}
	dir := b.TempDir()
	writeTree(b, dir, devices, tenants, per)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		spec, err := LoadDir(context.Background(), dir)
		if err != nil {
			b.Fatal(err)
		}
		if len(spec.Balancers) != tenants*per {
			b.Fatalf("%d balancers", len(spec.Balancers))
		}
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heapsys-MB")
}
