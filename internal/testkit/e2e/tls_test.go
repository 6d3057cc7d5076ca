package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/internal/testkit/testcert"
)

// tlsEnv is the lab of the TLS test: the lbc binary, the spec tree, the
// certificate source directory (outside the tree) and the test CA.
type tlsEnv struct {
	*gitopsEnv
	specs, certs string
	ca           *testcert.CA
	pool         *x509.CertPool
	// outputs collects every output of every lbc run, for the key-leak grep.
	outputs []string
}

// lbc runs lbc with the lab's SSH flags and --cert-dir, LBC_TRACE set, and
// keeps its output.
func (e *tlsEnv) lbc(code int, args ...string) lbcResult {
	e.t.Helper()
	full := []string{args[0], "--cert-dir", e.certs}
	if args[0] != "validate" {
		full = append(full, e.sshFlags()...)
	}
	full = append(full, args[1:]...)
	r, err := runLBCEnv(e.gitopsEnv.lbc, e.tmp, []string{"LBC_TRACE=1"}, full...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.outputs = append(e.outputs, r.stdout, r.stderr)
	if r.code != code {
		e.t.Fatalf("want exit %d\n%s", code, r)
	}
	return r
}

// get sends an HTTPS GET to vip:443 with SNI host (as curl --resolve
// host:443:vip --cacert ca.pem does) and returns the body, the leaf
// certificate's SHA-256 and the response.
func (e *tlsEnv) get(ctx context.Context, vip, host string) (string, string, *http.Response, error) {
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: e.pool, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, net.JoinHostPort(vip, "443"))
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return "", "", nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	sum := sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)
	return string(b), hex.EncodeToString(sum[:]), resp, nil
}

// servesTLS waits (at most 15 s) for vip to answer host over TLS with a
// body in want and the certificate leaf, then checks 10 more requests.
func (e *tlsEnv) servesTLS(vip, host string, leaf *testcert.Leaf, want ...string) *http.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum := sha256.Sum256(leaf.Cert.Raw)
	fp := hex.EncodeToString(sum[:])
	ok := func(body, got string) bool {
		if got != fp {
			return false
		}
		for _, w := range want {
			if body == w {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		body, got, resp, err := e.get(ctx, vip, host)
		if err == nil && ok(body, got) {
			for i := 0; i < 10; i++ {
				body, got, resp, err = e.get(ctx, vip, host)
				if err != nil || !ok(body, got) {
					e.t.Fatalf("https://%s via %s request %d: body %q cert %s err %v; want %v and cert %s", host, vip, i, body, got, err, want, fp)
				}
			}
			return resp
		}
		last = fmt.Sprintf("body %q cert %s err %v", body, got, err)
		if time.Now().After(deadline) {
			e.t.Fatalf("https://%s via %s: in 15s no answer from %v with cert %s (last: %s)", host, vip, want, fp, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsNode starts, in node n's namespace, an HAProxy that serves TLS on
// port 8443 with a certificate for name from e's CA and answers body.
func (e *tlsEnv) tlsNode(n lab.Node, name, body string) int {
	e.t.Helper()
	dir := e.t.TempDir()
	leaf := e.ca.Leaf(testcert.Opts{DNS: []string{name}})
	pem := filepath.Join(dir, "node.pem")
	if err := os.WriteFile(pem, leaf.Bundle(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg := fmt.Sprintf("global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n"+
		"frontend tls\n    bind %s:8443 ssl crt %s\n    http-request return status 200 content-type text/plain string %s\n", n.Address, pem, body)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "haproxy.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS, "haproxy", "-D", "-p", pidFile, "-f", cfgFile).CombinedOutput(); err != nil {
		e.t.Fatalf("tls node: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		e.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	e.t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil && pid > 0 {
			p.Kill()
		}
	})
	return 8443
}

// TestTLS terminates TLS on a lab VIP with certificates from a source
// directory: two SNI names get their own certificate through one VIP, http
// is redirected, HSTS is sent, a second balancer reaches a node over
// verified TLS; a renewed certificate is served after apply; a rotation
// that fails at swap rolls back to the old one; and no output of any run,
// saved plan, state file or trace holds a private key.
func TestTLS(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 1, Nodes: 2, StepLog: true})
	l := g.l
	e := &tlsEnv{gitopsEnv: g, specs: specs, certs: filepath.Join(g.tmp, "certs")}
	if err := os.Mkdir(e.certs, 0o700); err != nil {
		t.Fatal(err)
	}
	e.ca = testcert.NewCA("lbc e2e root")
	inter := e.ca.Intermediate("lbc e2e intermediate")
	e.pool = x509.NewCertPool()
	e.pool.AddCert(e.ca.Cert)
	shop := inter.Leaf(testcert.Opts{DNS: []string{"shop.example.com"}})
	api := inter.Leaf(testcert.Opts{DNS: []string{"api.example.com"}})
	for name, lf := range map[string]*testcert.Leaf{"shop": shop, "api": api} {
		if err := lf.WriteDir(e.certs, name); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.certs, name+".ca.pem"), e.ca.PEM(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.certs, "internal.pem"), e.ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	n1, n2 := l.Nodes[0], l.Nodes[1]
	tlsPort := e.tlsNode(n1, "n1.internal.example", "n1-tls")
	vip1, vip2 := l.VIP(1).String(), l.VIP(2).String()
	spec := fmt.Sprintf(`package spec

balancers: web: {
	vips: [{address: %q, port: 443, tls: {
		certificates: [{name: "shop", sni: ["shop.example.com"]}, {name: "api", sni: ["api.example.com"]}]
		redirectHTTP: true
		hsts: "8760h"
	}}]
	nodes: [{address: %q, port: %d}]
	pools: api: nodes: [{address: %q, port: %d}]
	hosts: {"shop.example.com": "default", "api.example.com": "api"}
}
balancers: secure: {
	vips: [{address: %q, port: 443, tls: certificates: [{name: "api"}]}]
	nodes: [{address: %q, port: %d}]
	healthMonitor: {type: "http", path: "/"}
	nodeTLS: {ca: {name: "internal"}, sni: "n1.internal.example"}
}
`, vip1, n1.Address, n1.Port, n2.Address, n2.Port, vip2, n1.Address, tlsPort)
	if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}

	e.lbc(0, "validate", "specs")
	planFile := filepath.Join(g.tmp, "tls.plan")
	r := e.lbc(2, "plan", "--detailed-exitcode", "-out", planFile, "specs")
	shopFP := fingerprint(shop)
	for _, want := range []string{"tls " + vip1 + ":443: shop: subject CN=shop.example.com", "sha256 " + shopFP, "+ file " + l.Devices[0].StateDir + "/certs/shop.pem (cert shop) sha256 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan does not show %q\n%s", want, r)
		}
	}
	e.lbc(2, "plan", "--json", "--detailed-exitcode", "specs")
	e.lbc(2, "plan", "--markdown", "--detailed-exitcode", "specs")
	r = e.lbc(0, "apply", "--adopt", planFile)
	if !strings.Contains(r.stdout, "1 applied") {
		t.Fatalf("apply: want 1 applied\n%s", r)
	}
	// Two SNI names through one VIP: each its own certificate and, by
	// the balancer's host table (the Host header, once TLS is
	// terminated), its own pool.
	resp := e.servesTLS(vip1, "shop.example.com", shop, "n1")
	if h := resp.Header.Get("Strict-Transport-Security"); h != "max-age=31536000" {
		t.Errorf("HSTS header %q", h)
	}
	e.servesTLS(vip1, "api.example.com", api, "n2")
	e.servesTLS(vip2, "api.example.com", api, "n1-tls")
	checkRedirect(t, vip1)
	dev := l.Devices[0]
	for _, f := range []string{"certs/shop.pem", "certs/api.pem", "certs/internal.ca.pem"} {
		fi, err := os.Stat(filepath.Join(dev.StateDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600); strings.HasSuffix(f, ".ca.pem") {
			want = 0o644
			if fi.Mode().Perm() != want {
				t.Errorf("%s mode %v", f, fi.Mode())
			}
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v", f, fi.Mode())
		}
	}
	if fi, err := os.Stat(filepath.Join(dev.StateDir, "certs")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("certs directory: %v %v", fi.Mode(), err)
	}
	e.lbc(0, "plan", "--detailed-exitcode", "specs")
	e.lbc(0, "status", "specs")

	// Renewal: a new certificate (a new key) for shop; plan shows it by
	// fingerprint, as a rotation at runtime.
	shop2 := inter.Leaf(testcert.Opts{DNS: []string{"shop.example.com"}})
	if err := shop2.WriteDir(e.certs, "shop"); err != nil {
		t.Fatal(err)
	}
	r = e.lbc(2, "plan", "--detailed-exitcode", "specs")
	rotate := "rotate cert shop: sha256 " + sha256Hex(bundleOf(shop)) + " → " + sha256Hex(bundleOf(shop2))
	if !strings.Contains(r.stdout, "~ file "+dev.StateDir+"/certs/shop.pem (cert shop) sha256 ") || !strings.Contains(r.stdout, fingerprint(shop2)) ||
		!strings.Contains(r.stdout, "haproxy.cfg: runtime, 1 runtime operation(s), no reload:\n    "+rotate+"\n") {
		t.Errorf("renewal plan: want the rotation %q\n%s", rotate, r)
	}
	r = e.lbc(2, "plan", "--json", "--detailed-exitcode", "specs")
	if !strings.Contains(r.stdout, `"kind":"cert"`) || !strings.Contains(r.stdout, `"name":"shop"`) {
		t.Errorf("renewal plan --json: no cert operation\n%s", r)
	}
	r = e.lbc(2, "plan", "--markdown", "--detailed-exitcode", "specs")
	if !strings.Contains(r.stdout, rotate) {
		t.Errorf("renewal plan --markdown: no %q\n%s", rotate, r)
	}
	pid := e.workerPid(dev)
	// A rotation that fails at swap rolls back: the old certificate is
	// still served and is the file on the host.
	if err := dev.FailAt("swap"); err != nil {
		t.Fatal(err)
	}
	r = e.lbc(3, "apply", "--adopt", "specs")
	e.servesTLS(vip1, "shop.example.com", shop, "n1")
	onHost, err := os.ReadFile(filepath.Join(dev.StateDir, "certs/shop.pem"))
	if err != nil || !strings.HasPrefix(string(onHost), string(testcert.CertPEM(shop.Cert))) {
		t.Errorf("after the failed rotation the host has another certificate (%v)", err)
	}
	os.Remove(filepath.Join(dev.Dir, "steps.fail"))
	// A rotation that HAProxy refuses rolls back: held at the runtime
	// step, the swapped bundle is replaced by one whose key does not
	// match; commit ssl cert fails, txn.sh sets the old one again.
	e.failCommit(dev, shop2.CertPEM(), shop.KeyPEM())
	e.servesTLS(vip1, "shop.example.com", shop, "n1")
	if got := e.workerPid(dev); got != pid {
		t.Errorf("worker pid %d after the failed rotations, was %d", got, pid)
	}
	// The rotation: served after apply by the same worker, and no request
	// of a loop running through the apply fails.
	ld := e.startTLSLoad(vip1, "shop.example.com")
	r = e.lbc(0, "apply", "--adopt", "specs")
	sent, failed, firstErr := ld()
	t.Logf("during the rotation: %d requests, %d failed (%v)", sent, failed, firstErr)
	if failed > 0 || sent == 0 {
		t.Errorf("%d of %d requests failed during the rotation (first: %v)", failed, sent, firstErr)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("at runtime, no reload: 1 operation(s); worker pid %d, the same before and after", pid)) {
		t.Errorf("apply does not report the rotation at runtime by worker %d\n%s", pid, r)
	}
	e.servesTLS(vip1, "shop.example.com", shop2, "n1")
	e.servesTLS(vip1, "api.example.com", api, "n2")
	if got := e.workerPid(dev); got != pid {
		t.Errorf("worker pid %d after the rotation, was %d", got, pid)
	}
	e.lbc(0, "plan", "--detailed-exitcode", "specs")

	// Hostile references fail before anything reaches a host, naming the
	// spec position.
	bad := strings.Replace(spec, `{name: "api", sni: ["api.example.com"]}`, `{name: "api", sni: ["www.example.org"]}`, 1)
	if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(dev.Config)
	r = e.lbc(1, "apply", "--adopt", "specs")
	if !strings.Contains(r.stderr, "balancers/web.cue:5:") || !strings.Contains(r.stderr, "host name www.example.org is not covered by its SANs") {
		t.Errorf("SAN mismatch: want a positioned error\n%s", r)
	}
	if after, _ := os.ReadFile(dev.Config); string(after) != string(before) {
		t.Error("a refused apply changed the host's config")
	}
	e.lbc(1, "validate", "specs")

	// The key-leak grep: every output, the saved plan, the host's state.
	saved, _ := os.ReadFile(planFile)
	state, _ := os.ReadFile(filepath.Join(dev.StateDir, "state.json"))
	all := append(e.outputs, string(saved), string(state))
	for _, lf := range []*testcert.Leaf{shop, shop2, api} {
		for _, secret := range keyBody(lf) {
			for i, out := range all {
				if strings.Contains(out, secret) {
					t.Errorf("output %d holds a private key's bytes", i)
				}
			}
		}
	}
	for i, out := range all {
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("output %d holds PRIVATE KEY:\n%s", i, out)
		}
	}
}

// bundleOf is the bundle lbc ships for a leaf (certificate, chain, key),
// as certsrc writes it.
func bundleOf(l *testcert.Leaf) []byte { return l.Bundle() }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// workerPid is the pid of dev's HAProxy worker (show info).
func (e *tlsEnv) workerPid(dev lab.Device) int {
	e.t.Helper()
	for _, l := range strings.Split(lab.StatsQuery(e.t, filepath.Join(dev.StateDir, "haproxy.sock"), "show info"), "\n") {
		if p, ok := strings.CutPrefix(l, "Pid: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err == nil {
				return n
			}
		}
	}
	e.t.Fatal("show info: no Pid")
	return 0
}

// failCommit applies the specs with the device held at the runtime step
// while its swapped shop bundle is replaced by cert + key (not a pair):
// HAProxy refuses the commit, and apply must roll back (exit 3).
func (e *tlsEnv) failCommit(dev lab.Device, cert, key []byte) {
	e.t.Helper()
	if err := dev.ClearSteps(); err != nil {
		e.t.Fatal(err)
	}
	if err := dev.PauseAt("runtime"); err != nil {
		e.t.Fatal(err)
	}
	defer dev.Resume()
	done := make(chan lbcResult, 1)
	go func() {
		r, _ := runLBCEnv(e.gitopsEnv.lbc, e.tmp, []string{"LBC_TRACE=1"}, append(append([]string{"apply", "--cert-dir", e.certs}, e.sshFlags()...), "--adopt", "specs")...)
		done <- r
	}()
	if _, err := dev.WaitStep("runtime", 60*time.Second); err != nil {
		dev.Resume()
		select {
		case r := <-done:
			e.t.Fatalf("%v\n%s", err, r)
		case <-time.After(90 * time.Second):
			e.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dev.StateDir, "certs/shop.pem"), append(append([]byte{}, cert...), key...), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := dev.Resume(); err != nil {
		e.t.Fatal(err)
	}
	var r lbcResult
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		e.t.Fatal("apply did not end within 90 s of the resume")
	}
	e.outputs = append(e.outputs, r.stdout, r.stderr)
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "inconsistencies between private key and certificate") {
		e.t.Errorf("the refused commit: want exit 3 saying why\n%s", r)
	}
}

// startTLSLoad sends HTTPS requests to host through vip, one after the
// other, until the returned function is called (or 2,000 requests, or
// 120 s); that function returns how many were sent, how many failed and
// the first failure.
func (e *tlsEnv) startTLSLoad(vip, host string) func() (int, int, error) {
	stop := make(chan struct{})
	type tally struct {
		sent, failed int
		first        error
	}
	out := make(chan tally, 1)
	go func() {
		var t tally
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		for t.sent < 2000 && ctx.Err() == nil {
			select {
			case <-stop:
				out <- t
				return
			default:
			}
			_, _, resp, err := e.get(ctx, vip, host)
			t.sent++
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
			if err != nil {
				t.failed++
				if t.first == nil {
					t.first = err
				}
			}
		}
		<-stop
		out <- t
	}()
	return func() (int, int, error) {
		close(stop)
		t := <-out
		return t.sent, t.failed, t.first
	}
}

// fingerprint is the SHA-256 of a certificate's DER, in hex.
func fingerprint(l *testcert.Leaf) string {
	sum := sha256.Sum256(l.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// keyBody are the base64 lines of a key's PEM body (each long enough to
// be the key's own).
func keyBody(l *testcert.Leaf) []string {
	var out []string
	for _, line := range strings.Split(string(l.KeyPEM()), "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

// checkRedirect: http://vip/ answers a 301 to https.
func checkRedirect(t *testing.T, vip string) {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + vip + "/some/path")
	if err != nil {
		t.Fatalf("http redirect: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://"+vip+"/some/path" {
		t.Errorf("http redirect: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
}
