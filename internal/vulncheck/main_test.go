package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIndex(t *testing.T) {
	mod := t.TempDir()
	osv := filepath.Join(mod, "data", "osv")
	if err := os.MkdirAll(osv, 0o755); err != nil {
		t.Fatal(err)
	}
	entries := map[string]string{
		"GO-2026-0001": `{"id":"GO-2026-0001","modified":"2026-01-02T00:00:00Z","affected":[{"package":{"name":"stdlib"}},{"package":{"name":"toolchain"}}]}`,
		"GO-2026-0002": `{"id":"GO-2026-0002","modified":"2026-03-04T00:00:00Z","affected":[{"package":{"name":"golang.org/x/net"}}]}`,
	}
	for id, e := range entries {
		if err := os.WriteFile(filepath.Join(osv, id+".json"), []byte(e), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, n, err := index(&module{Path: "golang.org/x/vulndb", Version: "v0.0.0-test", Dir: mod}, t.TempDir())
	if err != nil || n != 2 {
		t.Fatalf("index = %d entries, %v", n, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index", "modules.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mods []struct {
		Path  string
		Vulns []struct{ ID string }
	}
	if err := json.Unmarshal(b, &mods); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		for _, v := range m.Vulns {
			got = append(got, m.Path+" "+v.ID)
		}
	}
	if s := strings.Join(got, ", "); s != "golang.org/x/net GO-2026-0002, stdlib GO-2026-0001, toolchain GO-2026-0001" {
		t.Errorf("modules.json: %s", s)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index", "db.json")); string(b) != `{"modified":"2026-03-04T00:00:00Z"}` {
		t.Errorf("db.json: %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ID", "GO-2026-0002.json")); string(b) != entries["GO-2026-0002"] {
		t.Errorf("ID/GO-2026-0002.json: %s", b)
	}
}

// Only called symbols count; a module's fails the check, the standard
// library's does not.
func TestFindings(t *testing.T) {
	stream := `{"config":{"scanner_name":"govulncheck"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Do","receiver":"*Client"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v0.61.0","trace":[{"module":"golang.org/x/net","version":"v0.60.0","package":"golang.org/x/net/html","function":"Parse"}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"golang.org/x/text","version":"v0.43.0","package":"golang.org/x/text/encoding"}]}}
{"finding":{"osv":"GO-4","trace":[{"module":"golang.org/x/oauth2","version":"v0.36.0"}]}}
`
	fs, err := findings(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("findings = %+v, want GO-1 (stdlib) and GO-2 (x/net)", fs)
	}
	if fs[0].id != "GO-1" || fs[0].at != "net/http.Client.Do" || fs[0].fails() {
		t.Errorf("first finding %+v: want GO-1 at net/http.Client.Do, a warning", fs[0])
	}
	if fs[1].id != "GO-2" || fs[1].module != "golang.org/x/net" || !fs[1].fails() {
		t.Errorf("second finding %+v: want GO-2 of golang.org/x/net, failing", fs[1])
	}
}
