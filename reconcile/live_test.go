package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/shquote"
	"lbc/internal/testkit/sshtest"
	"lbc/schema"
)

// testHost is a device backed by a temp dir, reached over the in-process SSH
// server: real /bin/sh runs every command; ip(8) is a fake that keeps the
// address list in a file; reload records the sha256 of the config it
// "loaded" in <stateDir>/running, which testVerifier reads. The server
// follows the steps (sshtest.Options.Steps): th.srv.Inject fails or cuts
// any step where it runs; the fake ip and reload are wrapped as tools.
type testHost struct {
	t     *testing.T
	srv   *sshtest.Server
	dir   string
	dev   *schema.Device
	hook  atomic.Pointer[func(cmd string) sshtest.Fault]
	ipCmd string
	// aux, when set, gives the auxiliary files of each revision that
	// plan compiles (resolved from src).
	aux func(rev string) []compiler.AuxFile
	src FileSource
}

const fakeIP = `#!/bin/sh
f="$(dirname "$0")/../addrs"
touch "$f"
case "$1 $2" in
"-j addr")
  awk 'BEGIN{printf "["} {if (NR>1) printf ","; split($1,a,"/"); printf "{\"ifname\":\"%s\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"%s\",\"prefixlen\":%s}]}", $2, a[1], a[2]} END{print "]"}' "$f";;
"addr replace") grep -qxF "$3 $5" "$f" || echo "$3 $5" >> "$f";;
"addr del")
  if grep -qxF "$3 $5" "$f"; then grep -vxF "$3 $5" "$f" > "$f.tmp"; mv "$f.tmp" "$f"
  else echo "RTNETLINK answers: Cannot assign requested address" >&2; exit 2; fi;;
*) echo "fake ip: $*" >&2; exit 1;;
esac
`

func newTestHost(t *testing.T, name string) *testHost {
	t.Helper()
	return newTestHostWith(t, name, sshtest.Options{})
}

// newTestHostWith is newTestHost with the server's options (Steps and Hook
// are set here).
func newTestHostWith(t *testing.T, name string, opts sshtest.Options) *testHost {
	t.Helper()
	th := &testHost{t: t}
	opts.Steps = true
	opts.Hook = func(cmd string) sshtest.Fault {
		if h := th.hook.Load(); h != nil {
			return (*h)(cmd)
		}
		return sshtest.NoFault
	}
	th.srv = sshtest.Start(t, opts)
	th.init(name)
	return th
}

// init lays out a fresh device dir on the same server.
func (th *testHost) init(name string) {
	t := th.t
	th.dir = t.TempDir()
	for _, d := range []string{"bin", "etc", "state"} {
		if err := os.MkdirAll(filepath.Join(th.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	th.write("bin/ip-fake", fakeIP, 0o755)
	th.wrap("ip")
	th.wrap("reload")
	th.write("bin/reload-fake", `#!/bin/sh
d="$(dirname "$0")/.."
echo reload >> "$d/reloads"
sha256sum < "$d/etc/haproxy.cfg" | cut -c1-64 > "$d/state/running.tmp" && mv -f "$d/state/running.tmp" "$d/state/running"
`, 0o755)
	th.write("addrs", "127.0.0.1/8 lo\n192.0.2.99/24 eth0\n", 0o644)
	th.ipCmd = filepath.Join(th.dir, "bin/ip")
	dev := th.srv.Device(name)
	dev.StateDir = filepath.Join(th.dir, "state")
	dev.HAProxy = schema.HAProxy{
		Config: filepath.Join(th.dir, "etc/haproxy.cfg"),
		Reload: filepath.Join(th.dir, "bin/reload"),
		Check:  checkCommand(t),
	}
	th.dev = dev
}

// checkCommand is the real `haproxy -c -f` when HAProxy is installed.
func checkCommand(t *testing.T) string {
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy not installed (CI set)")
		}
		t.Log("haproxy not installed: staged configs checked with `test -s`")
		return "test -s"
	}
	return "haproxy -q -c -f"
}

// wrap makes bin/NAME the sshtest wrapper of bin/NAME-fake, as tool NAME.
func (th *testHost) wrap(name string) {
	th.t.Helper()
	bin := filepath.Join(th.dir, "bin")
	if err := sshtest.WrapTool(filepath.Join(bin, name), name, filepath.Join(bin, name+"-fake")); err != nil {
		th.t.Fatal(err)
	}
}

func (th *testHost) write(rel, data string, mode os.FileMode) {
	th.t.Helper()
	if err := os.WriteFile(filepath.Join(th.dir, rel), []byte(data), mode); err != nil {
		th.t.Fatal(err)
	}
}

func (th *testHost) read(rel string) string {
	b, err := os.ReadFile(filepath.Join(th.dir, rel))
	if os.IsNotExist(err) {
		return "<absent>"
	}
	if err != nil {
		th.t.Fatal(err)
	}
	return string(b)
}

func (th *testHost) setHook(f func(string) sshtest.Fault) {
	if f == nil {
		th.hook.Store(nil)
		return
	}
	th.hook.Store(&f)
}

func (th *testHost) dial(ctx context.Context, ep Endpoint) (Transport, error) {
	return DialSSH(ctx, ep, SSHConfig{KnownHosts: th.srv.KnownHostsFile(), KeyFile: th.srv.KeyFile()})
}

// snapshot is every host file apply may touch.
type snapshot struct{ config, state, addrs, running, files string }

func (th *testHost) snap() snapshot {
	return snapshot{th.read("etc/haproxy.cfg"), th.read("state/state.json"), th.read("addrs"), th.read("state/running"),
		th.read("state/files/hosts.map") + th.read("state/files/site.pem")}
}

// waitUnlocked waits (bounded) until nobody holds the device lock: the
// holder may still be running the armed rollback after a cut.
func (th *testHost) waitUnlocked() {
	th.t.Helper()
	lock := filepath.Join(th.dev.StateDir, "lock")
	for i := 0; i < 100; i++ {
		if err := exec.Command("flock", "-n", lock, "true").Run(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	th.t.Fatal("device lock still held after 5s")
}

// testVerifier reads <stateDir>/running, which the fake reload writes.
type testVerifier struct{}

func (testVerifier) Before(h Host) string {
	return "lbc_before=$(cat " + shquote.Quote(filepath.Join(h.StateDir, "running")) + " 2>/dev/null)"
}

// NeedsBefore: the running config's hash proves nothing about the
// process, so Before always runs.
func (testVerifier) NeedsBefore(old, new []byte) bool { return true }

// After reads the file with cat, a command (a step fault can fail it).
func (testVerifier) After(h Host, cfg []byte) (string, error) {
	return fmt.Sprintf(`lbc_r=$(cat %s 2>/dev/null); [ "$lbc_r" = %s ] || { echo "host runs config $lbc_r, not %s" >&2; false; }`,
		shquote.Quote(filepath.Join(h.StateDir, "running")), sha256Hex(cfg), sha256Hex(cfg)), nil
}

// testGlobal is the global and defaults sections of a test config.
const testGlobal = "global\n    maxconn 100\n\ndefaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n"

// testConfig is a small valid haproxy.cfg, with lbc's header, binding port on 127.0.0.1 with
// one server of the given weight. Every line is of a shape lbc renders
// (compiler/allowed.go), so that a saved plan holding it loads.
func testConfig(port, weight int) []byte {
	var b bytes.Buffer
	b.WriteString(testGlobal)
	b.WriteString("frontend fe_web\n    bind 127.0.0.1:" + itoa(port) + "\n    mode http\n    default_backend be_web\n\n")
	b.WriteString("backend be_web\n    mode http\n    balance roundrobin\n    server n1 127.0.0.1:9 weight " + itoa(weight) + " check\n    server n2 127.0.0.1:10 weight 1 check\n")
	return withHeader(b.Bytes())
}

// withHeader puts the header line of a file rendered by lbc before body:
// plan and apply treat a config without one as not managed by lbc.
func withHeader(body []byte) []byte {
	return append([]byte("# lbc test revision none content sha256:"+sha256Hex(body)+"\n"), body...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// result builds a compile result for one device: config and single VIPs.
func (th *testHost) result(rev string, cfg []byte, vips ...string) (*schema.Spec, *compiler.Result) {
	var vs []compiler.VIP
	for _, v := range vips {
		vs = append(vs, compiler.VIP{Address: netip.MustParseAddr(v), Prefix: 32, Interface: "eth0", Balancer: "web", Role: "single"})
	}
	spec := &schema.Spec{Devices: map[string]*schema.Device{th.dev.Name: th.dev}}
	res := &compiler.Result{Revision: rev, Devices: map[string]*compiler.DeviceArtifacts{
		th.dev.Name: {Device: th.dev.Name, HAProxyCfg: cfg, VIPs: vs},
	}}
	if th.aux != nil {
		res.Devices[th.dev.Name].AuxFiles = th.aux(rev)
	}
	return spec, res
}

func (th *testHost) plan(rev string, cfg []byte, vips ...string) *Plan {
	th.t.Helper()
	spec, res := th.result(rev, cfg, vips...)
	p, err := BuildPlan(context.Background(), spec, res, th.dial, PlanOptions{IPCommand: th.ipCmd, Files: th.src})
	if err != nil {
		th.t.Fatal(err)
	}
	return p
}

// applyOpts are the options of the tests of the reload transaction
// (Reload: the test host's HAProxy is a fake reload, with no stats
// socket); runtime_test.go runs a real HAProxy for the runtime one.
func applyOpts(owner string) ApplyOptions {
	return ApplyOptions{
		Owner: owner, LBCVersion: "test", Verifier: testVerifier{}, Reload: true,
		Now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
}

// TestReadLiveOverSSH reads a host with a config whose bytes would confuse
// a delimiter-based reader, a quote in its path, and no state.
func TestReadLiveOverSSH(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	weird := "==lbc config end\n'\"$(touch /tmp/pwned)\x00\xff no newline"
	cfgPath := filepath.Join(th.dir, "etc", "it's.cfg")
	if err := os.WriteFile(cfgPath, []byte(weird), 0o644); err != nil {
		t.Fatal(err)
	}
	h := hostOf(th.dev, th.ipCmd)
	h.Config = cfgPath
	tr, err := th.dial(context.Background(), EndpointOf(th.dev))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	l, err := ReadLive(context.Background(), tr, h, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Config.Data) != weird {
		t.Errorf("config read back as %q", l.Config.Data)
	}
	if l.StateFile.Exists || l.State != nil {
		t.Error("absent state.json read as present")
	}
	if strings.Join(l.Addresses, ",") != "127.0.0.1/8 dev lo,192.0.2.99/24 dev eth0" {
		t.Errorf("addresses %q", l.Addresses)
	}
	if n := len(th.srv.Commands()); n != 1 {
		t.Errorf("%d commands, want 1 round trip", n)
	}
}
