package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
		if i%4 == 0 {
			d.AuxFiles = []compiler.AuxFile{{Path: "/etc/haproxy/lbc-hosts-web.map", Mode: 0o644, Kind: compiler.AuxMap, Data: []byte("map " + name + "\n")},
				{Path: "/etc/haproxy/site.pem", Mode: 0o600, Kind: compiler.AuxCert, Ref: "site"}}
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
		for _, m := range d.AuxFiles {
			if m.Kind == compiler.AuxMap {
				want[name+"/"+filepath.Base(m.Path)] = string(m.Data)
			}
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

// TestWriteArtifactsUnchanged: a compile whose files OUT already holds,
// byte for byte, leaves OUT alone; any difference (a file edited, added or
// removed by hand, an extra directory) and OUT is replaced as usual.
func TestWriteArtifactsUnchanged(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res := writeTestResult(20)
	if _, err := writeArtifacts(out, res); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(out)
	if _, err := writeArtifacts(out, res); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(out); !os.SameFile(before, after) {
		t.Error("OUT replaced although it held the same files")
	}
	for name, damage := range map[string]func(){
		"edited":     func() { os.WriteFile(filepath.Join(out, "lb-003", "haproxy.cfg"), []byte("cfg lb-003 \n"), 0o644) },
		"extra file": func() { os.WriteFile(filepath.Join(out, "lb-004", "notes"), nil, 0o644) },
		"removed":    func() { os.Remove(filepath.Join(out, "lb-006", "keepalived.conf")) },
		"extra dir":  func() { os.Mkdir(filepath.Join(out, "lb-999"), 0o755) },
		"file as dir": func() {
			os.RemoveAll(filepath.Join(out, "lb-001"))
			os.WriteFile(filepath.Join(out, "lb-001"), nil, 0o644)
		},
	} {
		damage()
		before, _ := os.Stat(out)
		if _, err := writeArtifacts(out, res); err != nil {
			t.Fatal(err)
		}
		if after, _ := os.Stat(out); os.SameFile(before, after) {
			t.Errorf("%s: OUT not replaced", name)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "lb-003", "haproxy.cfg")); string(b) != "cfg lb-003\n" {
			t.Errorf("%s: lb-003/haproxy.cfg = %q after the rewrite", name, b)
		}
		if !sameArtifacts(out, sortedNames(res), res) {
			t.Errorf("%s: OUT does not hold the compiled files after the rewrite", name)
		}
	}
}

func sortedNames(res *compiler.Result) []string {
	var names []string
	for n := range res.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
