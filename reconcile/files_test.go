package reconcile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// mapSource is a FileSource of named contents (a stand-in for a
// certificate directory), counting what it resolves.
type mapSource map[string][]byte

func (m mapSource) Resolve(_ context.Context, kind, ref string) ([]byte, error) {
	b, ok := m[kind+"/"+ref]
	if !ok {
		return nil, errors.New("not in the source")
	}
	return b, nil
}

// sourceFunc is a FileSource made of a function.
type sourceFunc func(kind, ref string) ([]byte, error)

func (f sourceFunc) Resolve(_ context.Context, kind, ref string) ([]byte, error) { return f(kind, ref) }

// auxConfig is a config that loads the map file at mapPath: haproxy -c
// fails when that file is missing, so a check that passes before the file
// is on the host proves the check read the staged one.
func auxConfig(mapPath string, weight int) []byte {
	var b bytes.Buffer
	b.WriteString(testGlobal)
	b.WriteString("frontend fe_web\n    bind 127.0.0.1:18081\n    mode http\n    use_backend %[req.hdr(host),lower,regsub(:[0-9]+$,),map(" + mapPath + ",be_web)]\n    default_backend be_web\n\n")
	b.WriteString("backend be_web\n    mode http\n    balance roundrobin\n    server n1 127.0.0.1:9 weight " + itoa(weight) + " check\n")
	return withHeader(b.Bytes())
}

func (th *testHost) planFiles(rev string, cfg []byte, files []compiler.AuxFile, src FileSource) *Plan {
	th.t.Helper()
	spec, res := th.result(rev, cfg)
	res.Devices[th.dev.Name].AuxFiles = files
	p, err := BuildPlan(context.Background(), spec, res, th.dial, PlanOptions{IPCommand: th.ipCmd, Files: src})
	if err != nil {
		th.t.Fatal(err)
	}
	return p
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestApplyAuxFiles ships a map file (content in the plan) and a secret
// file (by reference) with the config: staged, checked by the real
// haproxy -c before they are live, installed with their modes in a 0700
// directory, recorded by fingerprint, rolled back with the config, and
// removed only when lbc wrote them.
func TestApplyAuxFiles(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	dir := filepath.Join(th.dev.StateDir, "files")
	mapPath, keyPath := filepath.Join(dir, "hosts.map"), filepath.Join(dir, "site.pem")
	secret1, secret2 := []byte("secret one: SECRET-BYTES-1\n"), []byte("secret two: SECRET-BYTES-2\n")
	src := mapSource{"cert/site": secret1}
	files := func(m string) []compiler.AuxFile {
		return []compiler.AuxFile{
			{Path: mapPath, Mode: 0o644, Kind: "map", Data: []byte(m)},
			{Path: keyPath, Mode: 0o600, Kind: compiler.AuxCert, Ref: "site"},
		}
	}
	cfg := auxConfig(mapPath, 10)

	p := th.planFiles("rev1", cfg, files("www.example.com be-web\n"), src)
	d := p.Devices[0]
	if d.Status != StatusChanges || len(d.FileChanges) != 2 {
		t.Fatalf("plan: %s %s %+v", d.Status, d.Error, d.FileChanges)
	}
	var saved bytes.Buffer
	if err := p.Save(&saved); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(saved.Bytes(), []byte("SECRET-BYTES")) {
		t.Fatalf("the saved plan holds a referenced file's bytes:\n%s", saved.String())
	}
	for _, c := range d.FileChanges {
		if strings.Contains(c.String(), "SECRET") || c.From != "" {
			t.Errorf("file change %s", c)
		}
	}
	mustApply(t, th, p)
	if got := th.read("state/files/site.pem"); got != string(secret1) {
		t.Errorf("secret on host %q", got)
	}
	if m := fileMode(t, keyPath); m != 0o600 {
		t.Errorf("secret file mode %o", m)
	}
	if m := fileMode(t, mapPath); m != 0o644 {
		t.Errorf("map file mode %o", m)
	}
	if m := fileMode(t, dir); m != 0o700 {
		t.Errorf("directory mode %o", m)
	}
	for _, f := range []string{"state/files/site.pem.lbc-new", "state/files/hosts.map.lbc-new", "etc/haproxy.cfg.lbc-check"} {
		if th.read(f) != "<absent>" {
			t.Errorf("%s left on the host", f)
		}
	}
	st, err := host.ParseState([]byte(th.read("state/state.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.Files[keyPath] != sha256Hex(secret1) || len(st.Files) != 2 {
		t.Errorf("state.json files %v", st.Files)
	}
	if strings.Contains(th.read("state/state.json"), "SECRET") {
		t.Error("state.json holds a file's bytes")
	}
	if p2 := th.planFiles("rev1", cfg, files("www.example.com be-web\n"), src); p2.Devices[0].Status != StatusUnchanged {
		t.Fatalf("second plan: %s %+v", p2.Devices[0].Status, p2.Devices[0].FileChanges)
	}

	// The secret changes in its source: only that file changes, shown by
	// fingerprint; a failed verify rolls it back with the config.
	src["cert/site"] = secret2
	p = th.planFiles("rev2", cfg, files("www.example.com be-web\n"), src)
	d = p.Devices[0]
	if d.Status != StatusChanges || len(d.FileChanges) != 1 || d.FileChanges[0].From != sha256Hex(secret1) || d.FileChanges[0].To != sha256Hex(secret2) || d.ConfigDiff != "" {
		t.Fatalf("rotation plan: %s %+v %q", d.Status, d.FileChanges, d.ConfigDiff)
	}
	th.failStep(host.StepVerify)
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if dr := r.Devices[0]; dr.Outcome != OutcomeRolledBack {
		t.Fatalf("outcome %s %v", dr.Outcome, dr.Err)
	}
	if got := th.read("state/files/site.pem"); got != string(secret1) {
		t.Errorf("after the rollback the secret is %q", got)
	}
	if m := fileMode(t, keyPath); m != 0o600 {
		t.Errorf("restored secret file mode %o", m)
	}
	th.clearFaults()

	// A saved plan: apply resolves the secret again, refuses content that
	// changed since, and needs a source at all.
	var buf bytes.Buffer
	if err := p.Save(&buf); err != nil {
		t.Fatal(err)
	}
	load := func() *Plan {
		lp, err := LoadPlan(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	r, err = Apply(context.Background(), load(), th.dial, applyOpts("test"))
	if err != nil || r.Devices[0].Outcome != OutcomeFailedBeforeChange || !errors.Is(r.Devices[0].Err, ErrNoFileSource) {
		t.Fatalf("apply of a saved plan without a source: %+v %v", r.Devices[0], err)
	}
	o := applyOpts("test")
	o.Files = mapSource{"cert/site": []byte("a third one\n")}
	r, err = Apply(context.Background(), load(), th.dial, o)
	if err != nil || r.Devices[0].Outcome != OutcomeFailedBeforeChange || !errors.Is(r.Devices[0].Err, ErrStale) {
		t.Fatalf("apply of a saved plan with other content: %+v %v", r.Devices[0], err)
	}
	o.Files = src
	r, err = Apply(context.Background(), load(), th.dial, o)
	if err != nil || r.Devices[0].Outcome != OutcomeApplied {
		t.Fatalf("apply of a saved plan: %+v %v", r.Devices[0], err)
	}
	if got := th.read("state/files/site.pem"); got != string(secret2) {
		t.Errorf("secret on host %q", got)
	}

	// The map goes from the spec: lbc removes it (it wrote it); a file it
	// did not write stays.
	th.write("state/files/other.map", "not lbc's\n", 0o644)
	p = th.planFiles("rev3", testConfig(18081, 10), files("")[1:], src)
	d = p.Devices[0]
	if len(d.FileChanges) != 1 || d.FileChanges[0].Path != mapPath || d.FileChanges[0].To != "" {
		t.Fatalf("removal plan: %+v", d.FileChanges)
	}
	mustApply(t, th, p)
	if th.read("state/files/hosts.map") != "<absent>" || th.read("state/files/other.map") != "not lbc's\n" {
		t.Errorf("after removal: map %q, other %q", th.read("state/files/hosts.map"), th.read("state/files/other.map"))
	}
}

// TestAuxFileCheckFails: a staged map that HAProxy cannot load fails the
// check; nothing changes on the host and the staged files are gone.
func TestAuxFileCheckFails(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	if !strings.HasPrefix(th.dev.HAProxy.Check, "haproxy") {
		t.Skip("haproxy not installed: the check cannot read a map")
	}
	mapPath := filepath.Join(th.dev.StateDir, "files", "hosts.map")
	// A map of ip keys rejects a key that is no address.
	cfg := []byte(strings.Replace(string(auxConfig(mapPath, 10)), "req.hdr(host),lower,regsub(:[0-9]+$,),map(", "src,map_ip(", 1))
	cfg = withHeader(bytes.SplitN(cfg, []byte("\n"), 2)[1])
	p := th.planFiles("rev1", cfg, []compiler.AuxFile{{Path: mapPath, Mode: 0o644, Kind: "map", Data: []byte("not-an-address be\n")}}, nil)
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if dr := r.Devices[0]; dr.Outcome != OutcomeFailedBeforeChange || !strings.Contains(dr.Err.Error(), "check haproxy.cfg failed") {
		t.Fatalf("outcome %s %v", dr.Outcome, dr.Err)
	}
	for _, f := range []string{"state/files/hosts.map", "state/files/hosts.map.lbc-new", "etc/haproxy.cfg", "etc/haproxy.cfg.lbc-check"} {
		if th.read(f) != "<absent>" {
			t.Errorf("%s on the host after a failed check", f)
		}
	}
}

// A weight change alone is a runtime change; with a map file changing in
// the same plan the plan says reload, as apply does (HAProxy reads the
// file only at a reload).
func TestPlanClassWithAuxFiles(t *testing.T) {
	th := newTestHost(t, "lb-a2")
	mapPath := filepath.Join(th.dev.StateDir, "files", "hosts.map")
	files := func(m string) []compiler.AuxFile {
		return []compiler.AuxFile{{Path: mapPath, Mode: 0o644, Kind: "map", Data: []byte(m)}}
	}
	mustApply(t, th, th.planFiles("rev1", auxConfig(mapPath, 10), files("a.example.com be_web\n"), nil))
	class := func(p *Plan) string {
		if c := p.Devices[0].Change; c != nil {
			return string(c.Class)
		}
		return "<nil>"
	}
	if got := class(th.planFiles("rev2", auxConfig(mapPath, 11), files("a.example.com be_web\n"), nil)); got != string(classify.Runtime) {
		t.Errorf("weight change alone: class %s, want runtime", got)
	}
	if got := class(th.planFiles("rev2", auxConfig(mapPath, 11), files("b.example.com be_web\n"), nil)); got != string(classify.Reload) {
		t.Errorf("weight change with a change of a map that is not a host table: class %s, want reload (apply reloads it)", got)
	}
}
