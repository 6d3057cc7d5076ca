package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"lbc/internal/testkit/sshtest"
)

// What a compromised host returns must not drive the operator's terminal:
// these tests serve hostile data from the in-process SSH server (a live
// config line, state.json fields, the lock owner, stderr) and a hostile
// spec file name, run the CLI, and check that no control character reaches
// the text output raw, while it is shown escaped (and JSON keeps it).

// esc is a terminal attack: set the window title, clear the screen.
const esc = "\x1b]0;pwned\x07\x1b[2J"

// escShown is esc as the text views show it.
const escShown = `\x1b]0;pwned\x07\x1b[2J`

// hostileHost is one device served by an in-process SSH server, its spec
// tree, and the flags that reach it.
type hostileHost struct {
	t     *testing.T
	dir   string // the host's files: etc/haproxy.cfg, state/
	specs string
	flags []string
	hook  atomic.Pointer[func(cmd string) sshtest.Fault]
	srv   *sshtest.Server
}

func newHostileHost(t *testing.T) *hostileHost {
	h := &hostileHost{t: t, dir: t.TempDir(), specs: t.TempDir()}
	srv := sshtest.Start(t, sshtest.Options{Hook: func(cmd string) sshtest.Fault {
		if f := h.hook.Load(); f != nil {
			return (*f)(cmd)
		}
		return sshtest.NoFault
	}})
	for _, d := range []string{"etc", "state"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dev := srv.Device("lb-a1")
	h.write(filepath.Join(h.specs, "devices", "d.cue"), fmt.Sprintf(`package spec
devices: "lb-a1": {
	address: %q
	ssh: {user: %q, port: %d}
	zone: "az-a"
	capacity: {balancers: 10, maxconn: 100000}
	vipInterface: "eth0"
	vipNetworks: ["203.0.113.0/24"]
	haproxy: {config: %q, reload: "true", check: "true"}
	stateDir: %q
}
`, dev.Address, dev.SSH.User, dev.SSH.Port, filepath.Join(h.dir, "etc", "haproxy.cfg"), filepath.Join(h.dir, "state")))
	h.write(filepath.Join(h.specs, "balancers", "web.cue"), `package spec
balancers: web: {tenant: "shop", protocol: "http", algorithm: "roundrobin", vips: [{address: "203.0.113.10", port: 80}],
	nodes: [{address: "198.51.100.11", port: 8080}], healthMonitor: {type: "none"}}
`)
	h.flags = []string{"--known-hosts", srv.KnownHostsFile(), "--ssh-key", srv.KeyFile()}
	h.srv = srv
	return h
}

func (h *hostileHost) write(path, data string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostileHost) setHook(f func(cmd string) sshtest.Fault) { h.hook.Store(&f) }

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the CLI in process, its output captured as a pipe would.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(context.Background(), args, &out, &errs)
	return cliResult{code, out.String(), errs.String()}
}

// lbc runs cmd against the host's spec tree.
func (h *hostileHost) lbc(cmd string, extra ...string) cliResult {
	h.t.Helper()
	return runCLI(h.t, append(append(append([]string{cmd}, h.flags...), extra...), h.specs)...)
}

// noRawControl fails when the text output holds a control character other
// than newline and tab, and when it does not show want.
func noRawControl(t *testing.T, what string, r cliResult, want string) {
	t.Helper()
	for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		for _, c := range s {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c >= 0x80 && c < 0xa0 {
				t.Errorf("%s: %s holds a raw control character %q:\n%s", what, name, c, r)
				break
			}
		}
	}
	if !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("%s: output does not show %q:\n%s", what, want, r)
	}
}

// A live haproxy.cfg line with escape sequences: the plan's diff shows it
// escaped. It is lbc's own rendering with one line added by hand, as on a
// host edited by hand or by an attacker.
func TestHostileLiveConfigLine(t *testing.T) {
	h := newHostileHost(t)
	out := t.TempDir()
	if r := runCLI(t, "compile", "--no-lock-update", "-o", out, h.specs); r.code != 0 {
		t.Fatalf("compile: %s", r)
	}
	cfg, err := os.ReadFile(filepath.Join(out, "lb-a1", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	header, rest, _ := strings.Cut(string(cfg), "\n")
	h.write(filepath.Join(h.dir, "etc", "haproxy.cfg"), header+"\n# note "+esc+"\tend\n"+rest)
	r := h.lbc("plan")
	noRawControl(t, "plan", r, "-# note "+escShown+"\tend")
	r = h.lbc("plan", "--markdown")
	noRawControl(t, "plan --markdown", r, "-# note "+escShown)
	// JSON is unchanged: it escapes control characters itself.
	r = h.lbc("plan", "--json")
	var d struct {
		ConfigDiff string `json:"configDiff"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &d); err != nil || !strings.Contains(d.ConfigDiff, "-# note "+esc+"\tend\n") {
		t.Errorf("plan --json: %v, diff %q", err, d.ConfigDiff)
	}
}

// state.json fields with escape sequences: status shows them escaped.
func TestHostileStateFields(t *testing.T) {
	h := newHostileHost(t)
	st := map[string]any{"revision": "0123abc" + esc, "appliedAt": "2025-01-02T03:04:05Z", "lbcVersion": "v1" + esc,
		"configSHA256": "x", "vips": []string{"203.0.113.10/32 dev eth0" + esc},
		"history": []map[string]any{{"revision": "r" + esc, "time": "2025-01-02T03:04:05Z", "result": "applied" + esc, "lbcVersion": "v1"}}}
	b, _ := json.Marshal(st)
	h.write(filepath.Join(h.dir, "state", "state.json"), string(b))
	r := h.lbc("status")
	noRawControl(t, "status", r, "0123abc"+escShown)
	noRawControl(t, "status", r, "v1"+escShown)
	// plan refuses the VIP lbc would have to remove (quoted, no raw bytes).
	r = h.lbc("plan")
	noRawControl(t, "plan", r, "bad interface name")
	r = h.lbc("status", "--json")
	if !strings.Contains(r.stdout, `"lbcVersion":"v1\u001b]0;pwned\u0007\u001b[2J"`) {
		t.Errorf("status --json does not carry the field as JSON:\n%s", r)
	}
}

// A lock owner with escape sequences: "locked by" shows it escaped.
func TestHostileLockOwner(t *testing.T) {
	h := newHostileHost(t)
	lock := filepath.Join(h.dir, "state", "lock")
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	h.write(filepath.Join(h.dir, "state", "lock.owner"), "mallory"+esc+" pid 1\n")
	r := h.lbc("apply")
	if r.code == 0 {
		t.Errorf("apply of a locked device: exit 0\n%s", r)
	}
	noRawControl(t, "apply", r, "locked by mallory"+escShown+" pid 1")

	// A saved plan applied later: the refusal is an error, on stderr.
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if r := h.lbc("plan", "-out", planFile); r.code != 0 {
		t.Fatalf("plan -out: %s", r)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	r = runCLI(t, append(append([]string{"apply"}, h.flags...), planFile)...)
	if r.code == 0 || !strings.Contains(r.stderr, "locked by mallory"+escShown) {
		t.Errorf("apply PLANFILE of a locked device: want the owner on stderr\n%s", r)
	}
	noRawControl(t, "apply PLANFILE", r, "locked by mallory"+escShown+" pid 1")
}

// A host whose commands fail with escape sequences on stderr: the error
// shows them escaped, in plan and status (stdout) and apply (stderr).
func TestHostileStderr(t *testing.T) {
	h := newHostileHost(t)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if r := h.lbc("plan", "-out", planFile); r.code != 0 {
		t.Fatalf("plan -out: %s", r)
	}
	h.setHook(func(cmd string) sshtest.Fault { return sshtest.FailExit(2, "boom "+esc+"\nsecond line\n") })
	r := h.lbc("plan")
	noRawControl(t, "plan", r, "boom "+escShown)
	r = h.lbc("status")
	noRawControl(t, "status", r, "boom "+escShown)
	r = runCLI(t, append(append([]string{"apply"}, h.flags...), planFile)...)
	if r.code == 0 || !strings.Contains(r.stderr, "boom "+escShown) {
		t.Errorf("apply PLANFILE with a failing host: want its stderr, escaped, on stderr\n%s", r)
	}
	noRawControl(t, "apply PLANFILE", r, "boom "+escShown)
}

// A spec file whose name holds escape sequences: the diagnostics name it
// escaped; --json keeps it as JSON.
func TestHostileSpecFileName(t *testing.T) {
	dir := t.TempDir()
	name := "bad" + esc + ".cue"
	if err := os.WriteFile(filepath.Join(dir, name), []byte("package spec\n\nbalancers: web: {protocol: \"smtp\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "validate", dir)
	if r.code != 1 {
		t.Errorf("validate: want exit 1\n%s", r)
	}
	noRawControl(t, "validate", r, "bad"+escShown+".cue:3:")
	r = runCLI(t, "validate", "--json", dir)
	if !strings.Contains(r.stdout, `bad\u001b]0;pwned\u0007\u001b[2J.cue`) {
		t.Errorf("validate --json does not carry the name as JSON:\n%s", r)
	}
}
