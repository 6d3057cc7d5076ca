package compiler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"lbc/internal/testkit/testcert"
	"lbc/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// A golden case is one txtar file in testdata/golden holding:
//
//	spec.json          the spec, decoded by decodeTestSpec (schema defaults applied)
//	lbc.lock           optional previous placement
//	error              optional: Compile must fail with an error containing this text
//	out/<dev>/<file>   the expected haproxy.cfg, vips.json, keepalived.conf of each device
//
// The comment of the archive says what the case shows.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("want at least 6 golden cases, found %d", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in := map[string][]byte{}
			for _, f := range ar.Files {
				in[f.Name] = f.Data
			}
			sp, err := goldenSpec(in)
			if err != nil {
				t.Fatal(err)
			}
			prev := Lock{}
			if l, ok := in["lbc.lock"]; ok {
				if prev, err = ParseLock(l); err != nil {
					t.Fatalf("lbc.lock: %v", err)
				}
			}
			res, err := Compile(sp, prev, Options{Version: "v0.0.0-test", Revision: "0123456789abcdef0123456789abcdef01234567"})
			if want, ok := in["error"]; ok {
				w := strings.TrimSpace(string(want))
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Compile error = %v, want one containing %q", err, w)
				}
				if res != nil {
					t.Fatalf("Compile returned a result with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got := map[string][]byte{}
			maps := map[string]map[string][]byte{} // "out/<dev>/haproxy.cfg" → its map files by path
			for name, d := range res.Devices {
				maps["out/"+name+"/haproxy.cfg"] = mapsOf(d)
				got["out/"+name+"/haproxy.cfg"] = d.HAProxyCfg
				got["out/"+name+"/vips.json"] = d.VIPsJSON
				if d.Keepalived != nil {
					got["out/"+name+"/keepalived.conf"] = d.Keepalived
				}
				var files strings.Builder // what reconcile ships besides maps: one line a file
				for _, m := range d.AuxFiles {
					if m.Kind == AuxMap {
						got["out/"+name+"/"+filepath.Base(m.Path)] = m.Data
					} else {
						fmt.Fprintf(&files, "%s %04o %s %s\n", m.Path, m.Mode, m.Kind, m.Ref)
					}
				}
				if files.Len() > 0 {
					got["out/"+name+"/files"] = []byte(files.String())
				}
			}
			if len(res.Devices) != len(sp.Devices) {
				t.Errorf("got files for %d devices, spec has %d", len(res.Devices), len(sp.Devices))
			}
			for name, data := range got {
				checkRendered(t, name, data, maps[name])
			}
			if *update {
				writeGolden(t, file, ar, got)
				return
			}
			want := map[string][]byte{}
			for name, data := range in {
				if strings.HasPrefix(name, "out/") {
					want[name] = data
				}
			}
			if diff := cmp.Diff(stringMap(want), stringMap(got)); diff != "" {
				t.Errorf("rendered files differ from %s (-want +got; go test -run TestGolden -update to accept):\n%s", file, diff)
			}
		})
	}
}

func stringMap(m map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func writeGolden(t *testing.T, file string, ar *txtar.Archive, got map[string][]byte) {
	t.Helper()
	var keep []txtar.File
	for _, f := range ar.Files {
		if !strings.HasPrefix(f.Name, "out/") {
			keep = append(keep, f)
		}
	}
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		keep = append(keep, txtar.File{Name: n, Data: got[n]})
	}
	ar.Files = keep
	if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mapsOf returns a device's map files by path.
func mapsOf(d *DeviceArtifacts) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range d.AuxFiles {
		if f.Kind == AuxMap {
			m[f.Path] = f.Data
		}
	}
	return m
}

// checkRendered checks one rendered file with the real tools, and the
// header of haproxy.cfg, keepalived.conf and the map files; maps are the
// map files a haproxy.cfg loads, by path.
func checkRendered(t *testing.T, name string, data []byte, maps map[string][]byte) {
	t.Helper()
	if IsMapName(filepath.Base(name)) {
		checkHeader(t, name, data)
		return
	}
	switch filepath.Base(name) {
	case "haproxy.cfg":
		checkHeader(t, name, data)
		haproxyCheckMaps(t, name, data, maps)
	case "keepalived.conf":
		checkHeader(t, name, data)
		keepalivedCheck(t, name, data)
	case "vips.json":
		var v []VIP
		if err := json.Unmarshal(data, &v); err != nil || v == nil || !bytes.HasSuffix(data, []byte("\n")) {
			t.Errorf("%s: not a JSON array ending in a newline (%v):\n%s", name, err, data)
		}
	}
}

func checkHeader(t *testing.T, name string, data []byte) {
	t.Helper()
	h, err := ParseHeader(data)
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	if h.Revision != "0123456789abcdef0123456789abcdef01234567" || h.Version != "v0.0.0-test" {
		t.Errorf("%s: header %+v", name, h)
	}
}

// needTool returns the path of a tool, or skips (fails under CI) when absent.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI is set: not skipping)", name)
	}
	t.Skipf("%s is not installed: skipping its check", name)
	return ""
}

// haproxyCheckMaps runs the real `haproxy -c -f` on a rendered config
// that loads the map files maps (by path on the device, which HAProxy
// reads as it parses): each is written to a temporary directory, and its
// path in the config replaced by the temporary one, for the check only.
func haproxyCheckMaps(t *testing.T, name string, cfg []byte, maps map[string][]byte) {
	t.Helper()
	bin := needTool(t, "haproxy")
	dir := t.TempDir()
	for p, data := range maps {
		tmp := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(cfg, []byte(p)) {
			t.Errorf("%s: does not load its map file %s", name, p)
		}
		cfg = bytes.ReplaceAll(cfg, []byte(p), []byte(tmp))
	}
	f := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(f, withTestCerts(t, dir, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", f).CombinedOutput()
	if err != nil {
		t.Errorf("%s: haproxy -c: %v\n%s\n--- config:\n%s", name, err, out, cfg)
	}
	// A warning is a defect too, except the missing server-state file: the
	// reconciler writes it before a reload, and a first start has none.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "[WARNING]") && !strings.Contains(l, "Can't open global server state file") {
			t.Errorf("%s: haproxy -c warns: %s", name, l)
		}
	}
}

var ifaceRE = regexp.MustCompile(`(?m)^\s+interface (\S+)$`)

// keepalivedCheck runs the real `keepalived -t -f` on a rendered config.
// keepalived -t refuses interfaces the host lacks, so it runs in a private
// network namespace (unshare -n, root) holding a bridge link (dummy links may be unavailable) for each
// interface the config names.
func keepalivedCheck(t *testing.T, name string, conf []byte) {
	t.Helper()
	bin := needTool(t, "keepalived")
	unshare := needTool(t, "unshare")
	needTool(t, "ip")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("keepalived -t check needs root (CI is set: not skipping)")
		}
		t.Skip("keepalived -t check needs root for a private network namespace: skipping")
	}
	f := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(f, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	script := "set -e\n"
	seen := map[string]bool{}
	for _, m := range ifaceRE.FindAllSubmatch(conf, -1) {
		ifc := string(m[1])
		if seen[ifc] || !regexp.MustCompile(`^[A-Za-z0-9._-]{1,15}$`).MatchString(ifc) {
			continue
		}
		seen[ifc] = true
		script += "ip link add " + ifc + " type bridge\nip link set " + ifc + " up\n"
	}
	script += `exec "$0" -t -f "$1"` + "\n"
	cmd := exec.Command(unshare, "-n", "sh", "-c", script, bin, f)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s: keepalived -t timed out", name)
	}
	if err != nil {
		t.Errorf("%s: keepalived -t: %v\n%s\n--- config:\n%s", name, err, out, conf)
	}
}

// goldenSpec reads a golden case's spec: spec.cue, loaded by the schema
// (the real loader and checks), or spec.json (decodeTestSpec).
func goldenSpec(in map[string][]byte) (*schema.Spec, error) {
	if src, ok := in["spec.cue"]; ok {
		sp, err := schema.Load(context.Background(), fstest.MapFS{"spec.cue": {Data: src, Mode: 0o644}})
		if err != nil {
			return nil, fmt.Errorf("spec.cue: %v", err)
		}
		return sp, nil
	}
	sp, err := decodeTestSpec(in["spec.json"])
	if err != nil {
		return nil, fmt.Errorf("spec.json: %v", err)
	}
	return sp, nil
}

// decodeTestSpec reads the JSON form of a spec used by the golden cases:
// the CUE field names, durations as strings, schema defaults applied.
func decodeTestSpec(data []byte) (*schema.Spec, error) {
	var raw struct {
		Devices   map[string]json.RawMessage `json:"devices"`
		Balancers map[string]json.RawMessage `json:"balancers"`
		Scheduler *struct {
			Filters []string           `json:"filters"`
			Costs   map[string]float64 `json:"costs"`
		} `json:"scheduler"`
	}
	dec := func(m json.RawMessage, v any) error {
		d := json.NewDecoder(bytes.NewReader(m))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if err := dec(data, &raw); err != nil {
		return nil, err
	}
	sp := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{}}
	sp.Scheduler = schema.Scheduler{
		Filters: []string{"capacity", "zone", "tags", "vipNetwork", "device", "ha"},
		Costs:   map[string]float64{"balancers": 1, "maxconn": 1, "spread": 0.5},
	}
	if raw.Scheduler != nil {
		sp.Scheduler.Filters = raw.Scheduler.Filters
		sp.Scheduler.Costs = raw.Scheduler.Costs
	}
	for name, m := range raw.Devices {
		var d struct {
			Address  string `json:"address"`
			Zone     string `json:"zone"`
			Capacity struct {
				Balancers int `json:"balancers"`
				Maxconn   int `json:"maxconn"`
			} `json:"capacity"`
			Tags         []string       `json:"tags"`
			VIPInterface string         `json:"vipInterface"`
			VIPNetworks  []netip.Prefix `json:"vipNetworks"`
			StateDir     string         `json:"stateDir"`
		}
		if err := dec(m, &d); err != nil {
			return nil, errors.New("device " + name + ": " + err.Error())
		}
		sp.Devices[name] = &schema.Device{
			Name: name, Address: d.Address, Zone: d.Zone,
			SSH:          schema.SSH{User: "root", Port: 22},
			Capacity:     schema.Capacity{Balancers: d.Capacity.Balancers, Maxconn: d.Capacity.Maxconn},
			Tags:         d.Tags,
			VIPInterface: or(d.VIPInterface, "eth0"),
			VIPNetworks:  d.VIPNetworks,
			HAProxy:      schema.HAProxy{Config: "/etc/haproxy/haproxy.cfg", Reload: "systemctl reload haproxy", Check: "haproxy -c -f"},
			Keepalived:   schema.Keepalived{Config: "/etc/keepalived/keepalived.conf", Reload: "systemctl reload-or-restart keepalived", Check: "keepalived -t -f"},
			StateDir:     or(d.StateDir, "/var/lib/lbc"),
		}
	}
	for name, m := range raw.Balancers {
		var b struct {
			Tenant    string       `json:"tenant"`
			Protocol  string       `json:"protocol"`
			Algorithm string       `json:"algorithm"`
			VIPs      []schema.VIP `json:"vips"`
			Nodes     []struct {
				Address netip.Addr `json:"address"`
				Port    int        `json:"port"`
				Weight  *int       `json:"weight"`
				Maxconn int        `json:"maxconn"`
				Backup  bool       `json:"backup"`
				State   string     `json:"state"`
			} `json:"nodes"`
			HealthMonitor struct {
				Type     string `json:"type"`
				Method   string `json:"method"`
				Path     string `json:"path"`
				Expect   int    `json:"expect"`
				Interval string `json:"interval"`
				Timeout  string `json:"timeout"`
				Rise     int    `json:"rise"`
				Fall     int    `json:"fall"`
			} `json:"healthMonitor"`
			Persistence *schema.Persistence `json:"persistence"`
			Timeouts    *struct {
				Connect string `json:"connect"`
				Client  string `json:"client"`
				Server  string `json:"server"`
			} `json:"timeouts"`
			Maxconn   int `json:"maxconn"`
			Placement struct {
				Zones  []string `json:"zones"`
				Tags   []string `json:"tags"`
				Device string   `json:"device"`
				HA     bool     `json:"ha"`
			} `json:"placement"`
			Failback *bool           `json:"failback"`
			NodeTLS  *schema.NodeTLS `json:"nodeTLS"`
		}
		if err := dec(m, &b); err != nil {
			return nil, errors.New("balancer " + name + ": " + err.Error())
		}
		var derr error
		dur := func(s, def string) time.Duration {
			d, err := time.ParseDuration(or(s, def))
			if err != nil && derr == nil {
				derr = err
			}
			return d
		}
		hm := b.HealthMonitor
		out := &schema.Balancer{
			Name: name, Tenant: or(b.Tenant, "default"),
			Protocol:  or(b.Protocol, "http"),
			Algorithm: or(b.Algorithm, "roundrobin"),
			VIPs:      b.VIPs,
			HealthMonitor: schema.HealthMonitor{
				Type: or(hm.Type, "tcp"), Method: hm.Method, Path: hm.Path, Expect: hm.Expect,
				Interval: dur(hm.Interval, "2s"), Timeout: dur(hm.Timeout, "1s"),
				Rise: orInt(hm.Rise, 2), Fall: orInt(hm.Fall, 3),
			},
			Persistence: b.Persistence,
			Maxconn:     b.Maxconn,
			Placement:   schema.Placement{Zones: b.Placement.Zones, Tags: b.Placement.Tags, Device: b.Placement.Device, HA: b.Placement.HA},
			Failback:    b.Failback == nil || *b.Failback,
			NodeTLS:     b.NodeTLS,
		}
		if out.HealthMonitor.Type == "http" {
			out.HealthMonitor.Method = or(hm.Method, "GET")
			out.HealthMonitor.Path = or(hm.Path, "/")
			out.HealthMonitor.Expect = orInt(hm.Expect, 200)
		}
		if p := out.Persistence; p != nil && p.Type == "cookie" && p.Cookie == "" {
			p.Cookie = "SRV"
		}
		if t := b.Timeouts; t != nil {
			out.Timeouts = &schema.Timeouts{}
			if t.Connect != "" {
				out.Timeouts.Connect = dur(t.Connect, "")
			}
			if t.Client != "" {
				out.Timeouts.Client = dur(t.Client, "")
			}
			if t.Server != "" {
				out.Timeouts.Server = dur(t.Server, "")
			}
		}
		for _, n := range b.Nodes {
			w, st := 1, n.State
			if n.Weight != nil {
				w = *n.Weight
			}
			if st == "" {
				st = schema.NodeActive
			}
			out.Nodes = append(out.Nodes, schema.Node{Address: n.Address, Port: n.Port, Weight: w, Maxconn: n.Maxconn, Backup: n.Backup, State: st})
		}
		if derr != nil {
			return nil, errors.New("balancer " + name + ": " + derr.Error())
		}
		sp.Balancers[name] = out
	}
	return sp, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// testCerts is a CA and a certificate made once for every check.
var testCerts struct {
	once sync.Once
	ca   *testcert.CA
	leaf *testcert.Leaf
}

// crtRE finds the files a rendered config has HAProxy read: crt and
// ca-file paths.
var crtRE = regexp.MustCompile(`( crt | ca-file )(/[A-Za-z0-9._/-]+)`)

// withTestCerts writes a test certificate (with its key) for each crt
// path of cfg and the test CA for each ca-file path under dir, and
// returns cfg with those paths moved under dir: haproxy -c loads every
// certificate, so a config with TLS checks only with them present.
func withTestCerts(t *testing.T, dir string, cfg []byte) []byte {
	t.Helper()
	testCerts.once.Do(func() {
		testCerts.ca = testcert.NewCA("lbc golden CA")
		testCerts.leaf = testCerts.ca.Leaf(testcert.Opts{DNS: []string{"www.example.com"}})
	})
	return crtRE.ReplaceAllFunc(cfg, func(m []byte) []byte {
		sm := crtRE.FindSubmatch(m)
		p := filepath.Join(dir, "files", string(sm[2]))
		data := testCerts.leaf.Bundle()
		if string(sm[1]) == " ca-file " {
			data = testCerts.ca.PEM()
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return append(append([]byte{}, sm[1]...), p...)
	})
}
