package reconcile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/sshtest"
	"lbc/internal/testkit/testcert"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// certRig is a test host whose real HAProxy serves a certificate bundle
// that lbc ships (<stateDir>/files/site.pem, by reference "site") on a
// TLS listener (a unix socket in the state directory: no port to share
// between parallel tests).
type certRig struct {
	*testHost
	ca      *testcert.CA
	bundles map[string][]byte // by revision
	leaves  map[string]*testcert.Leaf
}

func newCertRig(t *testing.T) *certRig {
	r := &certRig{testHost: newTestHost(t, "lb-a1"), ca: testcert.NewCA("lbc test CA"), bundles: map[string][]byte{}, leaves: map[string]*testcert.Leaf{}}
	for _, rev := range []string{"rev1", "rev2"} {
		l := r.ca.Leaf(testcert.Opts{DNS: []string{"www.example.com"}}) // a new key each
		r.leaves[rev], r.bundles[rev] = l, l.Bundle()
	}
	return r
}

func (r *certRig) certPath() string { return filepath.Join(r.dev.StateDir, "files", "site.pem") }
func (r *certRig) tlsSock() string  { return filepath.Join(r.dev.StateDir, "tls.sock") }

// config is the rig's haproxy.cfg: the TLS frontend and one backend.
func (r *certRig) config(weight int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    stats socket %s/haproxy.sock mode 600 level admin\n\n", r.dev.StateDir)
	b.WriteString("defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n")
	fmt.Fprintf(&b, "frontend fe_tls\n    bind unix@%s ssl crt %s\n    default_backend be_web\n\n", r.tlsSock(), r.certPath())
	b.WriteString("backend be_web\n    balance roundrobin\n    server n1 127.0.0.1:9 weight " + itoa(weight) + "\n")
	return withHeader([]byte(b.String()))
}

// plan plans config(weight) with the bundle of bundleRev.
func (r *certRig) plan(rev, bundleRev string, weight int) *Plan {
	r.t.Helper()
	files := []compiler.AuxFile{{Path: r.certPath(), Mode: 0o600, Kind: compiler.AuxCert, Ref: "site"}}
	src := sourceFunc(func(kind, ref string) ([]byte, error) { return r.bundles[bundleRev], nil })
	return r.planFiles(rev, r.config(weight), files, src)
}

// setup applies rev1 (by reload), starts HAProxy on it and plans rev2's
// certificate, which must be a runtime change rotating it.
func (r *certRig) setup() *Plan {
	t := r.t
	mustApply(t, r.testHost, r.plan("rev1", "rev1", 1))
	r.startHAProxy()
	p := r.plan("rev2", "rev2", 1)
	d := p.Devices[0]
	want := fmt.Sprintf("rotate cert site: sha256 %s → %s", sha256Hex(r.bundles["rev1"]), sha256Hex(r.bundles["rev2"]))
	if d.Change == nil || d.Change.Class != classify.Runtime || len(d.Change.Ops) != 1 || d.Change.Ops[0].String() != want {
		t.Fatalf("plan of the rotation: %+v, want a runtime change %q", d.Change, want)
	}
	return p
}

// serial is the serial of the certificate HAProxy runs, as show ssl cert
// says it.
func (r *certRig) serial() string {
	f, err := host.ParseShowCert(r.cli("show ssl cert " + r.certPath()))
	if err != nil {
		r.t.Fatal(err)
	}
	return f.Serial
}

// served is the serial of the certificate a TLS client gets from the
// listener (bounded: 5 s).
func (r *certRig) served() string {
	r.t.Helper()
	c, err := net.DialTimeout("unix", r.tlsSock(), 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	pool := x509.NewCertPool()
	pool.AddCert(r.ca.Cert)
	tc := tls.Client(c, &tls.Config{ServerName: "www.example.com", RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		r.t.Fatal(err)
	}
	return host.NormSerial(tc.ConnectionState().PeerCertificates[0].SerialNumber.Text(16))
}

func leafSerial(l *testcert.Leaf) string { return host.NormSerial(l.Cert.SerialNumber.Text(16)) }

// A renewed certificate (a new key) rotated without a reload: the plan
// says runtime and names the rotation by fingerprints; apply sends it on
// the stats socket after the swap; the same worker serves the new
// certificate; the next plan is empty; no output holds key bytes.
func TestRuntimeCertRotation(t *testing.T) {
	r := newCertRig(t)
	p := r.setup()
	if got, want := r.served(), leafSerial(r.leaves["rev1"]); got != want {
		t.Fatalf("before: served serial %s, want rev1's %s", got, want)
	}
	reloads := r.read("reloads")
	pid := r.cli("show info")
	res, err := Apply(context.Background(), p, r.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	d := res.Devices[0]
	if d.Outcome != OutcomeApplied || d.Runtime == nil {
		t.Fatalf("%s: %v (runtime %+v)", d.Outcome, d.Err, d.Runtime)
	}
	if !strings.Contains(pid, fmt.Sprintf("Pid: %d\n", d.Runtime.Pid)) || len(d.Runtime.Ops) != 1 || !strings.HasPrefix(d.Runtime.Ops[0], "rotate cert site: ") {
		t.Errorf("runtime result %+v; show info before:\n%s", d.Runtime, pid)
	}
	if r.read("reloads") != reloads {
		t.Error("the rotation reloaded")
	}
	want := leafSerial(r.leaves["rev2"])
	if got := r.serial(); got != want {
		t.Errorf("show ssl cert: serial %s, want rev2's %s", got, want)
	}
	if got := r.served(); got != want {
		t.Errorf("served serial %s, want rev2's %s", got, want)
	}
	if r.read("state/files/site.pem") != string(r.bundles["rev2"]) || fileMode(t, r.certPath()) != 0o600 {
		t.Error("the file on the host is not the new bundle, 0600")
	}
	if d2 := r.plan("rev2", "rev2", 1).Devices[0]; d2.Status != StatusUnchanged {
		t.Errorf("next plan: %s %+v", d2.Status, d2.Change)
	}
	// Nothing lbc returns or saves holds the key.
	out, _ := json.Marshal(struct {
		P *Plan
		R *ApplyResult
	}{p, res})
	out = append(out, fmt.Sprint(d.Err, d.Warnings, d.Steps)...)
	for _, rev := range []string{"rev1", "rev2"} {
		body := strings.Join(strings.Split(string(r.leaves[rev].KeyPEM()), "\n")[1:3], "")
		if strings.Contains(string(out), "PRIVATE KEY") || strings.Contains(string(out), body[:40]) {
			t.Errorf("the plan or the result holds %s's key", rev)
		}
	}
}

// A rotation with a weight change: both at runtime, one transaction.
func TestRuntimeCertRotationWithWeight(t *testing.T) {
	r := newCertRig(t)
	mustApply(t, r.testHost, r.plan("rev1", "rev1", 1))
	r.startHAProxy()
	p := r.plan("rev2", "rev2", 3)
	if c := p.Devices[0].Change; c == nil || c.Class != classify.Runtime || len(c.Ops) != 2 || c.Ops[1].Kind != classify.KindCert {
		t.Fatalf("plan: %+v", c)
	}
	res, err := Apply(context.Background(), p, r.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Devices[0]; d.Outcome != OutcomeApplied || d.Runtime == nil {
		t.Fatalf("%s: %v", d.Outcome, d.Err)
	}
	if got := r.servers(); !slices.Equal(got, []string{"be_web/n1 127.0.0.1:9 weight 3 ready"}) {
		t.Errorf("runs %q", got)
	}
	if got, want := r.served(), leafSerial(r.leaves["rev2"]); got != want {
		t.Errorf("served serial %s, want %s", got, want)
	}
}

// What stays a reload: a certificate new on the host, a CA, a file the
// live config does not load as a crt, a host whose file lbc did not
// apply last, a bundle too large for a payload.
func TestCertRotationClass(t *testing.T) {
	cfg := []byte("frontend f\n    bind 192.0.2.1:443 ssl crt /s/certs/a.pem crt /s/certs/b.pem\n")
	sum := strings.Repeat("a", 64)
	big := DesiredFile{Path: "/s/certs/b.pem", Kind: compiler.AuxCert, Content: strings.Repeat("x", maxCertPayload+1)}
	for _, c := range []struct {
		name    string
		ch      FileChange
		trusted bool
		reason  string
	}{
		{"rotation", FileChange{Path: "/s/certs/a.pem", Kind: compiler.AuxCert, Ref: "a", From: sum, To: sum}, true, ""},
		{"new", FileChange{Path: "/s/certs/a.pem", Kind: compiler.AuxCert, To: sum}, true, "is new"},
		{"ca", FileChange{Path: "/s/certs/a.pem", Kind: compiler.AuxCA, From: sum, To: sum}, true, "at a reload"},
		{"removed", FileChange{Path: "/s/certs/a.pem", From: sum}, true, "is removed"},
		{"not loaded", FileChange{Path: "/s/certs/c.pem", Kind: compiler.AuxCert, From: sum, To: sum}, true, "not a crt"},
		{"untrusted", FileChange{Path: "/s/certs/a.pem", Kind: compiler.AuxCert, From: sum, To: sum}, false, "not the one lbc applied last"},
		{"too large", FileChange{Path: "/s/certs/b.pem", Kind: compiler.AuxCert, From: sum, To: sum}, true, "more than a stats socket payload"},
	} {
		ops, reason := fileRuntimeOps([]FileChange{c.ch}, []DesiredFile{big}, cfg, c.trusted)
		if c.reason == "" && (reason != "" || len(ops) != 1 || ops[0].Name != "a" || ops[0].File != "/s/certs/a.pem") {
			t.Errorf("%s: ops %+v, reason %q", c.name, ops, reason)
		}
		if c.reason != "" && (!strings.Contains(reason, c.reason) || ops != nil) {
			t.Errorf("%s: reason %q, want %q", c.name, reason, c.reason)
		}
	}
	// A saved plan's operation is checked as input.
	op := classify.Op{Kind: classify.KindCert, Name: "a", File: "/s/certs/a.pem", From: sum, To: sum}
	if err := classify.Check(&classify.Result{Class: classify.Runtime, Ops: []classify.Op{op}}); err != nil {
		t.Error(err)
	}
	for _, bad := range []classify.Op{
		{Kind: classify.KindCert, Name: "a", File: "/s/certs/a.pem\nlua-load /x", From: sum, To: sum},
		{Kind: classify.KindCert, Name: "a", File: "/s/../a.pem", From: sum, To: sum},
		{Kind: classify.KindCert, Name: "a", File: "/s/certs/a.pem", From: "x", To: sum},
		{Kind: classify.KindCert, Name: "a b", File: "/s/certs/a.pem", From: sum, To: sum},
		{Kind: classify.KindCert, Backend: "be", Name: "a", File: "/s/certs/a.pem", From: sum, To: sum},
	} {
		if err := classify.Check(&classify.Result{Class: classify.Runtime, Ops: []classify.Op{bad}}); err == nil {
			t.Errorf("Check accepts %+v", bad)
		}
	}
}

// certFault is one row of the certificate rotation's fault matrix.
type certFault struct {
	name   string
	fault  func(r *certRig) sshtest.StepFault
	errHas string
}

// The rotation's fault matrix: the set refused by the socket's client,
// the commit refused by HAProxy (the swapped file replaced, before the
// runtime step, by a bundle whose key does not match), and show ssl cert
// not matching the new file (the old certificate set back by hand before
// runtime-verify). Each ends rolled back: the old file, the old
// certificate served by the same worker, txn.sh disarmed, the lock free,
// and the next plan the same rotation.
func certFaults() []certFault {
	return []certFault{
		{name: "fail/set", errHas: "runtime: exit status 1: stats socket: set ssl cert ",
			fault: func(r *certRig) sshtest.StepFault {
				// show info with show ssl cert (before) on one
				// connection, then the set.
				return sshtest.StepFault{Step: host.StepRuntime, Action: sshtest.Fail, Tool: "nc.openbsd", Count: 2}
			}},
		{name: "refused/commit", errHas: "inconsistencies between private key and certificate",
			fault: func(r *certRig) sshtest.StepFault {
				return sshtest.StepFault{Step: host.StepRuntime, Action: sshtest.Pause, Then: func() {
					mixed := append(r.leaves["rev2"].CertPEM(), r.leaves["rev1"].KeyPEM()...)
					if err := os.WriteFile(r.certPath(), mixed, 0o600); err != nil {
						panic(err)
					}
				}}
			}},
		{name: "mismatch/show", errHas: "runtime-verify: certificate site: HAProxy runs serial ",
			fault: func(r *certRig) sshtest.StepFault {
				return sshtest.StepFault{Step: host.StepRuntimeVerify, Action: sshtest.Pause, Then: func() {
					old := strings.ReplaceAll(string(r.bundles["rev1"]), "\n\n", "\n")
					a := rigCLI(r.testHost, "set ssl cert "+r.certPath()+" <<\n"+old+"\n")
					b := rigCLI(r.testHost, "commit ssl cert "+r.certPath())
					if !strings.Contains(a, "Transaction") || !strings.Contains(b, "Success") {
						panic(fmt.Sprintf("set by hand: %q %q", a, b))
					}
				}}
			}},
	}
}

// rigCLI sends cmd to the test host's HAProxy from a fault's Then (no
// testing.T there: it runs on the server's goroutine).
func rigCLI(th *testHost, cmd string) string {
	c, err := net.DialTimeout("unix", filepath.Join(th.dev.StateDir, "haproxy.sock"), 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return err.Error()
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for b.Len() < 1<<16 {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func runCertFault(t *testing.T, c certFault, inject bool) []string {
	r := newCertRig(t)
	p := r.setup()
	old := r.snap()
	oldServed := r.served()
	pid := r.cli("show info")
	f := c.fault(r)
	d, returned, bad := r.applyFaulted(t, p, []sshtest.StepFault{f}, inject, OutcomeRolledBack, c.errHas)
	badf := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	if msg := fmt.Sprint(d.Err, d.Warnings); strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, "BEGIN CERT") {
		badf("the error or a warning holds PEM: %s", msg)
	}
	if !r.unlockedWithin(returned.Add(2 * time.Second)) {
		badf("device lock still held 2s after apply returned")
	}
	if r.armed() {
		badf("txn.sh still armed")
	}
	if now := r.snap(); now != old {
		badf("host files are not old:\n%+v\nwas\n%+v\ntxn.log: %s", now, old, r.read("state/txn.log"))
	}
	if got := r.served(); got != oldServed {
		badf("serves serial %s, was %s", got, oldServed)
	}
	if now := r.cli("show info"); pidLine(now) != pidLine(pid) {
		badf("the worker changed: %s, was %s", pidLine(now), pidLine(pid))
	}
	d2 := r.plan("rev2", "rev2", 1).Devices[0]
	if d2.Status != StatusChanges || d2.Change == nil || fmt.Sprint(d2.Change.Ops) != fmt.Sprint(p.Devices[0].Change.Ops) ||
		fmt.Sprint(d2.FileChanges) != fmt.Sprint(p.Devices[0].FileChanges) {
		badf("the next plan is not the same rotation: %s %+v %v", d2.Status, d2.Change, d2.FileChanges)
	}
	return bad
}

func pidLine(info string) string {
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "Pid:") {
			return l
		}
	}
	return "(no pid)"
}

func TestCertFaultMatrix(t *testing.T) {
	for _, c := range certFaults() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, b := range runCertFault(t, c, true) {
				t.Error(b)
			}
		})
	}
}

// Without injection every case must say that no fault fired and end
// otherwise than it expects.
func TestCertFaultMatrixWithoutInjection(t *testing.T) {
	for _, c := range certFaults() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bad := runCertFault(t, c, false)
			if len(bad) < 2 || bad[0] != "no fault fired" {
				t.Errorf("without injection the case reports %q, want \"no fault fired\" and a wrong outcome", bad)
			}
		})
	}
}
