package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A saved plan's rendered files are input, not code: a plan file whose
// haproxy.cfg or keepalived.conf was edited to carry a directive lbc never
// renders, with its header's content hash recomputed so that the header
// check passes, is refused by `lbc apply PLANFILE` with the line named,
// before any connection (the SSH server sees none); the same plan
// unedited is taken and applied (it connects).
func TestApplyRefusesPlanWithHostileDirectives(t *testing.T) {
	h := newHostileHost(t)
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	if r := h.lbc("plan", "-out", planFile); r.code != 0 && r.code != 2 {
		t.Fatalf("plan: %s", r)
	}
	saved, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, after, line string }{
		{"lua-load", "global\n", "    lua-load /tmp/lbc-pwned.lua"},
		{"stats socket on TCP", "global\n", "    stats socket ipv4@0.0.0.0:9999 level admin"},
		{"external-check command", "\nbackend be_web\n", "    external-check command /tmp/lbc-pwned"},
		{"server with another keyword", "\nbackend be_web\n", "    server x 198.51.100.12:8080 weight 1 check ca-file /etc/shadow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(saved, &m); err != nil {
				t.Fatal(err)
			}
			des := m["devices"].([]any)[0].(map[string]any)["desired"].(map[string]any)
			cfg := des["config"].(string)
			i := strings.Index(cfg, tc.after)
			if i < 0 {
				t.Fatalf("no %q in the planned config:\n%s", tc.after, cfg)
			}
			i += len(tc.after)
			des["config"] = rehash(cfg[:i] + tc.line + "\n" + cfg[i:])
			edited, _ := json.Marshal(m)
			f := filepath.Join(dir, "edited.json")
			if err := os.WriteFile(f, edited, 0o600); err != nil {
				t.Fatal(err)
			}
			before := h.srv.Connections()
			r := runCLI(t, append(append([]string{"apply"}, h.flags...), f)...)
			if r.code != 1 || !strings.Contains(r.stderr, "load plan: ") || !strings.Contains(r.stderr, "is not a line lbc renders") ||
				!strings.Contains(r.stderr, strings.TrimSpace(tc.line)) {
				t.Errorf("apply of a plan with %q: %s", tc.line, r)
			}
			if n := h.srv.Connections() - before; n != 0 {
				t.Errorf("apply of the edited plan connected %d times", n)
			}
		})
	}
	// The plan as saved passes the check and is applied: it connects.
	before := h.srv.Connections()
	r := runCLI(t, append(append([]string{"apply"}, h.flags...), planFile)...)
	if strings.Contains(r.stderr, "load plan") || h.srv.Connections() == before {
		t.Errorf("apply of the saved plan did not connect: %s", r)
	}
}

// rehash recomputes the content hash of an lbc header, as an editor of a
// plan file can.
func rehash(file string) string {
	head, body, _ := strings.Cut(file, "\n")
	f := strings.Fields(head)
	sum := sha256.Sum256([]byte(body))
	f[len(f)-1] = "sha256:" + hex.EncodeToString(sum[:])
	return strings.Join(f, " ") + "\n" + body
}
