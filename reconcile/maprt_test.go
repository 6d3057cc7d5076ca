package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/internal/testkit/sshtest"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// Host tables changed at runtime, against a real HAProxy: the test host's
// config routes by a host table (a frontend on a unix socket in the state
// directory: no port to share between parallel cases), its map file a
// host table lbc writes.

// mapPath is the test host's host table.
func (th *testHost) mapPath() string {
	return filepath.Join(th.dir, "etc", compiler.HostsMapName("web"))
}

// mapConfig is a config for a real HAProxy that reads the host table.
func (th *testHost) mapConfig() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    stats socket %s/haproxy.sock mode 600 level admin\n\n", th.dev.StateDir)
	b.WriteString("defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n")
	fmt.Fprintf(&b, "frontend fe_web\n    bind unix@%s/fe.sock\n    use_backend %%[req.hdr(host),lower,regsub(:[0-9]+$,),map(%s,be_web)]\n\n", th.dev.StateDir, th.mapPath())
	b.WriteString("backend be_web\n    balance roundrobin\n    server n1 127.0.0.1:9 weight 1\n\n")
	b.WriteString("backend be_web:blue\n    balance roundrobin\n    server n1 127.0.0.1:10 weight 1\n")
	return withHeader([]byte(b.String()))
}

// hostTable is a map file as lbc renders it: n hosts hK.example.com, the
// first moved of them to be_web:blue, the others to be_web.
func hostTable(rev string, n, moved int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# lbc test revision %s\n# host table of balancer web: host backend\n", rev)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("h%d.example.com", i)
	}
	sort.Strings(keys)
	for _, k := range keys {
		be := "be_web"
		var i int
		fmt.Sscanf(k, "h%d.", &i)
		if i < moved {
			be = "be_web:blue"
		}
		b.WriteString(k + " " + be + "\n")
	}
	return []byte(b.String())
}

// testTable is the size of the tests' host table (the lab test has 10,000).
const testTable = 2000

// setupMaps applies rev1 (the table with testTable hosts, none moved) by
// reload, starts a real HAProxy on it, and plans rev2 (the first 100
// hosts moved to be_web:blue), which must be a runtime change.
func setupMaps(t *testing.T) (*testHost, *Plan) {
	th := newTestHost(t, "lb-a1")
	th.aux = func(rev string) []compiler.AuxFile {
		moved := map[string]int{"rev1": 0, "rev2": 100}[rev]
		return []compiler.AuxFile{{Path: th.mapPath(), Mode: 0o644, Kind: compiler.AuxMap, Data: hostTable(rev, testTable, moved)}}
	}
	mustApply(t, th, th.plan("rev1", th.mapConfig()))
	th.startHAProxy()
	p := th.plan("rev2", th.mapConfig())
	c := p.Devices[0].Change
	if c == nil || c.Class != classify.Runtime || len(c.Ops) != 0 ||
		!slices.Equal(c.Maps, []classify.MapOp{{Path: th.mapPath(), Changed: 100, Entries: testTable}}) {
		t.Fatalf("the change is not a runtime map load: %+v", c)
	}
	return th, p
}

// runningMap is the test host's running host table, as "KEY VALUE" lines,
// sorted.
func (th *testHost) runningMap() []string {
	th.t.Helper()
	m, err := parseShowMap(th.cli("show map " + th.mapPath()))
	if err != nil {
		th.t.Fatal(err)
	}
	var out []string
	for k, v := range m {
		out = append(out, k+" "+v)
	}
	sort.Strings(out)
	return out
}

// tableLines is what a map file holds, as runningMap shows it.
func tableLines(b []byte) []string {
	var out []string
	for k, v := range mapEntries(b) {
		out = append(out, k+" "+v)
	}
	sort.Strings(out)
	return out
}

// workerPid is the pid the test host's HAProxy reports.
func (th *testHost) workerPid() string {
	for _, l := range strings.Split(th.cli("show info"), "\n") {
		if p, ok := strings.CutPrefix(l, "Pid: "); ok {
			return p
		}
	}
	th.t.Fatal("show info has no Pid")
	return ""
}

// 100 hosts of a testTable-host table moved to another pool: no reload (the
// fake reload's log as the first apply left it), the same worker, the
// running map equal to the new file entry for entry, the plan's views
// showing the runtime class and the entries, the next plan empty.
func TestRuntimeApplyMap(t *testing.T) {
	th, p := setupMaps(t)
	d := p.Devices[0]
	if !slices.Contains(d.Routing, "~host h0.example.com: be_web -> be_web:blue") ||
		!slices.Contains(d.Routing, fmt.Sprintf("~hosts %s: 0 added, 0 removed, 100 moved (%d entries)", th.mapPath(), testTable)) {
		t.Errorf("routing lines: %q", d.Routing)
	}
	reloads, pid := th.read("reloads"), th.workerPid()
	if got := th.runningMap(); !slices.Equal(got, tableLines(hostTable("rev1", testTable, 0))) {
		t.Fatalf("before: the running map is not rev1's (%d entries)", len(got))
	}
	r, err := Apply(context.Background(), p, th.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	ra := r.Devices[0]
	if ra.Outcome != OutcomeApplied || ra.Runtime == nil {
		t.Fatalf("%s: %v (runtime %+v)", ra.Outcome, ra.Err, ra.Runtime)
	}
	want := fmt.Sprintf("map %s: 0 added, 0 removed, 100 changed (loads %d entries as a new version, committed at once)", th.mapPath(), testTable)
	if fmt.Sprint(ra.Runtime.Pid) != pid || !slices.Equal(ra.Runtime.Ops, []string{want}) {
		t.Errorf("runtime result %+v, want pid %s and %q", ra.Runtime, pid, want)
	}
	if th.read("reloads") != reloads || th.workerPid() != pid {
		t.Error("a runtime map change reloaded")
	}
	if got := th.runningMap(); !slices.Equal(got, tableLines(hostTable("rev2", testTable, 100))) {
		t.Errorf("the running map is not the new file's (%d entries)", len(got))
	}
	if th.read("etc/"+compiler.HostsMapName("web")) != string(hostTable("rev2", testTable, 100)) {
		t.Error("the map file is not the new one")
	}
	if d2 := th.plan("rev2", th.mapConfig()).Devices[0]; d2.Status != StatusUnchanged {
		t.Errorf("next plan: %s %+v", d2.Status, d2.Change)
	}
}

// A map change that comes with another file change, or when the live
// config is not the one lbc applied, reloads; the plan says why.
func TestPlanMapsReload(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	extra := false
	th.aux = func(rev string) []compiler.AuxFile {
		fs := []compiler.AuxFile{{Path: th.mapPath(), Mode: 0o644, Kind: compiler.AuxMap, Data: hostTable(rev, 10, map[string]int{"rev1": 0, "rev2": 3}[rev])}}
		if extra {
			fs = append(fs, compiler.AuxFile{Path: filepath.Join(th.dir, "etc", "site.pem"), Mode: 0o600, Kind: compiler.AuxCert, Data: []byte("pem " + rev + "\n")})
		}
		return fs
	}
	mustApply(t, th, th.plan("rev1", th.mapConfig()))
	if c := th.plan("rev2", th.mapConfig()).Devices[0].Change; c == nil || c.Class != classify.Runtime || len(c.Maps) != 1 {
		t.Fatalf("maps alone: %+v", c)
	}
	extra = true
	// A new certificate is loaded at a reload (certrt.go): no runtime class.
	if c := th.plan("rev2", th.mapConfig()).Devices[0].Change; c != nil && c.Class == classify.Runtime {
		t.Errorf("with a new certificate: %+v", c)
	}
	extra = false
	th.write("etc/haproxy.cfg", string(th.mapConfig())+"# edited\n", 0o644)
	if c := th.plan("rev2", th.mapConfig()).Devices[0].Change; c == nil || c.Class != classify.Reload {
		t.Errorf("after a hand edit: %+v", c)
	}
}

// mapFault is one row of the runtime map fault matrix.
type mapFault struct {
	name    string
	faults  func(th *testHost) []sshtest.StepFault
	outcome Outcome
	errHas  string
}

// The runtime map faults:
//
//	socket failure at commit map     rolled back: the old file, its entries loaded again
//	show map differs from the file   rolled back (an entry added by hand after the commit)
//	cut at the runtime step          rolled back by the host (txn.sh loads the old file)
//
// Each case checks that its fault fired where it meant to, the outcome,
// the file and the running map (old), the worker unchanged, the lock free
// and nothing armed, and that the next plan is the same change.
func mapFaults() []mapFault {
	return []mapFault{
		// The runtime step's stats-socket queries: show info, prepare
		// map, one add map a chunk, then commit map.
		{name: "fail/commit", outcome: OutcomeRolledBack, faults: func(*testHost) []sshtest.StepFault {
			return []sshtest.StepFault{{Step: host.StepRuntime, Action: sshtest.Fail, Tool: "nc.openbsd", Count: 3 + mapChunks(hostTable("rev2", testTable, 100))}}
		}, errHas: "apply lb-a1: runtime: exit status 1: stats socket: commit map @"},
		{name: "mismatch/runtime-verify", outcome: OutcomeRolledBack, faults: func(th *testHost) []sshtest.StepFault {
			return []sshtest.StepFault{{Step: host.StepRuntimeVerify, Action: sshtest.Pause, Then: func() {
				th.cli("add map " + th.mapPath() + " intruder.example.org be_web")
			}}}
		}, errHas: "apply lb-a1: runtime-verify: the running host table differs from the file: " + "PATH: intruder.example.org runs be_web, not in the file"},
		{name: "cut/runtime", outcome: OutcomeRolledBack, faults: func(*testHost) []sshtest.StepFault {
			return []sshtest.StepFault{{Step: host.StepRuntime, Action: sshtest.Cut}}
		}, errHas: "(reconnected: rolled back by the host)"},
	}
}

func runMapFault(t *testing.T, c mapFault, inject bool) []string {
	th, p := setupMaps(t)
	oldMap, oldFile, pid := th.runningMap(), th.read("etc/"+compiler.HostsMapName("web")), th.workerPid()
	faults := c.faults(th)
	_, _, bad := th.applyFaulted(t, p, faults, inject, c.outcome, strings.ReplaceAll(c.errHas, "PATH", th.mapPath()))
	badf := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	th.waitUnlocked()
	if th.armed() {
		badf("txn.sh still armed")
	}
	if now := th.runningMap(); !slices.Equal(now, oldMap) {
		badf("the running map is not the old one (%d entries, %d before)", len(now), len(oldMap))
	}
	if th.read("etc/"+compiler.HostsMapName("web")) != oldFile {
		badf("the map file is not the old one")
	}
	if th.workerPid() != pid {
		badf("the worker changed")
	}
	d1, d2 := p.Devices[0], th.plan("rev2", th.mapConfig()).Devices[0]
	if d2.Status != StatusChanges || d2.Change == nil || !slices.Equal(d2.Change.Maps, d1.Change.Maps) || !slices.Equal(d2.Routing, d1.Routing) ||
		!slices.Equal(d2.FileChanges, d1.FileChanges) {
		badf("the next plan is not the same change: %s %+v %q", d2.Status, d2.Change, d2.Routing)
	}
	return bad
}

func TestRuntimeMapFaults(t *testing.T) {
	runRows(t, mapFaults(), func(c mapFault) string { return c.name }, runMapFault, true)
}

// Without injection every case must say that no fault fired and end
// otherwise than it expects.
func TestRuntimeMapFaultsWithoutInjection(t *testing.T) {
	runRows(t, mapFaults(), func(c mapFault) string { return c.name }, runMapFault, false)
}

// mapChunks is how many add map commands lbc_map sends for table b: one
// a 12,000 bytes of entries (host.mapFunc).
func mapChunks(b []byte) int {
	n, size := 0, 0
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			if size > 0 {
				n++
			}
			size = 0
			continue
		}
		size += len(l) + 1
		if size > 12000 {
			n++
			size = 0
		}
	}
	if size > 0 {
		n++
	}
	return n
}

func TestMapChunks(t *testing.T) {
	if n := mapChunks(hostTable("rev2", testTable, 100)); n < 2 {
		t.Errorf("the test table goes in %d add map commands: the tests want several", n)
	}
}
