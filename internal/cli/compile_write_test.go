package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
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
	if _, _, err := writeArtifacts(out, res); err != nil {
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
	if _, _, err := writeArtifacts(out, writeTestResult(5)); err != nil {
		t.Fatal(err)
	}
	res := writeTestResult(50)
	// A name Mkdir cannot create (its parent does not exist), in the middle.
	res.Devices["lb-020x/y"] = &compiler.DeviceArtifacts{HAProxyCfg: []byte("x"), VIPsJSON: []byte("[]\n")}
	_, _, err := writeArtifacts(out, res)
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
// byte for byte, writes nothing; any difference (a file edited, added or
// removed by hand, an extra directory, a file where a device's directory
// goes) is repaired by writing or removing only what differs: every other
// file keeps its inode.
func TestWriteArtifactsUnchanged(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res := writeTestResult(20)
	if _, _, err := writeArtifacts(out, res); err != nil {
		t.Fatal(err)
	}
	before := inodes(t, out)
	if _, n, err := writeArtifacts(out, res); err != nil || n != 0 {
		t.Fatalf("rewrite of the same files: %d written, %v; want 0", n, err)
	}
	if d := changedFiles(before, inodes(t, out)); len(d) != 0 {
		t.Errorf("unchanged compile rewrote %v", d)
	}
	for _, c := range []struct {
		name    string
		damage  func()
		touched []string // the files written or removed again
	}{
		{"edited", func() { os.WriteFile(filepath.Join(out, "lb-003", "haproxy.cfg"), []byte("cfg lb-003 \n"), 0o644) }, []string{"lb-003/haproxy.cfg"}},
		{"same size, one byte changed", func() { flipLastByte(t, filepath.Join(out, "lb-007", "haproxy.cfg")) }, []string{"lb-007/haproxy.cfg"}},
		{"appended to", func() { appendByte(t, filepath.Join(out, "lb-008", "haproxy.cfg")) }, []string{"lb-008/haproxy.cfg"}},
		{"extra file", func() { os.WriteFile(filepath.Join(out, "lb-004", "notes"), nil, 0o644) }, []string{"lb-004/notes"}},
		{"removed", func() { os.Remove(filepath.Join(out, "lb-006", "keepalived.conf")) }, []string{"lb-006/keepalived.conf"}},
		{"extra dir", func() { os.Mkdir(filepath.Join(out, "lb-999"), 0o755) }, []string{"lb-999"}},
		{"file as dir", func() {
			os.RemoveAll(filepath.Join(out, "lb-001"))
			os.WriteFile(filepath.Join(out, "lb-001"), nil, 0o644)
		}, []string{"lb-001", "lb-001/haproxy.cfg", "lb-001/vips.json"}},
	} {
		c.damage()
		before := inodes(t, out)
		if _, _, err := writeArtifacts(out, res); err != nil {
			t.Fatal(err)
		}
		after := inodes(t, out)
		if !sameArtifacts(out, res) {
			t.Errorf("%s: OUT does not hold the compiled files after the repair", c.name)
		}
		if d := changedFiles(before, after); strings.Join(d, " ") != strings.Join(c.touched, " ") {
			t.Errorf("%s: files changed %v, want %v", c.name, d, c.touched)
		}
	}
}

// flipLastByte changes the last byte of the file at p, in place.
func flipLastByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("read %s: %d bytes, %v", p, len(b), err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// appendByte adds a byte at the end of the file at p, in place.
func appendByte(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// inodes maps every path under dir (relative, slashes) to its inode.
func inodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// changedFiles lists, sorted, the paths added, removed or replaced (another
// inode) from before to after.
func changedFiles(before, after map[string]uint64) []string {
	var d []string
	for p, i := range after {
		if before[p] != i {
			d = append(d, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			d = append(d, p)
		}
	}
	sort.Strings(d)
	return d
}

// sameArtifacts reports whether dir holds exactly the compiled files of
// res and the marker, byte for byte.
func sameArtifacts(dir string, res *compiler.Result) bool {
	want := map[string]string{outdir.Marker: ""}
	for name, d := range res.Devices {
		for f, b := range d.Files() {
			want[name+"/"+f] = string(b)
		}
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		w, ok := want[filepath.ToSlash(rel)]
		b, _ := os.ReadFile(p)
		if !ok || (rel != outdir.Marker && string(b) != w) {
			return errors.New("differs")
		}
		n++
		return nil
	})
	return err == nil && n == len(want)
}

func sortedNames(res *compiler.Result) []string {
	var names []string
	for n := range res.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
