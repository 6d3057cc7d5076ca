package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A saved plan is input, not code: an edited plan file that would make
// apply run something the spec could not have said is refused by
// LoadPlan, before any connection, and nothing runs on the host.
func TestLoadPlanRefusesEditedPlans(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	p := th.plan("rev1", testConfig(18080, 10), "203.0.113.10")
	var saved bytes.Buffer
	if err := p.Save(&saved); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlan(bytes.NewReader(saved.Bytes())); err != nil {
		t.Fatalf("the plan as saved: %v", err)
	}
	pwned := filepath.Join(th.dir, "pwned")
	for _, tc := range []struct {
		name string
		edit func(d map[string]any, host map[string]any)
		want string
	}{
		{"ip command", func(d, h map[string]any) { h["ip"] = "touch " + pwned + "; ip" }, "host.ip: invalid value"},
		{"reload with $() and a newline", func(d, h map[string]any) { h["reload"] = "$(touch " + pwned + ")\ntrue" }, `haproxy.reload: `},
		{"check", func(d, h map[string]any) { h["check"] = "touch " + pwned + " #" }, `haproxy.check: `},
		{"keepalived reload", func(d, h map[string]any) { h["keepalivedReload"] = "`touch " + pwned + "`" }, `keepalived.reload: `},
		{"state dir", func(d, h map[string]any) { h["stateDir"] = "/x' ; touch " + pwned + " ; '" }, `stateDir: `},
		{"config path", func(d, h map[string]any) { h["config"] = "etc/haproxy.cfg" }, `haproxy.config: `},
		{"address", func(d, h map[string]any) { h["address"] = "-oProxyCommand=touch"; d["address"] = h["address"] }, `address: `},
		{"user", func(d, h map[string]any) { h["user"] = "root -oX" }, `ssh.user: `},
		{"device name", func(d, h map[string]any) { d["device"] = "lb-a1\nlua-load /x" }, "name: invalid value"},
		{"vip interface", func(d, h map[string]any) { d["vipsAdd"] = []string{"203.0.113.10/32 dev eth0:x"} }, "vipsAdd: invalid value"},
		{"vip address", func(d, h map[string]any) { d["vipsAdd"] = []string{"203.0.113.10/32;x dev eth0"} }, "vipsAdd: vip"},
		{"config without header", func(d, h map[string]any) {
			d["desired"].(map[string]any)["config"] = "global\n    lua-load /tmp/x.lua\n"
		}, "desired.config: parse header"},
		{"config edited after rendering", func(d, h map[string]any) {
			des := d["desired"].(map[string]any)
			des["config"] = des["config"].(string) + "    lua-load /tmp/x.lua\n"
		}, "desired.config: parse header: content is"},
		{"revision", func(d, h map[string]any) { d["liveRevision"] = "x\x1b[2J" }, "liveRevision"},
		// The header's hash recomputed: the lines themselves are checked.
		{"lua-load, hash recomputed", addLine("global\n", "    lua-load "+pwned+".lua"), `"    lua-load `},
		{"stats socket on TCP, hash recomputed", addLine("global\n", "    stats socket ipv4@0.0.0.0:9999 level admin"), `"    stats socket ipv4@`},
		{"external-check command, hash recomputed", addLine("backend be_web\n", "    external-check command "+pwned), `"    external-check command `},
		{"option external-check, hash recomputed", addLine("backend be_web\n", "    option external-check"), `"    option external-check"`},
		{"server keyword, hash recomputed", addLine("backend be_web\n", "    server x 127.0.0.1:11 weight 1 check ca-file /etc/shadow"), `is not a line lbc renders`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(saved.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			d := m["devices"].([]any)[0].(map[string]any)
			tc.edit(d, d["host"].(map[string]any))
			edited, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			lp, err := LoadPlan(bytes.NewReader(edited))
			if err == nil {
				// Accepted: apply it, as `lbc apply PLANFILE` would.
				r, _ := Apply(context.Background(), lp, th.dial, applyOpts("test"))
				t.Errorf("LoadPlan accepted the edited plan; apply: %+v", r)
				return
			}
			if !strings.Contains(err.Error(), tc.want) || lp != nil {
				t.Fatalf("LoadPlan of an edited plan: error %v, want %q", err, tc.want)
			}
		})
	}
	// What the attacks would have run (applied above when accepted).
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a command from an edited plan ran on the host")
	}
	// And the unedited plan still applies.
	lp, err := LoadPlan(bytes.NewReader(saved.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Apply(context.Background(), lp, th.dial, applyOpts("test"))
	if err != nil || r.Devices[0].Outcome != OutcomeApplied {
		t.Fatalf("apply of the saved plan: %v %+v", err, r)
	}
}

// addLine is an edit of a saved plan that adds line to the desired
// config after the text after, and recomputes the header's content hash,
// as whoever edits a plan file can.
func addLine(after, line string) func(d, h map[string]any) {
	return func(d, h map[string]any) {
		des := d["desired"].(map[string]any)
		cfg := des["config"].(string)
		i := strings.Index(cfg, after) + len(after)
		if i < len(after) {
			panic("no " + after + " in the config")
		}
		des["config"] = rehash(cfg[:i] + line + "\n" + cfg[i:])
	}
}

// rehash recomputes the content hash of an lbc header.
func rehash(file string) string {
	head, body, _ := strings.Cut(file, "\n")
	f := strings.Fields(head)
	sum := sha256.Sum256([]byte(body))
	f[len(f)-1] = "sha256:" + hex.EncodeToString(sum[:])
	return strings.Join(f, " ") + "\n" + body
}
