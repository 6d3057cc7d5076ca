package compiler

import (
	"bytes"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"lbc/schema"
)

// The schema's own constraints (schema/schema.cue) for the fuzzed fields.
var (
	schemaName     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	schemaHTTPPath = regexp.MustCompile(`^/[A-Za-z0-9._~!&()*+,;=:@%/?-]{0,1000}$`)
	schemaCookie   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	schemaMethod   = regexp.MustCompile(`^(GET|HEAD|OPTIONS|POST|PUT|PATCH|DELETE)$`)
	schemaPath     = regexp.MustCompile(`^/[A-Za-z0-9._/@%+=:,-]{0,1000}$`)
	schemaIface    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$`)
)

// fuzzRender renders haproxy.cfg and keepalived.conf of a device that is
// the HA primary of one balancer built from the fuzzed words.
func fuzzRender(name, hpath, cookie, method, stateDir, iface string) (cfg, ka []byte, cfgErr, kaErr error) {
	d := testDevice("lb-a1", "192.0.2.11", "a")
	d.StateDir, d.VIPInterface = stateDir, iface
	peer := testDevice("lb-b1", "192.0.2.12", "b")
	b := testBalancer(name, "203.0.113.10", 80)
	b.HealthMonitor.Path, b.HealthMonitor.Method = hpath, method
	b.Persistence = &schema.Persistence{Type: "cookie", Cookie: cookie}
	b.Placement.HA = true
	cfg, cfgErr = RenderHAProxy(d, []*schema.Balancer{b}, map[string]string{name: VIPRolePrimary}, Options{Version: "v1", Revision: "r1"})
	sp := testSpec([]*schema.Device{d, peer}, []*schema.Balancer{b})
	hs := []*haVIP{{addr: netip.MustParseAddr("203.0.113.10"), primary: "lb-a1", standby: "lb-b1", balancers: []string{name}, vrid: 7}}
	ka, kaErr = renderKeepalived(sp, d, hs, Options{Version: "v1", Revision: "r1"})
	return
}

// shape is, per line, its first word and its number of words: what a
// value could change if it could split a word or a line.
func shape(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		first := ""
		if len(f) > 0 {
			first = f[0]
			if strings.HasPrefix(first, "fe_") || strings.HasPrefix(first, "be_") {
				first = first[:3]
			}
		}
		out = append(out, first+"/"+strconv.Itoa(len(f)))
	}
	return out
}

func FuzzRenderNoInjection(f *testing.F) {
	f.Add("web", "/healthz", "SRV", "GET", "/var/lib/lbc", "eth0")
	f.Add("web\n    lua-load /tmp/x.lua", "/", "SRV", "GET", "/var/lib/lbc", "eth0")
	f.Add("web", "/ok\r\nhttp-check send meth GET", "SRV", "GET", "/var/lib/lbc", "eth0")
	f.Add("web", "/", "S\"RV", "GET ", "/var/lib/lbc #x", "eth0 }")
	f.Add("web", "/\"${HOME}\"", "SRV", "GET", "/var/lib/lbc", "eth0")
	f.Add("a.b-c", "/a?b=c&d=(e)", "x.y_z", "DELETE", "/srv/lbc@1/state", "ens3.100")
	f.Add("web", "/", "SRV", "GET", "/var/lib/a,b:c", "eth0")
	f.Add("web", "/!", "SRV", "GET", "/var/lib/lbc", "eth0!")
	f.Add("", "", "", "", "", "")

	base, baseKA, err1, err2 := fuzzRender("web", "/healthz", "SRV", "GET", "/var/lib/lbc", "eth0")
	if err1 != nil || err2 != nil {
		f.Fatal(err1, err2)
	}
	baseShape, baseKAShape := shape(base), shape(baseKA)

	f.Fuzz(func(t *testing.T, name, hpath, cookie, method, stateDir, iface string) {
		cfg, ka, cfgErr, kaErr := fuzzRender(name, hpath, cookie, method, stateDir, iface)

		hWords := checkWord(name, false) == nil && checkWord(hpath, false) == nil && checkWord(cookie, false) == nil &&
			checkWord(method, false) == nil && checkWord(stateDir, false) == nil
		kWords := checkWord(name, true) == nil && checkWord(stateDir, true) == nil && checkWord(iface, true) == nil &&
			!strings.ContainsAny(stateDir, ",:")
		schemaValid := schemaName.MatchString(name) && schemaHTTPPath.MatchString(hpath) && schemaCookie.MatchString(cookie) &&
			schemaMethod.MatchString(method) && schemaPath.MatchString(stateDir) && path.Clean(stateDir) == stateDir &&
			schemaIface.MatchString(iface)

		if hWords != (cfgErr == nil) {
			t.Fatalf("haproxy.cfg: safe words %v but error %v", hWords, cfgErr)
		}
		if schemaValid && cfgErr != nil {
			t.Fatalf("haproxy.cfg refused a schema-valid spec: %v", cfgErr)
		}
		if cfgErr == nil {
			if got := shape(cfg); strings.Join(got, " ") != strings.Join(baseShape, " ") {
				t.Fatalf("haproxy.cfg changed shape:\n%s", cfg)
			}
			if _, err := ParseHeader(cfg); err != nil {
				t.Fatal(err)
			}
			if err := CheckHAProxyConfig(cfg); schemaValid && schema.CheckPath(stateDir) == nil && err != nil {
				t.Fatalf("a rendered line is not in allowed.go: %v", err)
			}
		} else if cfg != nil {
			t.Fatal("bytes returned with an error")
		}

		if kWords != (kaErr == nil) {
			t.Fatalf("keepalived.conf: safe words %v but error %v", kWords, kaErr)
		}
		if schemaValid && !strings.ContainsAny(stateDir, ",:") && kaErr != nil {
			t.Fatalf("keepalived.conf refused a schema-valid spec: %v", kaErr)
		}
		if kaErr == nil {
			if got := shape(ka); strings.Join(got, " ") != strings.Join(baseKAShape, " ") {
				t.Fatalf("keepalived.conf changed shape:\n%s", ka)
			}
			if bytes.Count(ka, []byte("{")) != bytes.Count(ka, []byte("}")) {
				t.Fatalf("keepalived.conf braces unbalanced:\n%s", ka)
			}
			if err := CheckKeepalivedConfig(ka); schemaValid && schema.CheckPath(stateDir) == nil && err != nil {
				t.Fatalf("a rendered line is not in allowed.go: %v", err)
			}
		} else if ka != nil {
			t.Fatal("bytes returned with an error")
		}
	})
}
