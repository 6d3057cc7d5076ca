package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/internal/testkit/testproc"
	"lbc/reconcile"
)

// watchWait bounds every wait for lbc watch's output.
const watchWait = 30 * time.Second

// wNode is a lab node (1-based) and its weight in the balancer.
type wNode struct{ node, weight int }

// sshAccepts counts the connections device dev's sshd accepted so far
// ("Accepted publickey" lines of the sshd.log the lab has it write).
func sshAccepts(t *testing.T, l *lab.Lab, dev int) int {
	t.Helper()
	b, err := l.ReadFile(dev, "sshd.log")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey for ")
}

// TestWatchApply runs `lbc watch DIR --apply` as a real process against a
// lab of two devices: every good edit of the specs is applied to the host
// (its haproxy.cfg, traffic through the VIP in the new weight ratio), an
// invalid edit is reported with its place and leaves the host alone, and
// SIGINT stops the watch cleanly with the device locks free. The watch uses
// one SSH connection a device for all its cycles.
func TestWatchApply(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 2, Nodes: 3})
	l, tmp, bin := g.l, g.tmp, g.lbc
	d1, d2 := l.Devices[0], l.Devices[1]
	webFile := filepath.Join(specs, "balancers", "web.cue")
	// writeWeb writes web (VIP 1, pinned to d1, round robin over nodes) and
	// api (VIP 2, pinned to d2, n3 alone), and returns the file's text.
	writeWeb := func(nodes ...wNode) string {
		t.Helper()
		var b strings.Builder
		b.WriteString("package spec\n\nbalancers: web: {\n\ttenant: \"watch\"\n\tprotocol: \"http\"\n\talgorithm: \"roundrobin\"\n")
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", l.VIP(1))
		for _, x := range nodes {
			n := l.Nodes[x.node-1]
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: %d},\n", n.Address, n.Port, x.weight)
		}
		b.WriteString("\t]\n\thealthMonitor: {type: \"http\", path: \"/\", expect: 200, interval: \"1s\"}\n")
		fmt.Fprintf(&b, "\tplacement: device: %q\n}\n\n", d1.Name)
		b.WriteString("balancers: api: {\n\ttenant: \"watch\"\n\tprotocol: \"http\"\n")
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n", l.VIP(2))
		n3 := l.Nodes[2]
		fmt.Fprintf(&b, "\tnodes: [{address: %q, port: %d}]\n", n3.Address, n3.Port)
		b.WriteString("\thealthMonitor: {type: \"http\", path: \"/\", expect: 200, interval: \"1s\"}\n")
		fmt.Fprintf(&b, "\tplacement: device: %q\n}\n", d2.Name)
		if err := os.WriteFile(webFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	// hasWeights checks that d1's haproxy.cfg gives every node its weight.
	hasWeights := func(nodes ...wNode) []byte {
		t.Helper()
		cfg, err := l.ReadFile(1, d1.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range nodes {
			n := l.Nodes[x.node-1]
			re := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*server \S+ %s weight %d\b`,
				regexp.QuoteMeta(fmt.Sprintf("%s:%d", n.Address, n.Port)), x.weight))
			if !re.Match(cfg) {
				t.Errorf("%s: no server line for %s with weight %d:\n%s", d1.Config, n.Name, x.weight, cfg)
			}
		}
		return cfg
	}
	// ratio sends 60 requests through VIP 1, one after another, and checks
	// that the nodes answered in the ratio of their weights (±6 requests
	// each, a tenth of them; round robin is exact to within one or two).
	ratio := func(step string, nodes ...wNode) {
		t.Helper()
		const total = 60
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		url := fmt.Sprintf("http://%s/", l.VIP(1))
		seen := map[string]int{}
		for i := 0; i < total; i++ {
			body, err := l.Get(ctx, url)
			if err != nil {
				t.Fatalf("%s: request %d through %s: %v (answers so far %v)", step, i+1, url, err, seen)
			}
			seen[body]++
		}
		sum := 0
		for _, x := range nodes {
			sum += x.weight
		}
		want := map[string]float64{}
		for _, x := range nodes {
			want[l.Nodes[x.node-1].Name] = float64(total*x.weight) / float64(sum)
		}
		t.Logf("%s: %d requests through VIP 1: answers %v, want about %v", step, total, seen, want)
		for name, n := range seen {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: %s answered %d requests, want only %v", step, name, n, want)
			}
		}
		for name, w := range want {
			if d := float64(seen[name]) - w; d > 6 || d < -6 {
				t.Errorf("%s: %s answered %d of %d requests, want %.0f±6 (weights %v)", step, name, seen[name], total, w, nodes)
			}
		}
	}
	flags := g.sshFlags()
	applyArgs := append(append([]string{"apply", "--adopt"}, flags...), "specs")

	// 1. The tree, applied once with the CLI.
	w111 := []wNode{{1, 1}, {2, 1}, {3, 1}}
	writeWeb(w111...)
	g.must(0, tmp, applyArgs...)
	g.serves(1, "n1", "n2", "n3")
	g.serves(2, "n3")
	hasWeights(w111...)
	ratio("after lbc apply", w111...)
	cfg2, err := l.ReadFile(2, d2.Config)
	if err != nil {
		t.Fatal(err)
	}

	// 2. lbc watch --apply, as a process.
	accepts := []int{sshAccepts(t, l, 1), sshAccepts(t, l, 2)}
	watchArgs := append([]string{"watch", "specs", "--apply", "--adopt"}, flags...)
	p := testproc.Start(t, tmp, 5*time.Minute, watchWait, []string{"NO_COLOR=1", "SSH_AUTH_SOCK="}, bin, watchArgs...)
	// The first cycle plans against the hosts: nothing to apply.
	first := p.WaitFor(`^Plan \(revision none\): 0 to change, 2 unchanged, 0 unreachable\.\n`,
		`^\d\d:\d\d:\d\d\.\d{3} interval\n`)
	if strings.Contains(first, "error") {
		t.Errorf("first cycle printed an error:\n%s", first)
	}
	time.Sleep(500 * time.Millisecond) // a plan that applied would print now
	if r := p.Rest(); strings.Contains(r, "applied") {
		t.Errorf("the first cycle applied over what lbc apply just applied:\n%s", r)
	}

	// 3. A weight edit is applied to d1, and only there.
	w123 := []wNode{{1, 1}, {2, 2}, {3, 3}}
	start := time.Now()
	writeWeb(w123...)
	chunk := p.WaitFor(`^apply: 1 applied, \d+ unchanged, 0 rolled back, 0 failed, 0 skipped`,
		`^\d\d:\d\d:\d\d\.\d{3} change in balancers\n`,
		`^\s*\+\s*server \S+ `+regexp.QuoteMeta(l.Nodes[2].Address.String())+`:8080 weight 3 check$`,
		`^`+regexp.QuoteMeta(d1.Name)+`: applied$`,
		`^`+regexp.QuoteMeta(d2.Name)+`: unchanged$`)
	t.Logf("edit 1:1:1 → 1:2:3 applied by watch %v after the write", time.Since(start).Round(time.Millisecond))
	if strings.Contains(chunk, d2.Name+": applied") {
		t.Errorf("an edit of web (on %s) applied %s:\n%s", d1.Name, d2.Name, chunk)
	}
	good := hasWeights(w123...)
	ratio("after watch applied 1:2:3", w123...)

	// While watch waits for the next change, it holds no device lock:
	// another apply of the same tree runs at once (no --lock-timeout).
	before := []int{sshAccepts(t, l, 1), sshAccepts(t, l, 2)}
	mark := len(p.Stdout())
	r := g.must(0, tmp, applyArgs...)
	if !strings.Contains(r.stdout, "nothing to apply") {
		t.Errorf("apply while watch is idle: want nothing to apply\n%s", r)
	}
	if out := p.Stdout()[mark:]; out != "" {
		t.Errorf("watch printed while another apply ran (no change was made):\n%s", out)
	}
	// That apply's connections are not the watch's.
	for i := range accepts {
		accepts[i] += sshAccepts(t, l, i+1) - before[i]
	}

	// 4. An invalid edit: its error with its place under specs/, the last
	// good result kept, the host untouched.
	text := writeWeb(wNode{1, 1}, wNode{2, 999}, wNode{3, 3})
	line := 0
	for i, s := range strings.Split(text, "\n") {
		if strings.Contains(s, "weight: 999") {
			line = i + 1
		}
	}
	state1, err := l.ReadFile(1, filepath.Join(d1.StateDir, reconcile.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	chunk = p.WaitFor(`^\d\d:\d\d:\d\d\.\d{3} invalid specs: keeping the last good result\n`,
		fmt.Sprintf(`^specs/balancers/web\.cue:%d:\d+: balancers\.web\.nodes\[1\]\.weight: invalid value 999`, line))
	if strings.Contains(chunk, "applied") {
		t.Errorf("an invalid edit applied something:\n%s", chunk)
	}
	time.Sleep(time.Second) // nothing more may happen
	if out := p.Rest(); out != "" {
		t.Errorf("watch printed more after the invalid edit:\n%s", out)
	}
	if cfg, _ := l.ReadFile(1, d1.Config); !bytes.Equal(cfg, good) {
		t.Errorf("%s changed after an invalid edit:\n%s", d1.Config, cfg)
	}
	if st, _ := l.ReadFile(1, filepath.Join(d1.StateDir, reconcile.StateFile)); !bytes.Equal(st, state1) {
		t.Errorf("%s state changed after an invalid edit:\n%s", d1.Name, st)
	}
	ratio("after the invalid edit", w123...)

	// 5. The fix, with yet other weights: applied, traffic follows.
	w411 := []wNode{{1, 4}, {2, 1}, {3, 1}}
	start = time.Now()
	writeWeb(w411...)
	chunk = p.WaitFor(`^apply: 1 applied, \d+ unchanged, 0 rolled back, 0 failed, 0 skipped`,
		`^`+regexp.QuoteMeta(d1.Name)+`: applied$`)
	t.Logf("fix to 4:1:1 applied by watch %v after the write", time.Since(start).Round(time.Millisecond))
	if strings.Contains(chunk, "invalid") || strings.Contains(chunk, "error") {
		t.Errorf("the fix printed an error:\n%s", chunk)
	}
	hasWeights(w411...)
	ratio("after watch applied 4:1:1", w411...)
	if cfg, _ := l.ReadFile(2, d2.Config); !bytes.Equal(cfg, cfg2) {
		t.Errorf("%s: haproxy.cfg changed, but no edit concerned it:\n%s", d2.Name, cfg)
	}

	// One connection a device for the whole watch (three plans, two
	// applies), not counting the apply run beside it.
	for i, d := range l.Devices {
		if n := sshAccepts(t, l, i+1) - accepts[i]; n != 1 {
			t.Errorf("%s: lbc watch opened %d SSH connections over its cycles, want 1", d.Name, n)
		}
	}

	// A connection that died (its sshd session killed) is dialled anew
	// on the next cycle, once.
	if err := l.KillSSHSessions(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	killed := []int{sshAccepts(t, l, 1), sshAccepts(t, l, 2)}
	w211 := []wNode{{1, 2}, {2, 1}, {3, 1}}
	writeWeb(w211...)
	p.WaitFor(`^apply: 1 applied, \d+ unchanged, 0 rolled back, 0 failed, 0 skipped`,
		`^`+regexp.QuoteMeta(d1.Name)+`: applied$`)
	hasWeights(w211...)
	ratio("after watch applied 2:1:1 over a new connection", w211...)
	for i, d := range l.Devices {
		want := 0
		if i == 0 {
			want = 1
		}
		if n := sshAccepts(t, l, i+1) - killed[i]; n != want {
			t.Errorf("%s: lbc watch opened %d SSH connections in the cycle after %s's were cut, want %d", d.Name, n, d1.Name, want)
		}
	}

	// 6. SIGINT: exit 0 within 5 s, "watch: stopped", the locks free.
	start = time.Now()
	err = p.Stop(os.Interrupt)
	t.Logf("lbc watch exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("lbc watch after SIGINT: %v, want exit 0", err)
	}
	if !strings.Contains(p.Stderr(), "watch: stopped\n") {
		t.Errorf("lbc watch stderr lacks \"watch: stopped\":\n%s", p.Stderr())
	}
	r = g.must(0, tmp, applyArgs...)
	if !strings.Contains(r.stdout, "nothing to apply") {
		t.Errorf("apply after watch stopped: want nothing to apply\n%s", r)
	}
}
