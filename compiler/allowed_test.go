package compiler

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// Every line of every rendered golden file, and of the fuzz renderer's
// seeds, is one that allowed.go lists: a renderer that writes a new
// directive fails here until its pattern is added there (and a saved
// plan carrying it is refused meanwhile).
func TestRenderedLinesAllowed(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	n := 0
	for _, f := range files {
		a, err := txtar.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range a.Files {
			var err error
			switch filepath.Base(g.Name) {
			case "haproxy.cfg":
				err = CheckHAProxyConfig(g.Data)
			case "keepalived.conf":
				err = CheckKeepalivedConfig(g.Data)
			default:
				continue
			}
			n++
			if err != nil {
				t.Errorf("%s: %s:\n%v", f, g.Name, err)
			}
		}
	}
	for _, s := range [][6]string{
		{"web", "/healthz?full=1&x=(a);b=@c", "SRV.1", "HEAD", "/var/lib/lbc", "eth0"},
		{"a.b-c", "/", "c", "DELETE", "/srv/lbc-state/x_y", "bond0.100"},
	} {
		cfg, ka, cfgErr, kaErr := fuzzRender(s[0], s[1], s[2], s[3], s[4], s[5])
		if cfgErr != nil || kaErr != nil {
			t.Fatalf("render %q: %v %v", s, cfgErr, kaErr)
		}
		if err := CheckHAProxyConfig(cfg); err != nil {
			t.Errorf("render %q: %v", s, err)
		}
		if err := CheckKeepalivedConfig(ka); err != nil {
			t.Errorf("render %q: %v", s, err)
		}
		n += 2
	}
	t.Logf("%d rendered files checked", n)
}

// Lines that lbc does not render are refused, each named with its line
// number and where the list of rendered lines is.
func TestHostileLinesRefused(t *testing.T) {
	a, err := txtar.ParseFile("testdata/golden/ha-pair.txtar")
	if err != nil {
		t.Fatal(err)
	}
	var cfg, ka string
	for _, f := range a.Files {
		switch f.Name {
		case "out/lb-a1/haproxy.cfg":
			cfg = string(f.Data)
		case "out/lb-a1/keepalived.conf":
			ka = string(f.Data)
		}
	}
	if cfg == "" || ka == "" || CheckHAProxyConfig([]byte(cfg)) != nil || CheckKeepalivedConfig([]byte(ka)) != nil {
		t.Fatal("ha-pair.txtar's lb-a1 files missing or refused")
	}
	insert := func(file, after, line string) string {
		i := strings.Index(file, after)
		if i < 0 {
			t.Fatalf("no %q in the file", after)
		}
		i += len(after)
		return file[:i] + line + "\n" + file[i:]
	}
	for _, tc := range []struct {
		name, after, line string
	}{
		{"lua-load", "global\n", "    lua-load /tmp/x.lua"},
		{"lua-load-per-thread", "global\n", "    lua-load-per-thread /tmp/x.lua"},
		{"stats socket on TCP", "global\n", "    stats socket ipv4@0.0.0.0:9999 level admin"},
		{"stats socket path with an address", "global\n", "    stats socket /var/lib/lbc,ipv4@0.0.0.0:9999/haproxy.sock mode 600 level admin expose-fd listeners"},
		{"external-check", "global\n", "    external-check"},
		{"external-check command", "\nbackend be_shop-ha\n", "    external-check command /bin/sh"},
		{"option external-check", "\nbackend be_shop-ha\n", "    option external-check"},
		{"setenv", "global\n", "    setenv X y"},
		{"a trailing comment", "\nbackend be_shop-ha\n", "    mode http # x"},
		{"a tab", "\nbackend be_shop-ha\n", "    mode\thttp"},
		{"server with an extra keyword", "\nbackend be_shop-ha\n", "    server x 198.51.100.1:80 weight 1 check ssl crt /etc/shadow"},
		{"bind with a unix socket", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    bind unix@/tmp/x.sock"},
		{"a section lbc does not render", "\n", "userlist u"},
		{"a .if block", "\n", ".if defined(X)"},
		{"a quoted ${VAR}", "\nbackend be_shop-ha\n", `    http-check send meth GET uri "${HOME}"`},
		{"duration beyond HAProxy's timers", "\nbackend be_shop-ha\n", "    timeout check 2147484s"},
		{"a redirect to a sample fetch", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    http-request redirect location %[env(SECRET)] code 302 if !lbc_routed"},
		{"a condition of another shape", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    http-request deny if rule0_0 || TRUE !lbc_routed"},
		{"an acl with a flag", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    acl rule0_0 path -m str -f /etc/shadow"},
		{"use_backend by lua", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    use_backend %[lua.pick]"},
		{"http-request lua", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    http-request lua.x"},
		{"a bind with a crt-list", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    bind 203.0.113.20:443 ssl crt-list /etc/shadow ssl-min-ver TLSv1.2"},
		{"a bind with ca-verify-file", "\nfrontend fe_shop-ha_203.0.113.20_443\n", "    bind 203.0.113.20:443 ssl crt /a.pem ssl-min-ver TLSv1.2 ca-verify-file /b"},
		{"a server with an sni fetch", "\nbackend be_shop-ha\n", "    server x 198.51.100.1:443 weight 1 ssl verify none sni env(SECRET)"},
	} {
		t.Run("haproxy/"+tc.name, func(t *testing.T) {
			err := CheckHAProxyConfig([]byte(insert(cfg, tc.after, tc.line)))
			if err == nil || !strings.Contains(err.Error(), "is not a line lbc renders") || !strings.Contains(err.Error(), "compiler/allowed.go") {
				t.Errorf("%q accepted or refused unclearly: %v", tc.line, err)
			}
		})
	}
	for _, tc := range []struct {
		name, after, line string
	}{
		{"notify script", "vrrp_instance vi_203.0.113.20 {\n", "    notify /tmp/x.sh"},
		{"notify_master", "vrrp_instance vi_203.0.113.20 {\n", "    notify_master \"/bin/sh -c id\""},
		{"include", "\n", "include /tmp/x.conf"},
		{"another vrrp_script", "\n", "vrrp_script x {\n    script \"/bin/sh -c id\"\n}"},
		{"script_user other", "global_defs {\n", "    script_user nobody"},
	} {
		t.Run("keepalived/"+tc.name, func(t *testing.T) {
			err := CheckKeepalivedConfig([]byte(insert(ka, tc.after, tc.line)))
			if err == nil || !strings.Contains(err.Error(), "is not a line lbc renders") {
				t.Errorf("%q accepted or refused unclearly: %v", tc.line, err)
			}
		})
	}
	// The health check script with another command.
	bad := strings.Replace(ka, "/usr/bin/socat -u", "/bin/sh -c", 1)
	if err := CheckKeepalivedConfig([]byte(bad)); err == nil {
		t.Error("a vrrp_script running another command accepted")
	}
}

func TestAllowedPatternsParse(t *testing.T) {
	// init parsed them all (a bad one panics); and no pattern is listed twice.
	seen := map[string]bool{}
	for _, s := range haproxySections {
		for _, d := range s.directives {
			if seen[s.head+"|"+d] {
				t.Errorf("%s: %q listed twice", s.head, d)
			}
			seen[s.head+"|"+d] = true
		}
	}
}
