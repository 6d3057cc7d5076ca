package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/internal/outdir"
)

// markerText is what outdir.Mark writes.
func markerText(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := outdir.Mark(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, outdir.Marker))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeTestResult(n int) *compiler.Result {
	res := &compiler.Result{Devices: map[string]*compiler.DeviceArtifacts{}}
	for i := range n {
		name := fmt.Sprintf("lb-%03d", i)
		d := &compiler.DeviceArtifacts{Device: name,
			HAProxyCfg: []byte("cfg " + name + "\n"), VIPsJSON: []byte("[]\n")}
		if i%3 == 0 {
			d.Keepalived = []byte("ka " + name + "\n")
		}
		res.Devices[name] = d
	}
	return res
}

// TestWriteArtifacts: OUT holds exactly the files of the result (written
// in parallel) and lbc's marker, replacing what it held, and nothing is
// left beside it.
func TestWriteArtifacts(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(filepath.Join(out, "lb-gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "lb-gone", "haproxy.cfg"), []byte("old"), 0o644)
	res := writeTestResult(100)
	if _, err := writeArtifacts(out, res); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{outdir.Marker: markerText(t)}
	for name, d := range res.Devices {
		want[name+"/haproxy.cfg"] = string(d.HAProxyCfg)
		want[name+"/vips.json"] = string(d.VIPsJSON)
		if d.Keepalived != nil {
			want[name+"/keepalived.conf"] = string(d.Keepalived)
		}
	}
	got := map[string]string{}
	filepath.WalkDir(out, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(out, p)
			got[filepath.ToSlash(rel)] = string(b)
		}
		return err
	})
	if len(got) != len(want) {
		t.Errorf("OUT has %d files, want %d", len(got), len(want))
	}
	for f, w := range want {
		if got[f] != w {
			t.Errorf("%s = %q, want %q", f, got[f], w)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("leftovers beside OUT: %v", ents)
	}
}

// TestWriteArtifactsFailureKeepsOut: when one device cannot be written,
// OUT keeps its old content whole and no temporary directory is left.
func TestWriteArtifactsFailureKeepsOut(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	if _, err := writeArtifacts(out, writeTestResult(5)); err != nil {
		t.Fatal(err)
	}
	res := writeTestResult(50)
	// A name Mkdir cannot create (its parent does not exist), in the middle.
	res.Devices["lb-020x/y"] = &compiler.DeviceArtifacts{HAProxyCfg: []byte("x"), VIPsJSON: []byte("[]\n")}
	_, err := writeArtifacts(out, res)
	if err == nil || !strings.Contains(err.Error(), "write lb-020x/y: ") {
		t.Fatalf("err = %v, want the error of lb-020x/y", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 5+1 { // and the marker
		t.Errorf("OUT has %d entries after a failed write, want the old 5 devices and the marker", len(ents))
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("leftovers beside OUT: %v", ents)
	}
}
