package host

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The read returns the bytes of the map files it is asked for (a host
// table is no secret: the plan shows its entries), never those of any
// other auxiliary file: the real script, run by sh on real files.
func TestReadMapContent(t *testing.T) {
	dir := t.TempDir()
	mapPath, pemPath, absent := filepath.Join(dir, "lbc-hosts-web.map"), filepath.Join(dir, "site.pem"), filepath.Join(dir, "lbc-hosts-new.map")
	mapData := []byte("# lbc header\nwww.example.com be_web:blue\n")
	os.WriteFile(mapPath, mapData, 0o644)
	os.WriteFile(pemPath, []byte("-----BEGIN PRIVATE KEY-----\nsecret\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "fake-ip"), []byte("#!/bin/sh\necho '[]'\n"), 0o755)
	h := Host{Config: filepath.Join(dir, "haproxy.cfg"), StateDir: dir, IP: filepath.Join(dir, "fake-ip")}
	out, err := exec.Command("sh", "-c", ReadScript(h, false, []string{mapPath, pemPath, absent})).Output()
	if err != nil {
		t.Fatalf("read script: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("secret")) || bytes.Contains(out, []byte("LS0tLS1CRUdJTiBQUklWQVRF")) {
		t.Fatalf("the read printed the key file:\n%s", out)
	}
	l, err := ParseRead(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(l.FileData) != 1 || !bytes.Equal(l.FileData[mapPath], mapData) {
		t.Errorf("file data %q", l.FileData)
	}
	if l.Files[mapPath] != Fingerprint(mapData) || l.Files[absent] != "" || l.Files[pemPath] == "" {
		t.Errorf("fingerprints %v", l.Files)
	}
	// A content section for a file that is not a map, twice for one map,
	// or cut short is refused.
	s := string(out)
	for name, bad := range map[string]string{
		"not a map": strings.Replace(s, "==lbc content "+mapPath, "==lbc content "+pemPath, 1),
		"twice":     strings.Replace(s, "==lbc addr", "==lbc content "+mapPath+"\nYQo=\n==lbc content end\n==lbc addr", 1),
		"cut short": strings.Replace(s, "==lbc content end\n", "", 1),
	} {
		if _, err := ParseRead([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
