package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/reconcile"
)

// shardBal is one balancer of the sharding test: a VIP of the lab in front
// of some nodes, an HA pair when ha.
type shardBal struct {
	name   string
	vip    int
	nodes  []int // 1-based
	weight int   // of the first node
	ha     bool
}

func (g *gitopsEnv) writeShardSpec(dir string, bals []shardBal) {
	g.t.Helper()
	var b strings.Builder
	b.WriteString("package spec\n\n")
	for _, x := range bals {
		fmt.Fprintf(&b, "balancers: %q: {\n\ttenant: \"shard\"\n\tprotocol: \"http\"\n", x.name)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", g.l.VIP(x.vip))
		for j, i := range x.nodes {
			n := g.l.Nodes[i-1]
			w := 1
			if j == 0 {
				w = x.weight
			}
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: %d},\n", n.Address, n.Port, w)
		}
		b.WriteString("\t]\n\thealthMonitor: {type: \"http\", path: \"/\", expect: 200, interval: \"1s\"}\n")
		if x.ha {
			b.WriteString("\tplacement: {ha: true, zones: [\"az-a\", \"az-b\"]}\n")
		}
		b.WriteString("}\n\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "specs", "balancers", "apps.cue"), []byte(b.String()), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// hostState is what an apply leaves on a device, without the times and
// the history (which say when, not what).
type hostState struct {
	Config, Keepalived string
	Revision           string
	ConfigSHA256       string
	KeepalivedSHA256   string
	VIPs               []string
	Addresses          []string // the lab's VIP addresses on eth0, but those skipped
}

// hostStates reads every device's haproxy.cfg, keepalived.conf, state.json
// and VIP addresses (but those in skip).
func (g *gitopsEnv) hostStates(ctx context.Context, skip map[netip.Addr]bool) map[string]hostState {
	g.t.Helper()
	out := map[string]hostState{}
	for i, d := range g.l.Devices {
		var h hostState
		cfg, err := g.l.ReadFile(i+1, d.Config)
		if err != nil {
			g.t.Fatal(err)
		}
		h.Config = string(cfg)
		if ka, err := g.l.ReadFile(i+1, d.KeepalivedConfig); err == nil {
			h.Keepalived = string(ka)
		}
		s := g.state(i + 1)
		h.Revision, h.ConfigSHA256, h.KeepalivedSHA256, h.VIPs = s.Revision, s.ConfigSHA256, s.KeepalivedSHA256, s.VIPs
		addrs, err := g.l.Exec(ctx, i+1, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil {
			g.t.Fatal(err)
		}
		for _, line := range strings.Split(string(addrs), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			// lbc's VIPs; not the HA ones, which keepalived moves.
			if p, err := netip.ParsePrefix(f[3]); err == nil && g.l.VIPNetwork.Contains(p.Addr()) && !skip[p.Addr()] {
				h.Addresses = append(h.Addresses, f[3])
			}
		}
		slices.Sort(h.Addresses)
		out[d.Name] = h
	}
	return out
}

// applyLine is one line of lbc apply --json.
type applyLine struct {
	Device  string `json:"device"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	Summary string `json:"summary"`
}

// TestShardedApply: n copies of lbc apply --shard i/n, run at once as a CI
// matrix runs them, cover the fleet once (each device in exactly one
// shard's output, an HA pair in one shard) and leave the hosts exactly as
// one unsharded apply of the same revision from the same start does: the
// same haproxy.cfg and keepalived.conf, the same state, the same VIP
// addresses, the same traffic; an unsharded plan afterwards has nothing to
// do and status shows every device in sync.
func TestShardedApply(t *testing.T) {
	const shards = 3
	l := lab.ForTest(t, lab.Options{Devices: 6, Nodes: 3, Zones: []string{"az-a", "az-b"}, Keepalived: true})
	g := &gitopsEnv{t: t, l: l, tmp: t.TempDir()}
	g.lbc = gitopsBuild(t, g.tmp)
	g.repo = filepath.Join(g.tmp, "repo")
	for _, d := range []string{"specs/devices", "specs/balancers"} {
		if err := os.MkdirAll(filepath.Join(g.repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WriteDevices(filepath.Join(g.repo, "specs", "devices", "lab.cue")); err != nil {
		t.Fatal(err)
	}
	g.git(g.repo, "init", "-q", "-b", "main")
	ctx := context.Background()

	// Revision A: six balancers, one of them an HA pair. Revision B
	// changes a weight or the nodes of each and adds one.
	var a, b []shardBal
	for i := 1; i <= 6; i++ {
		a = append(a, shardBal{name: fmt.Sprintf("app%d", i), vip: i, nodes: []int{1 + i%3}, weight: 1, ha: i == 6})
		b = append(b, shardBal{name: fmt.Sprintf("app%d", i), vip: i, nodes: []int{1 + i%3, 1 + (i+1)%3}, weight: 2, ha: i == 6})
	}
	b = append(b, shardBal{name: "app7", vip: 7, nodes: []int{1, 2, 3}, weight: 3})
	commit := func(msg string, bals []shardBal) string {
		g.writeShardSpec(g.repo, bals)
		g.must(0, g.repo, "compile", "-o", filepath.Join(g.tmp, "local-out"), "specs")
		g.git(g.repo, "add", "specs")
		g.git(g.repo, "commit", "-q", "-m", msg)
		return g.git(g.repo, "rev-parse", "HEAD")
	}
	haVIPs := map[netip.Addr]bool{l.VIP(6): true}
	revA := commit("A", a)
	revB := commit("B", b)
	serveAll := func(bals []shardBal) {
		t.Helper()
		for _, x := range bals {
			var want []string
			for _, n := range x.nodes {
				want = append(want, l.Nodes[n-1].Name)
			}
			g.serves(x.vip, want...)
		}
	}
	if r := g.ciApply(g.repo, revA); r.code != 0 {
		t.Fatalf("unsharded apply of A: want exit 0\n%s", r)
	}

	// What lbc shards says, to hold the applies to.
	var assigned [shards][]string
	sh := g.must(0, g.repo, "shards", "--git-rev", revB, "--count", fmt.Sprint(shards), "--json", "specs")
	for _, line := range strings.Split(strings.TrimSpace(sh.stdout), "\n") {
		if !strings.HasPrefix(line, `{"type":"shard",`) {
			continue
		}
		var s struct {
			Index   int      `json:"index"`
			Devices []string `json:"devices"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("lbc shards --json: %v\n%s", err, sh)
		}
		assigned[s.Index] = s.Devices
	}
	t.Logf("shards of B: %v", assigned)

	// B in three shards at once, as a CI matrix runs them.
	var wg sync.WaitGroup
	results := make([]lbcResult, shards)
	errs := make([]error, shards)
	start := time.Now()
	for i := range shards {
		wg.Go(func() {
			args := append([]string{"apply", "--git-rev", revB, "--locked", "--json", "--shard", fmt.Sprintf("%d/%d", i, shards)}, g.sshFlags()...)
			results[i], errs[i] = runLBC(g.lbc, g.repo, append(args, "--lock-timeout", "1m", "specs")...)
		})
	}
	wg.Wait()
	t.Logf("%d sharded applies of B at once: %v", shards, time.Since(start).Round(time.Millisecond))
	seen := map[string]int{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("shard %d: %v", i, errs[i])
		}
		if r.code != 0 {
			t.Fatalf("shard %d/%d: want exit 0\n%s", i, shards, r)
		}
		var devs []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var x applyLine
			if err := json.Unmarshal([]byte(line), &x); err != nil {
				t.Fatalf("shard %d: --json line %q: %v\n%s", i, line, err, r)
			}
			if x.Device == "" {
				continue
			}
			devs = append(devs, x.Device)
			if j, ok := seen[x.Device]; ok {
				t.Errorf("device %s applied by shards %d and %d", x.Device, j, i)
			}
			seen[x.Device] = i
			if x.Outcome != string(reconcile.OutcomeApplied) && x.Outcome != string(reconcile.OutcomeUnchanged) {
				t.Errorf("shard %d: %s: %s %s", i, x.Device, x.Outcome, x.Error)
			}
		}
		slices.Sort(devs)
		if !slices.Equal(devs, assigned[i]) {
			t.Errorf("shard %d applied %v, lbc shards says %v", i, devs, assigned[i])
		}
	}
	for _, d := range l.Devices {
		if _, ok := seen[d.Name]; !ok {
			t.Errorf("device %s in no shard's output", d.Name)
		}
	}
	pairs := 0
	for _, line := range strings.Split(g.git(g.repo, "show", revB+":specs/lbc.lock"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && !strings.HasPrefix(line, "#") {
			pairs++
			if seen[f[1]] != seen[f[2]] {
				t.Errorf("HA pair of %s split: %s in shard %d, %s in shard %d", f[0], f[1], seen[f[1]], f[2], seen[f[2]])
			}
		}
	}
	if pairs == 0 {
		t.Fatal("revision B has no HA pair: the test proves less than it says")
	}
	serveAll(b)
	sharded := g.hostStates(ctx, haVIPs)
	// An unsharded plan has nothing left to do; status sees the fleet in sync.
	g.must(0, g.repo, append(append([]string{"plan", "--git-rev", revB, "--detailed-exitcode"}, g.sshFlags()...), "specs")...)
	st := g.must(0, g.repo, append(append([]string{"status", "--git-rev", revB}, g.sshFlags()...), "specs")...)
	if n := strings.Count(st.stdout, " in-sync\n"); n != len(l.Devices) {
		t.Errorf("status after the sharded applies: %d devices in sync, want %d\n%s", n, len(l.Devices), st)
	}

	// The same from the same start, unsharded: back to A, then B.
	if r := g.ciApply(g.repo, revA, "--allow-downgrade"); r.code != 0 {
		t.Fatalf("back to A: want exit 0\n%s", r)
	}
	serveAll(a)
	if r := g.ciApply(g.repo, revB); r.code != 0 {
		t.Fatalf("unsharded apply of B: want exit 0\n%s", r)
	}
	serveAll(b)
	whole := g.hostStates(ctx, haVIPs)
	for _, d := range l.Devices {
		s, w := sharded[d.Name], whole[d.Name]
		if s.Config != w.Config {
			t.Errorf("%s: haproxy.cfg differs between the sharded and the unsharded apply:\n%s", d.Name, reconcile.UnifiedDiff("sharded", "unsharded", []byte(s.Config), []byte(w.Config)))
		}
		if s.Keepalived != w.Keepalived {
			t.Errorf("%s: keepalived.conf differs:\n%s", d.Name, reconcile.UnifiedDiff("sharded", "unsharded", []byte(s.Keepalived), []byte(w.Keepalived)))
		}
		s.Config, s.Keepalived, w.Config, w.Keepalived = "", "", "", ""
		if fmt.Sprint(s) != fmt.Sprint(w) {
			t.Errorf("%s: state after the sharded apply %+v, after the unsharded one %+v", d.Name, s, w)
		}
		if s.Revision != revB {
			t.Errorf("%s: state revision %s, want %s", d.Name, s.Revision, revB)
		}
	}
}

// runLBC runs the lbc binary in dir like gitopsEnv.run, but returns an
// error instead of failing the test, so that it may run on any goroutine.
func runLBC(bin, dir string, args ...string) (lbcResult, error) {
	return runLBCEnv(bin, dir, nil, args...)
}

// runLBCEnv is runLBC with env added to the environment.
func runLBCEnv(bin, dir string, env []string, args ...string) (lbcResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK="), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := lbcResult{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("lbc %s: %v (ctx %v)\n%s", strings.Join(args, " "), err, ctx.Err(), r)
	}
	return r, nil
}
