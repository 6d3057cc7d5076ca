package host

import (
	"strings"
	"testing"
)

// TestCheckConfigReplacesWholePaths: the check's copy names the staged
// file wherever the config names a changed file as a whole path, and
// nowhere else (a longer path that starts with it, a path that ends with
// it, a file that does not change).
func TestCheckConfigReplacesWholePaths(t *testing.T) {
	cfg := "bind :443 ssl crt /c/a.pem crt /c/a.pem.bak crt /x/c/a.pem crt /c/b.pem\n" +
		"http-request set-var(txn.x) req.hdr(host),map(/m/h.map,none)\nuse_backend %[req.hdr(host),map(/m/h.map)]\n"
	got := checkConfig(cfg, []AuxFile{{Path: "/c/a.pem"}, {Path: "/m/h.map"}})
	want := "bind :443 ssl crt /c/a.pem.lbc-new crt /c/a.pem.bak crt /x/c/a.pem crt /c/b.pem\n" +
		"http-request set-var(txn.x) req.hdr(host),map(/m/h.map.lbc-new,none)\nuse_backend %[req.hdr(host),map(/m/h.map.lbc-new)]\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestParseReadFiles reads the auxiliary files' fingerprints and refuses
// a line that is not one.
func TestParseReadFiles(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	out := "==lbc config absent\n==lbc state absent\n==lbc file /c/a.pem " + sum + "\n==lbc file /c/b.pem absent\n==lbc addr\n[]\n"
	l, err := ParseRead([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Files) != 2 || l.Files["/c/a.pem"] != sum || l.Files["/c/b.pem"] != "" {
		t.Errorf("files %v", l.Files)
	}
	for _, bad := range []string{"==lbc file /c/a.pem -----BEGIN", "==lbc file relative " + sum, "==lbc file /c/a.pem"} {
		if _, err := ParseRead([]byte(strings.Replace(out, "==lbc file /c/b.pem absent", bad, 1))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
