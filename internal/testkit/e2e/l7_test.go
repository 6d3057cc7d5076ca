package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
)

// l7Client sends requests from the root namespace to a VIP with a chosen
// Host, headers and cookies, without following redirects and without
// keep-alive (each request a new connection, as lab.Get).
var l7Client = &http.Client{
	Timeout: 3 * time.Second,
	Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableKeepAlives: true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// l7Req is one request a test sends and what it must get: a node's name
// (status 200), or a status and a Location.
type l7Req struct {
	name     string
	host     string
	path     string
	header   [2]string // name, value
	cookie   [2]string
	node     string // the node that must answer (200)
	status   int    // otherwise: this status
	location string // and this Location
}

func (r l7Req) send(ctx context.Context, vip string) (status int, body, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+vip+r.path, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Host = r.host
	if r.header[0] != "" {
		req.Header.Set(r.header[0], r.header[1])
	}
	if r.cookie[0] != "" {
		req.AddCookie(&http.Cookie{Name: r.cookie[0], Value: r.cookie[1]})
	}
	resp, err := l7Client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), resp.Header.Get("Location"), nil
}

// expect sends r until it gets what it wants (a pool's node may need its
// first health check: at most 15 s), then 5 more times, each of which
// must get it too.
func (r l7Req) expect(t *testing.T, vip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok := func(status int, body, loc string) bool {
		if r.node != "" {
			return status == 200 && body == r.node
		}
		return status == r.status && loc == r.location
	}
	start := time.Now()
	for {
		st, body, loc, err := r.send(ctx, vip)
		if err == nil && ok(st, body, loc) {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("%s: got status %d body %q location %q err %v; want node %q or status %d location %q",
				r.name, st, body, loc, err, r.node, r.status, r.location)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		st, body, loc, err := r.send(ctx, vip)
		if err != nil || !ok(st, body, loc) {
			t.Fatalf("%s (repeat %d): got status %d body %q location %q err %v", r.name, i, st, body, loc, err)
		}
	}
}

// once sends r once: it must get what it wants at the first try.
func (r l7Req) once(t *testing.T, vip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, body, loc, err := r.send(ctx, vip)
	if err != nil || (r.node != "" && (st != 200 || body != r.node)) || (r.node == "" && (st != r.status || loc != r.location)) {
		t.Errorf("%s: got status %d body %q location %q err %v; want node %q", r.name, st, body, loc, err, r.node)
	}
}

// workerPid is the pid of the HAProxy worker of the lab's first device.
func workerPid(t *testing.T, l *lab.Lab) string {
	t.Helper()
	for _, line := range strings.Split(lab.StatsQuery(t, filepath.Join(l.Devices[0].StateDir, "haproxy.sock"), "show info"), "\n") {
		if p, ok := strings.CutPrefix(line, "Pid: "); ok {
			return p
		}
	}
	t.Fatal("show info has no Pid")
	return ""
}

// TestL7Routing applies a balancer with pools, rules of every kind and a
// host table to a lab device with the real lbc binary, and checks where
// requests through the one VIP go: each lab node answers with its name.
// Then a host table of 10,000 entries (a reload), then 100 of them
// changed at runtime (no reload: the same worker; the moved hosts reach
// their new pool on the first request after the apply), then 100 more
// whose commit map fails (rolled back: the old entries run); then a spec
// with hostile rule values is refused with positions and nothing on the
// host changes.
func TestL7Routing(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 1, Nodes: 4, StepLog: true})
	l, tmp := g.l, g.tmp
	n := func(i int) lab.Node { return l.Nodes[i-1] }
	node := func(i int) string { return fmt.Sprintf("{address: %q, port: %d}", n(i).Address, n(i).Port) }
	vip := l.VIP(1).String()
	file := filepath.Join(specs, "balancers", "shop.cue")
	write := func(hosts string) {
		t.Helper()
		spec := fmt.Sprintf(`package spec

balancers: shop: {
	vips: [{address: %q, port: 80}]
	nodes: [%s]
	healthMonitor: {type: "http", path: "/", interval: "1s"}
	placement: device: %q
	pools: {
		api: {nodes: [%s], healthMonitor: {type: "http", path: "/", interval: "1s"}}
		blue: {nodes: [%s], healthMonitor: {type: "http", path: "/", interval: "1s"}}
		beta: {nodes: [%s], healthMonitor: {type: "http", path: "/", interval: "1s"}}
	}
	rules: [
		{match: [{path: prefix: "/admin"}], reject: true},
		{match: [{path: exact: "/old"}], redirect: {location: "https://www.example.com/new", code: 301}},
		{match: [{host: exact: "shop.example.net"}], redirect: {prefix: "https://shop.example.com", code: 308}},
		{match: [{path: prefix: "/api/"}, {header: {name: "X-Env", exact: "beta"}, not: true}], pool: "api"},
		{match: [{cookie: {name: "beta", exact: "1"}}], pool: "beta"},
		{match: [{header: {name: "X-Pool", exact: "blue"}}], pool: "blue"},
		{match: [{path: regex: "^/v[0-9]+/api"}], pool: "api"},
		{match: [{host: exact: "[2001:db8::1]"}], pool: "blue"},
		{match: [{fileType: ["png"]}], reject: true},
	]
	hosts: {%s}
}
`, vip, node(1), l.Devices[0].Name, node(2), node(3), node(4), hosts)
		if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func() lbcResult {
		t.Helper()
		return g.must(0, tmp, append(append([]string{"apply", "--adopt"}, g.sshFlags()...), "specs")...)
	}
	write(`"blue.example.com": "blue", "api.example.com": "api"`)
	// The first plan shows every rule and host entry as added.
	plan := g.must(2, tmp, append(append([]string{"plan", "--markdown", "--detailed-exitcode"}, g.sshFlags()...), "specs")...)
	for _, want := range []string{
		"+rule shop: path prefix /admin -> reject 403\n",
		"+rule shop: path prefix /api/ and not header X-Env exact beta -> pool api\n",
		"+host blue.example.com -> be_shop:blue\n",
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan --markdown lacks %q\n%s", want, plan)
		}
	}
	apply()
	for _, r := range []l7Req{
		{name: "default", host: "www.example.com", path: "/", node: n(1).Name},
		{name: "host table", host: "blue.example.com", path: "/", node: n(3).Name},
		{name: "host table, port and case", host: "API.Example.com:80", path: "/x", node: n(2).Name},
		{name: "path prefix", host: "www.example.com", path: "/api/users", node: n(2).Name},
		{name: "path prefix, header not", host: "www.example.com", path: "/api/users", header: [2]string{"X-Env", "beta"}, node: n(1).Name},
		{name: "cookie", host: "www.example.com", path: "/", cookie: [2]string{"beta", "1"}, node: n(4).Name},
		{name: "cookie other value", host: "www.example.com", path: "/", cookie: [2]string{"beta", "2"}, node: n(1).Name},
		{name: "header", host: "www.example.com", path: "/", header: [2]string{"X-Pool", "blue"}, node: n(3).Name},
		{name: "rule before host table", host: "blue.example.com", path: "/api/x", node: n(2).Name},
		{name: "regex", host: "www.example.com", path: "/v2/api/x", node: n(2).Name},
		// An IPv6 literal Host keeps its brackets; only the port is cut.
		{name: "IPv6 literal host", host: "[2001:db8::1]", path: "/", node: n(3).Name},
		{name: "IPv6 literal host, port and case", host: "[2001:DB8::1]:8080", path: "/", node: n(3).Name},
		{name: "reject", host: "www.example.com", path: "/admin/x", status: 403},
		{name: "reject first, before a pool rule", host: "www.example.com", path: "/admin", cookie: [2]string{"beta", "1"}, status: 403},
		{name: "file type, any case", host: "www.example.com", path: "/img/a.PNG", status: 403},
		{name: "pool rule before a later reject wins", host: "www.example.com", path: "/api/a.png", node: n(2).Name},
		{name: "redirect location", host: "www.example.com", path: "/old", status: 301, location: "https://www.example.com/new"},
		{name: "redirect prefix", host: "shop.example.net", path: "/a?b=1", status: 308, location: "https://shop.example.com/a?b=1"},
	} {
		r.expect(t, vip)
	}

	// A host table of 10,000 entries, then 100 of them moved to another pool.
	table := func(moved int) string {
		var b strings.Builder
		for i := 0; i < 10000; i++ {
			pool := "blue"
			if i%2 == 1 {
				pool = "beta"
			}
			if i < moved {
				pool = "api"
			}
			fmt.Fprintf(&b, "\"h%d.example.com\": %q, ", i, pool)
		}
		return b.String()
	}
	mapPath := filepath.Join(filepath.Dir(l.Devices[0].Config), "lbc-hosts-shop.map")
	write(table(0))
	start := time.Now()
	apply()
	t.Logf("10,000-entry host table applied in %v", time.Since(start).Round(time.Millisecond))
	l7Req{name: "table entry 0", host: "h0.example.com", path: "/", node: n(3).Name}.expect(t, vip)
	l7Req{name: "table entry 9999", host: "h9999.example.com", path: "/", node: n(4).Name}.expect(t, vip)
	write(table(100))
	// The plan shows the host entries moved, in text and in --json.
	plan = g.must(2, tmp, append(append([]string{"plan", "--detailed-exitcode"}, g.sshFlags()...), "specs")...)
	for _, want := range []string{
		"  ~ host h0.example.com: be_shop:blue -> be_shop:api\n",
		"  ~ host h1.example.com: be_shop:beta -> be_shop:api\n",
		"  ~ hosts " + filepath.Join(filepath.Dir(l.Devices[0].Config), "lbc-hosts-shop.map") + ": 0 added, 0 removed, 100 moved (10000 entries)\n",
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan lacks %q\n%s", want, plan)
		}
	}
	if js := g.must(2, tmp, append(append([]string{"plan", "--json", "--detailed-exitcode"}, g.sshFlags()...), "specs")...); !strings.Contains(js.stdout, `"routing":["~host h0.example.com: be_shop:blue -\u003e be_shop:api",`) {
		t.Errorf("plan --json lacks the routing lines\n%.3000s", js.stdout)
	}
	if !strings.Contains(plan.stdout, "haproxy.cfg: runtime, 1 runtime operation(s), no reload:\n    map "+mapPath+": 0 added, 0 removed, 100 changed (loads 10000 entries") {
		t.Errorf("plan does not show the runtime map load\n%s", plan)
	}
	pid := workerPid(t, l)
	start = time.Now()
	r100 := apply()
	t.Logf("100 entries of 10,000 changed in %v", time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("at runtime, no reload: 1 operation(s); worker pid %s, the same before and after", pid); !strings.Contains(r100.stdout, want) {
		t.Errorf("apply output lacks %q\n%s", want, r100)
	}
	if now := workerPid(t, l); now != pid {
		t.Errorf("the worker changed: pid %s, %s before", now, pid)
	}
	// Right after the apply: the first request for each moved host
	// reaches the new pool, the hosts not moved stay where they were.
	for _, i := range []int{0, 1, 50, 99} {
		l7Req{name: fmt.Sprintf("moved entry %d", i), host: fmt.Sprintf("h%d.example.com", i), path: "/", node: n(2).Name}.once(t, vip)
	}
	l7Req{name: "entry 100 stays", host: "h100.example.com", path: "/", node: n(3).Name}.once(t, vip)
	l7Req{name: "entry 101 stays", host: "h101.example.com", path: "/", node: n(4).Name}.once(t, vip)
	l7Req{name: "entry 9999 stays", host: "h9999.example.com", path: "/", node: n(4).Name}.once(t, vip)

	// 100 more moved, and the commit map on the stats socket fails: the
	// change rolls back, the old file and its entries run, the same
	// worker; the next plan is the same change.
	write(table(200))
	again := g.must(2, tmp, append(append([]string{"plan", "--detailed-exitcode"}, g.sshFlags()...), "specs")...)
	if err := l.Devices[0].FailCLI("commit map"); err != nil {
		t.Fatal(err)
	}
	rb := g.must(3, tmp, append(append([]string{"apply"}, g.sshFlags()...), "specs")...)
	if !l.Devices[0].CLIFailed() {
		t.Error("the injected commit map failure never fired")
	}
	if !strings.Contains(rb.stderr, "stats socket: commit map @") || !strings.Contains(rb.stderr, "lab: injected failure of nc.openbsd: commit map") {
		t.Errorf("apply does not say the commit map failed\n%s", rb)
	}
	if now := workerPid(t, l); now != pid {
		t.Errorf("the worker changed in the rollback: pid %s, %s before", now, pid)
	}
	if after, err := l.ReadFile(1, mapPath); err != nil || !strings.Contains(string(after), "h150.example.com be_shop:blue\n") {
		t.Errorf("the host table on the host is not the old one (err %v)", err)
	}
	l7Req{name: "entry 150 not moved (rolled back)", host: "h150.example.com", path: "/", node: n(3).Name}.once(t, vip)
	l7Req{name: "entry 50 still moved", host: "h50.example.com", path: "/", node: n(2).Name}.once(t, vip)
	if p := g.must(2, tmp, append(append([]string{"plan", "--detailed-exitcode"}, g.sshFlags()...), "specs")...); p.stdout != again.stdout {
		t.Errorf("after the rollback the plan differs:\n%s\nbefore:\n%s", p, again)
	}
	apply()
	l7Req{name: "entry 150 moved", host: "h150.example.com", path: "/", node: n(2).Name}.once(t, vip)

	// Hostile values: refused with their positions, nothing written.
	before := g.snapshot()
	mapBefore, err := l.ReadFile(1, mapPath)
	if err != nil {
		t.Fatal(err)
	}
	hostile := fmt.Sprintf(`package spec

balancers: shop: {
	vips: [{address: %q, port: 80}]
	nodes: [%s]
	placement: device: %q
	rules: [
		{match: [{path: prefix: "/a\nlua-load /tmp/x.lua"}], reject: true},
		{match: [{path: prefix: "/a#b"}], reject: true},
		{match: [{header: {name: "X-A", exact: "\"q\""}}], reject: true},
		{match: [{header: {name: "X-A", exact: "${HOME}"}}], reject: true},
		{match: [{path: contains: "a b"}], reject: true},
	]
}
balancers: shop2: {
	vips: [{address: %q, port: 80}]
	nodes: [%s]
	placement: device: %q
	rules: [{match: [{path: regex: "^/(a+)+b"}], reject: true}, {match: [{path: regex: "^/(a|aa)*b"}], reject: true}]
}
`, vip, node(1), l.Devices[0].Name, l.VIP(2), node(1), l.Devices[0].Name)
	if err := os.WriteFile(file, []byte(hostile), 0o644); err != nil {
		t.Fatal(err)
	}
	r := g.must(1, tmp, append(append([]string{"apply", "--adopt"}, g.sshFlags()...), "specs")...)
	for _, want := range []string{
		`balancers/shop.cue:8:27: balancers.shop.rules[0].match[0].path.prefix: invalid value`,
		`balancers/shop.cue:9:27: balancers.shop.rules[1].match[0].path.prefix: invalid value "/a#b"`,
		`balancers/shop.cue:10:42: balancers.shop.rules[2].match[0].header.exact: invalid value`,
		`balancers/shop.cue:11:42: balancers.shop.rules[3].match[0].header.exact: invalid value "${HOME}"`,
		`balancers/shop.cue:12:29: balancers.shop.rules[4].match[0].path.contains: invalid value "a b"`,
		`balancers/shop.cue:19:33: balancers.shop2.rules[0].match[0].path.regex: regular expression "^/(a+)+b" has a repetition inside a repetition`,
		`balancers/shop.cue:19:85: balancers.shop2.rules[1].match[0].path.regex: regular expression "^/(a|aa)*b" has an alternation inside a repetition`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q\n%s", want, r)
		}
	}
	if regexp.MustCompile(`(?m)^apply `).MatchString(r.stdout + r.stderr) {
		t.Errorf("apply reached a device:\n%s", r)
	}
	g.expectSnapshot(before)
	if after, err := l.ReadFile(1, mapPath); err != nil || string(after) != string(mapBefore) {
		t.Errorf("the host table changed on the host (err %v)", err)
	}
}
