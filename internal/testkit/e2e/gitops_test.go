package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/lab"
	"lbc/internal/testkit/testproc"
	"lbc/reconcile"
)

// gitopsVersion is stamped into the lbc binary the GitOps test builds, so
// that the version a host's state records is provably the binary's.
const gitopsVersion = "0.0.0-gitops-e2e"

// gitopsBal is one balancer of the GitOps test spec: a VIP of the lab in
// front of some of its nodes.
type gitopsBal struct {
	name  string
	vip   int   // lab.VIP index
	nodes []int // lab node indices, 1-based
}

// gitopsEnv drives the real lbc binary and the git CLI against a lab: a
// repository whose specs/ holds the lab's devices, the balancers and
// lbc.lock, as the CI workflow (examples/ci/github-actions.yml) expects.
type gitopsEnv struct {
	t    *testing.T
	l    *lab.Lab
	lbc  string // the built binary
	repo string // worktree of the main repository
	tmp  string // scratch directory outside every repository
}

// labSpecTree starts a lab, builds lbc and writes a spec tree DIR/specs
// with the lab's devices in devices/lab.cue and an empty balancers/.
func labSpecTree(t *testing.T, o lab.Options) (*gitopsEnv, string) {
	l := lab.ForTest(t, o)
	tmp := t.TempDir()
	g := &gitopsEnv{t: t, l: l, lbc: gitopsBuild(t, tmp), tmp: tmp}
	specs := filepath.Join(tmp, "specs")
	for _, d := range []string{"devices", "balancers"} {
		if err := os.MkdirAll(filepath.Join(specs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WriteDevices(filepath.Join(specs, "devices", "lab.cue")); err != nil {
		t.Fatal(err)
	}
	return g, specs
}

// gitopsBuild builds cmd/lbc into dir and returns the binary's path.
func gitopsBuild(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information to find the module root")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	bin := filepath.Join(dir, "lbc")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X lbc/internal/version.Version="+gitopsVersion, "-o", bin, "./cmd/lbc")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/lbc: %v\n%s", err, out)
	}
	t.Logf("built lbc in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// git runs the git CLI in dir with a fixed identity and no user or system
// configuration, and returns its trimmed stdout.
func (g *gitopsEnv) git(dir string, args ...string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=lbc e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=lbc e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// lbcResult is one run of the lbc binary.
type lbcResult struct {
	args           []string
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r lbcResult) String() string {
	return fmt.Sprintf("lbc %s: exit %d in %v\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "),
		r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// run runs the lbc binary in dir, as a CI step would: stdout is not a
// terminal, NO_COLOR is set, and no ssh-agent is reachable.
func (g *gitopsEnv) run(dir string, args ...string) lbcResult {
	g.t.Helper()
	r, err := runLBC(g.lbc, dir, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

// must runs lbc and fails the test unless it exits with code.
func (g *gitopsEnv) must(code int, dir string, args ...string) lbcResult {
	g.t.Helper()
	r := g.run(dir, args...)
	if r.code != code {
		g.t.Fatalf("want exit %d\n%s", code, r)
	}
	return r
}

// sshFlags are the CI workflow's credential flags, pointing at the lab.
func (g *gitopsEnv) sshFlags() []string {
	return []string{"--ssh-key", g.l.KeyFile, "--known-hosts", g.l.KnownHosts}
}

// ciApply runs the apply step of the workflow in repository dir:
//
//	lbc apply --git-rev "$GITHUB_SHA" --locked --ssh-key ... --known-hosts ... \
//	  --parallelism 10 --lock-timeout 2m "$SPECS"
func (g *gitopsEnv) ciApply(dir, rev string, extra ...string) lbcResult {
	g.t.Helper()
	args := append([]string{"apply", "--adopt", "--git-rev", rev, "--locked"}, g.sshFlags()...)
	args = append(args, "--parallelism", "10", "--lock-timeout", "2m")
	args = append(args, extra...)
	return g.run(dir, append(args, "specs")...)
}

// writeBalancers writes specs/balancers/apps.cue of the worktree dir.
func (g *gitopsEnv) writeBalancers(dir string, bals ...gitopsBal) {
	g.t.Helper()
	var b strings.Builder
	b.WriteString("package spec\n\n")
	for _, x := range bals {
		fmt.Fprintf(&b, "balancers: %q: {\n\ttenant: \"gitops\"\n\tprotocol: \"http\"\n", x.name)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", g.l.VIP(x.vip))
		for _, i := range x.nodes {
			n := g.l.Nodes[i-1]
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d},\n", n.Address, n.Port)
		}
		b.WriteString("\t]\n\thealthMonitor: {type: \"http\", path: \"/\", expect: 200, interval: \"1s\"}\n}\n\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "specs", "balancers", "apps.cue"), []byte(b.String()), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// commit updates specs/ of the worktree dir to bals, refreshes lbc.lock
// the way a user does before pushing (lbc compile), commits, and returns
// the commit's full hash.
func (g *gitopsEnv) commit(dir, msg string, bals ...gitopsBal) string {
	g.t.Helper()
	g.writeBalancers(dir, bals...)
	g.must(0, dir, "compile", "-o", filepath.Join(g.tmp, "local-out"), "specs")
	g.git(dir, "add", "specs")
	g.git(dir, "commit", "-q", "--allow-empty", "-m", msg)
	return g.git(dir, "rev-parse", "HEAD")
}

// state reads device dev's state.json.
func (g *gitopsEnv) state(dev int) reconcile.State {
	g.t.Helper()
	b, err := g.l.ReadFile(dev, filepath.Join(g.l.Devices[dev-1].StateDir, reconcile.StateFile))
	if err != nil {
		g.t.Fatal(err)
	}
	var s reconcile.State
	if err := json.Unmarshal(b, &s); err != nil {
		g.t.Fatalf("%s: state.json: %v\n%s", g.l.Devices[dev-1].Name, err, b)
	}
	return s
}

// header parses device dev's haproxy.cfg header (and checks its content hash).
func (g *gitopsEnv) header(dev int) compiler.Header {
	g.t.Helper()
	b, err := g.l.ReadFile(dev, g.l.Devices[dev-1].Config)
	if err != nil {
		g.t.Fatal(err)
	}
	h, err := compiler.ParseHeader(b)
	if err != nil {
		g.t.Fatalf("%s: haproxy.cfg: %v\n%.300s", g.l.Devices[dev-1].Name, err, b)
	}
	return h
}

// expectRevision checks that every device runs rev: in haproxy.cfg's
// header and in state.json.
func (g *gitopsEnv) expectRevision(rev string) {
	g.t.Helper()
	for i, d := range g.l.Devices {
		if h := g.header(i + 1); h.Revision != rev {
			g.t.Errorf("%s: haproxy.cfg header revision %s, want %s", d.Name, h.Revision, rev)
		}
		if s := g.state(i + 1); s.Revision != rev {
			g.t.Errorf("%s: state.json revision %s, want %s", d.Name, s.Revision, rev)
		}
	}
}

// snapshot is every device's haproxy.cfg and state.json, byte for byte.
func (g *gitopsEnv) snapshot() map[string]string {
	g.t.Helper()
	m := map[string]string{}
	for i, d := range g.l.Devices {
		for _, f := range []string{d.Config, filepath.Join(d.StateDir, reconcile.StateFile)} {
			b, err := g.l.ReadFile(i+1, f)
			if err != nil {
				g.t.Fatal(err)
			}
			m[f] = string(b)
		}
	}
	return m
}

func (g *gitopsEnv) expectSnapshot(want map[string]string) {
	g.t.Helper()
	for f, b := range g.snapshot() {
		if b != want[f] {
			g.t.Errorf("%s changed, want it untouched:\n%s", f, b)
		}
	}
}

// serves waits (at most 15 s) until every node in want has answered
// through the VIP (a node just added may need its first health checks),
// then checks that 20 more requests all land in want.
func (g *gitopsEnv) serves(vip int, want ...string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/", g.l.VIP(vip))
	ok := map[string]bool{}
	for _, w := range want {
		ok[w] = true
	}
	start := time.Now()
	seen := map[string]int{}
	var lastBody string
	var lastErr error
	for len(seen) < len(want) {
		if time.Since(start) > 15*time.Second {
			g.t.Fatalf("VIP %s: in 15s answers came from %v, want each of %v (last: body %q, err %v)", url, seen, want, lastBody, lastErr)
		}
		lastBody, lastErr = g.l.Get(ctx, url)
		if lastErr == nil && ok[lastBody] {
			seen[lastBody]++
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if d := time.Since(start); d > time.Second {
		g.t.Logf("VIP %s: every node of %v answered after %v", url, want, d.Round(time.Millisecond))
	}
	for i := 0; i < 20; i++ {
		body, err := g.l.Get(ctx, url)
		if err != nil || !ok[body] {
			g.t.Fatalf("VIP %s request %d: body %q, err %v; want one of %v", url, i, body, err, want)
		}
	}
}

// silent checks that the VIP does not answer.
func (g *gitopsEnv) silent(vip int) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if body, err := g.l.Get(ctx, fmt.Sprintf("http://%s/", g.l.VIP(vip))); err == nil {
		g.t.Errorf("VIP %s answers %q, want nothing there", g.l.VIP(vip), body)
	}
}

// refusedEach checks that apply's stderr refused every device with want
// (a sentinel's text) and a hint naming flag.
func (g *gitopsEnv) refusedEach(r lbcResult, want, flag string) {
	g.t.Helper()
	for _, d := range g.l.Devices {
		re := regexp.MustCompile(`(?m)^apply ` + regexp.QuoteMeta(d.Name) + `: refused: host runs [0-9a-f]{12}, applying [0-9a-f]{12}: ` +
			regexp.QuoteMeta(want) + `: .*` + regexp.QuoteMeta(flag))
		if !re.MatchString(r.stderr) {
			g.t.Errorf("stderr does not refuse %s with %q and %s:\n%s", d.Name, want, flag, r)
		}
	}
}

// TestGitOps runs what examples/ci/github-actions.yml runs (validate,
// compile --locked, plan --markdown --detailed-exitcode --locked, apply
// --git-rev SHA --locked) with the real lbc binary against a lab, then the
// revision stamps, state history, status, and the downgrade guard.
// Subtests share one lab and one repository and run in order.
func TestGitOps(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 2, Nodes: 2})
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

	web1 := gitopsBal{name: "web", vip: 1, nodes: []int{1}}
	web12 := gitopsBal{name: "web", vip: 1, nodes: []int{1, 2}}
	api := gitopsBal{name: "api", vip: 2, nodes: []int{2}}

	var head string
	steps := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"Workflow", func(t *testing.T) {
			g.t = t
			head = g.commit(g.repo, "web on n1", web1)
			if lock, err := os.ReadFile(filepath.Join(g.repo, "specs", compiler.LockFileName)); err != nil || !strings.Contains(string(lock), "\nweb ") {
				t.Fatalf("lbc.lock after lbc compile: %q, %v", lock, err)
			}
			// The pull-request job.
			g.must(0, g.repo, "validate", "specs")
			g.must(0, g.repo, "compile", "--locked", "-o", filepath.Join(g.tmp, "ci-out"), "specs")
			p := g.must(2, g.repo, g.ciPlanArgs()...)
			for _, want := range []string{"### lbc plan for `" + head + "`", "```diff\n", "+backend be_web", "+vip " + l.VIP(1).String()} {
				if !strings.Contains(p.stdout, want) {
					t.Errorf("plan markdown lacks %q:\n%s", want, p)
				}
			}
			for _, d := range l.Devices {
				if !strings.Contains(p.stdout, "<code>"+d.Name+"</code>") {
					t.Errorf("plan markdown does not name %s:\n%s", d.Name, p)
				}
			}
			if strings.Contains(p.stdout, "PRIVATE KEY") || strings.Contains(p.stdout+p.stderr, l.KeyFile) {
				t.Errorf("plan output holds key material or the key's path:\n%s", p)
			}
			// The push job.
			a := g.ciApply(g.repo, head)
			if a.code != 0 {
				t.Fatalf("apply: want exit 0\n%s", a)
			}
			t.Logf("apply --git-rev %s: %v", head[:12], a.took.Round(time.Millisecond))
			if !strings.Contains(a.stdout, "revision "+head+")") {
				t.Errorf("apply summary does not name the revision %s:\n%s", head, a)
			}
			g.serves(1, "n1")
			g.expectRevision(head)
			// A re-run of the same push applies nothing; the next pull
			// request's plan sees no change.
			a = g.ciApply(g.repo, head)
			if a.code != 0 || !strings.Contains(a.stdout, "nothing to apply") {
				t.Errorf("second apply: want exit 0 and nothing to apply\n%s", a)
			}
			p = g.must(0, g.repo, g.ciPlanArgs()...)
			if !strings.Contains(p.stdout, "Unchanged: ") {
				t.Errorf("plan after apply:\n%s", p)
			}
		}},
		{"Stamps", func(t *testing.T) {
			g.t = t
			// Ten more pushes, eleven applies in all: the host keeps the
			// last ten.
			revs := []string{head}
			var took []time.Duration
			for i := 0; i < 10; i++ {
				rev := g.commit(g.repo, fmt.Sprintf("push %d", i+1), web1)
				r := g.ciApply(g.repo, rev)
				if r.code != 0 {
					t.Fatalf("push %d: want exit 0\n%s", i+1, r)
				}
				took = append(took, r.took.Round(time.Millisecond))
				revs = append(revs, rev)
			}
			head = revs[len(revs)-1]
			t.Logf("10 applies (a new revision each): %v", took)
			g.expectRevision(head)
			for i, d := range l.Devices {
				s := g.state(i + 1)
				if s.LBCVersion != gitopsVersion {
					t.Errorf("%s: state lbcVersion %q, want %q", d.Name, s.LBCVersion, gitopsVersion)
				}
				if len(s.History) != 10 {
					t.Fatalf("%s: %d history entries, want 10: %+v", d.Name, len(s.History), s.History)
				}
				for j, h := range s.History {
					want := revs[len(revs)-10+j]
					if h.Revision != want || h.Result != "applied" || h.LBCVersion != gitopsVersion || h.Time.IsZero() {
						t.Errorf("%s: history[%d] = %+v, want revision %s, applied, %s, a time", d.Name, j, h, want, gitopsVersion)
					}
					if j > 0 && h.Time.Before(s.History[j-1].Time) {
						t.Errorf("%s: history[%d] at %v, before the entry above it", d.Name, j, h.Time)
					}
				}
				if last := s.History[9]; !last.Time.Equal(s.AppliedAt) {
					t.Errorf("%s: newest history time %v, appliedAt %v", d.Name, last.Time, s.AppliedAt)
				}
			}

			// lbc status: the revision (short, as a table shows it), in-sync.
			args := append([]string{"status"}, g.sshFlags()...)
			st := g.must(0, g.repo, append(args, "specs")...)
			for _, d := range l.Devices {
				re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(d.Name) + `\s+` + head[:12] + `\s.*` + gitopsVersion + `\s+in-sync$`)
				if !re.MatchString(st.stdout) {
					t.Errorf("status does not show %s at %s, in-sync:\n%s", d.Name, head[:12], st)
				}
			}
			// A hand edit on device 1 is drift, in text and JSON.
			d1 := l.Devices[0]
			cfg, err := l.ReadFile(1, d1.Config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(d1.Config, append(cfg, "# hand edit\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			st = g.must(0, g.repo, append(args, "specs")...)
			if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(d1.Name)+`\s.*\sdrifted$`).MatchString(st.stdout) ||
				!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(l.Devices[1].Name)+`\s.*\sin-sync$`).MatchString(st.stdout) {
				t.Errorf("status after a hand edit of %s: want it drifted, the other in-sync:\n%s", d1.Name, st)
			}
			js := g.must(0, g.repo, append(args, "--json", "specs")...)
			var devs []reconcile.DeviceStatus
			var summary struct {
				Devices int            `json:"devices"`
				Sync    map[string]int `json:"sync"`
			}
			for i, line := range strings.Split(strings.TrimSpace(js.stdout), "\n") {
				var typ struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal([]byte(line), &typ); err != nil {
					t.Fatalf("status --json line %d: %v\n%s", i+1, err, js)
				}
				var err error
				switch typ.Type {
				case "device":
					var ds reconcile.DeviceStatus
					err = json.Unmarshal([]byte(line), &ds)
					devs = append(devs, ds)
				case "summary":
					err = json.Unmarshal([]byte(line), &summary)
				}
				if err != nil {
					t.Fatalf("status --json line %d: %v\n%s", i+1, err, js)
				}
			}
			if len(devs) != len(l.Devices) || summary.Devices != len(l.Devices) ||
				summary.Sync[reconcile.SyncDrifted] != 1 || summary.Sync[reconcile.SyncInSync] != len(l.Devices)-1 {
				t.Fatalf("status --json: want %d devices, 1 drifted, the rest in sync\n%s", len(l.Devices), js)
			}
			for i, ds := range devs {
				wantSync := reconcile.SyncInSync
				if ds.Device == d1.Name {
					wantSync = reconcile.SyncDrifted
					if len(ds.Notes) == 0 || !strings.Contains(ds.Notes[0], d1.Config) {
						t.Errorf("status --json: %s drifted without a note naming %s: %q", ds.Device, d1.Config, ds.Notes)
					}
				}
				if ds.Device != l.Devices[i].Name || !ds.Reachable || ds.Revision != head || ds.Sync != wantSync ||
					ds.LBCVersion != gitopsVersion || ds.LastResult != "applied" || ds.AppliedAt == "" {
					t.Errorf("status --json device %d: %+v; want %s reachable at %s, %s", i+1, ds, l.Devices[i].Name, head, wantSync)
				}
			}
			// The next apply of the same revision puts the file back.
			r := g.ciApply(g.repo, head)
			if r.code != 0 {
				t.Fatalf("apply over the hand edit: want exit 0\n%s", r)
			}
			if b, _ := l.ReadFile(1, d1.Config); bytes.Contains(b, []byte("# hand edit")) {
				t.Errorf("apply left the hand edit in %s", d1.Config)
			}
			g.must(0, g.repo, g.ciPlanArgs()...)
			g.serves(1, "n1")
		}},
		{"Downgrade", func(t *testing.T) {
			g.t = t
			c1 := head
			c2 := g.commit(g.repo, "web on n1 and n2", web12)
			c3 := g.commit(g.repo, "add api", web12, api)
			head = c3
			if r := g.ciApply(g.repo, c3); r.code != 0 {
				t.Fatalf("apply c3: want exit 0\n%s", r)
			}
			g.serves(1, "n1", "n2")
			g.serves(2, "n2")
			before := g.snapshot()

			// An out-of-order job applies c2 after c3: refused on every
			// host, nothing changes.
			r := g.ciApply(g.repo, c2)
			if r.code != 1 {
				t.Errorf("apply c2 over c3: want exit 1\n%s", r)
			}
			g.refusedEach(r, "downgrade", "--allow-downgrade")
			g.expectSnapshot(before)
			g.serves(2, "n2")
			t.Logf("refused downgrade:\n%s", r.stderr)

			// The same out-of-order job with a saved plan: apply PLANFILE
			// goes through the same guard.
			planFile := filepath.Join(g.tmp, "c2.plan")
			g.must(0, g.repo, append(append([]string{"plan", "--git-rev", c2, "-out", planFile}, g.sshFlags()...), "specs")...)
			r = g.run(g.repo, append(append([]string{"apply"}, g.sshFlags()...), planFile)...)
			if r.code != 1 {
				t.Errorf("apply PLANFILE of c2 over c3: want exit 1\n%s", r)
			}
			g.refusedEach(r, "downgrade", "--allow-downgrade")
			g.expectSnapshot(before)

			// One host still at c1 (as if it had been down for c3's
			// apply): c2 is an upgrade there, a downgrade on the other.
			// The run applies one, refuses one: partial, exit 4.
			d2 := l.Devices[1]
			stPath := filepath.Join(d2.StateDir, reconcile.StateFile)
			b, err := os.ReadFile(stPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(stPath, bytes.Replace(b, []byte(`"revision": "`+c3+`"`), []byte(`"revision": "`+c1+`"`), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			r = g.ciApply(g.repo, c2)
			if r.code != 4 {
				t.Errorf("apply c2 with %s at c3 and %s at c1: want exit 4 (partial)\n%s", l.Devices[0].Name, d2.Name, r)
			}
			if !strings.Contains(r.stderr, "apply "+l.Devices[0].Name+": refused: ") || strings.Contains(r.stderr, "apply "+d2.Name+": refused") {
				t.Errorf("want %s refused and %s applied:\n%s", l.Devices[0].Name, d2.Name, r)
			}
			if h := g.header(1); h.Revision != c3 {
				t.Errorf("%s: runs %s after a refused downgrade, want c3 %s", l.Devices[0].Name, h.Revision, c3)
			}
			if s := g.state(2); s.Revision != c2 {
				t.Errorf("%s: state revision %s, want c2 %s", d2.Name, s.Revision, c2)
			}

			// --allow-downgrade rolls back: api's VIP goes away.
			r = g.ciApply(g.repo, c2, "--allow-downgrade")
			if r.code != 0 {
				t.Fatalf("apply c2 --allow-downgrade: want exit 0\n%s", r)
			}
			g.expectRevision(c2)
			g.serves(1, "n1", "n2")
			g.silent(2)

			// Forward again.
			if r := g.ciApply(g.repo, c3); r.code != 0 {
				t.Fatalf("apply c3 again: want exit 0\n%s", r)
			}
			g.expectRevision(c3)
			g.serves(2, "n2")
		}},
		{"UnknownRevision", func(t *testing.T) {
			g.t = t
			// Another repository with the same specs: its commits are
			// unknown here, and this one's unknown there.
			other := filepath.Join(g.tmp, "other")
			g.git(g.tmp, "clone", "-q", g.repo, other)
			g.git(other, "checkout", "-q", "--orphan", "elsewhere")
			g.git(other, "commit", "-q", "-m", "same specs, another history")
			x := g.git(other, "rev-parse", "HEAD")
			before := g.snapshot()
			r := g.ciApply(other, x)
			if r.code != 1 {
				t.Errorf("apply from an unrelated history: want exit 1\n%s", r)
			}
			g.refusedEach(r, "diverged history", "--force")
			g.expectSnapshot(before)
			if r = g.ciApply(other, x, "--force"); r.code != 0 {
				t.Fatalf("apply --force from an unrelated history: want exit 0\n%s", r)
			}
			g.expectRevision(x)

			// Back in the main repository, the hosts' revision is unknown.
			before = g.snapshot()
			r = g.ciApply(g.repo, head)
			if r.code != 1 {
				t.Errorf("apply over a revision unknown to the repository: want exit 1\n%s", r)
			}
			g.refusedEach(r, "host revision unknown to this repository", "--force")
			if !strings.Contains(r.stderr, "fetch-depth: 0") {
				t.Errorf("refusal does not explain how to get the history:\n%s", r)
			}
			g.expectSnapshot(before)
			g.serves(2, "n2")
			if r = g.ciApply(g.repo, head, "--force"); r.code != 0 {
				t.Fatalf("apply --force: want exit 0\n%s", r)
			}
			g.expectRevision(head)
		}},
		{"ShallowClone", func(t *testing.T) {
			g.t = t
			c4 := g.commit(g.repo, "web on n2 only", gitopsBal{name: "web", vip: 1, nodes: []int{2}}, api)
			// depth 2 holds the host's commit (c3) as its shallow edge.
			d2 := filepath.Join(g.tmp, "shallow2")
			g.git(g.tmp, "clone", "-q", "--depth", "2", "file://"+g.repo, d2)
			if r := g.ciApply(d2, "HEAD"); r.code != 0 {
				t.Fatalf("apply --git-rev HEAD in a depth-2 clone: want exit 0\n%s", r)
			}
			g.expectRevision(c4)
			g.serves(1, "n2")

			// depth 1 does not: refused, with the way out.
			c5 := g.commit(g.repo, "web back on n1 and n2", web12, api)
			d1 := filepath.Join(g.tmp, "shallow1")
			g.git(g.tmp, "clone", "-q", "--depth", "1", "file://"+g.repo, d1)
			before := g.snapshot()
			r := g.ciApply(d1, "HEAD")
			if r.code != 1 {
				t.Errorf("apply in a depth-1 clone over a host at its parent: want exit 1\n%s", r)
			}
			g.refusedEach(r, "host revision unknown to this repository", "--force")
			g.expectSnapshot(before)
			if r = g.ciApply(d1, "HEAD", "--force"); r.code != 0 {
				t.Fatalf("apply --force in a depth-1 clone: want exit 0\n%s", r)
			}
			g.expectRevision(c5)
			g.serves(1, "n1", "n2")
			// And now the depth-1 clone's HEAD is what the hosts run.
			r = g.ciApply(d1, "HEAD")
			if r.code != 0 || !strings.Contains(r.stdout, "nothing to apply") {
				t.Errorf("re-apply in the depth-1 clone: want exit 0, nothing to apply\n%s", r)
			}
			head = c5
		}},
		{"WatchDowngrade", func(t *testing.T) {
			g.t = t
			// lbc watch --apply in a checkout of the parent commit, while
			// every host runs head: the watch goes through apply's guard,
			// so each host is refused and nothing changes.
			old := g.git(g.repo, "rev-parse", "HEAD~1")
			dir := filepath.Join(g.tmp, "old-checkout")
			g.git(g.tmp, "clone", "-q", g.repo, dir)
			g.git(dir, "checkout", "-q", old)
			before := g.snapshot()
			watch := func(extra ...string) *testproc.Proc {
				args := append(append([]string{"watch", "specs", "--apply", "--lock-timeout", "30s"}, g.sshFlags()...), extra...)
				return testproc.Start(t, dir, 5*time.Minute, watchWait, []string{"NO_COLOR=1", "SSH_AUTH_SOCK="}, g.lbc, args...)
			}
			p := watch()
			chunk := p.WaitFor(`^apply: 0 applied, 0 unchanged, 0 rolled back, 0 failed, 0 skipped, 2 refused \(revision `+old+`\)$`,
				`^Plan \(revision `+old+`\): 2 to change, 0 unchanged, 0 unreachable\.$`,
				`(?m)^`+regexp.QuoteMeta(l.Devices[0].Name)+`: refused$`,
				`(?m)^`+regexp.QuoteMeta(l.Devices[1].Name)+`: refused$`)
			if strings.Contains(chunk, ": applied") {
				t.Errorf("watch --apply on an older checkout applied:\n%s", chunk)
			}
			if err := p.Stop(os.Interrupt); err != nil {
				t.Errorf("watch after SIGINT: %v\n%s", err, p.Stderr())
			}
			g.refusedEach(lbcResult{args: []string{"watch"}, stderr: p.Stderr()}, "downgrade", "--allow-downgrade")
			g.expectSnapshot(before)
			g.serves(1, "n1", "n2")

			// --allow-downgrade means what it means to apply: the watch
			// rolls the hosts back to the checkout's revision.
			p = watch("--allow-downgrade")
			p.WaitFor(`^apply: 2 applied, 0 unchanged, 0 rolled back, 0 failed, 0 skipped \(revision ` + old + `\)$`)
			if err := p.Stop(os.Interrupt); err != nil {
				t.Errorf("watch after SIGINT: %v\n%s", err, p.Stderr())
			}
			g.expectRevision(old)
			g.serves(1, "n2")
			head = old
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) {
			t.Fatalf("%s failed: later steps build on it", s.name)
		}
	}
}

// ciPlanArgs is the workflow's plan step for the main repository.
func (g *gitopsEnv) ciPlanArgs() []string {
	args := append([]string{"plan", "--markdown", "--detailed-exitcode", "--locked"}, g.sshFlags()...)
	return append(args, "specs")
}
