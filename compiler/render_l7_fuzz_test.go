package compiler

import (
	"regexp"
	"strings"
	"testing"

	"lbc/schema"
)

// The schema's own constraints (schema/schema.cue) for the fuzzed L7 values.
var (
	schemaMatchValue = regexp.MustCompile("^[A-Za-z0-9!%&()*+,./:;<=>?@\\[\\]^_`{|}~-]{1,512}$")
	schemaToken      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	schemaURL        = regexp.MustCompile(`^(https?://[A-Za-z0-9.:\[\]-]{1,260})?(/[A-Za-z0-9._~!&()*+,;=:@/?-]{0,1000})?$`)
)

// fuzzRenderL7 renders the haproxy.cfg of a balancer whose rules compare
// a path, a header and a cookie with value, name the header and cookie
// name, and redirect to target.
func fuzzRenderL7(value, name, target string) ([]byte, error) {
	d := testDevice("lb-a1", "192.0.2.11", "a")
	b := testBalancer("web", "203.0.113.10", 80)
	b.Pools = []schema.Pool{{Name: "api", Algorithm: "roundrobin", Nodes: b.Nodes, HealthMonitor: b.HealthMonitor}}
	b.Rules = []schema.Rule{
		{Match: []schema.Condition{{Kind: schema.CondPath, Compare: schema.CmpPrefix, Value: value}}, Pool: "api"},
		{Match: []schema.Condition{{Kind: schema.CondHeader, Name: name, Compare: schema.CmpExact, Value: value, Not: true}}, Reject: true},
		{Match: []schema.Condition{{Kind: schema.CondCookie, Name: name, Compare: schema.CmpFound}}, Redirect: &schema.Redirect{Location: target, Code: 302}},
	}
	return RenderHAProxy(d, []*schema.Balancer{b}, nil, Options{Version: "v1", Revision: "r1"})
}

// l7Shape is shape without the "--" that ends the flags before a value
// starting with '-'.
func l7Shape(b []byte) string {
	return strings.Join(shape([]byte(strings.ReplaceAll(string(b), " -- ", " "))), " ")
}

func FuzzRenderRulesNoInjection(f *testing.F) {
	f.Add("/api", "X-Env", "/new")
	f.Add("/a\n    lua-load /tmp/x.lua", "X-Env", "/new")
	f.Add("/a", "X-Env)", "/new")
	f.Add("/a", "X-Env", "/new code 301 if TRUE\n    http-request deny")
	f.Add("${HOME}", "X", "/%[src]")
	f.Add("-f", "X", "https://a.example/b")
	f.Add("a#b", "a,b", "/\"x\"")
	f.Add("", "", "")

	base, err := fuzzRenderL7("/api", "X-Env", "/new")
	if err != nil {
		f.Fatal(err)
	}
	baseShape := l7Shape(base)
	f.Fuzz(func(t *testing.T, value, name, target string) {
		cfg, err := fuzzRenderL7(value, name, target)
		safe := checkWord(value, false) == nil && isToken(name) && checkWord(target, false) == nil && !strings.Contains(target, "%")
		schemaValid := schemaMatchValue.MatchString(value) && schemaToken.MatchString(name) && schemaURL.MatchString(target) && target != ""
		if safe != (err == nil) {
			t.Fatalf("safe values %v but error %v", safe, err)
		}
		if schemaValid && err != nil {
			t.Fatalf("refused a schema-valid spec: %v", err)
		}
		if err != nil {
			if cfg != nil {
				t.Fatal("bytes returned with an error")
			}
			return
		}
		if got := l7Shape(cfg); got != baseShape {
			t.Fatalf("haproxy.cfg changed shape:\n%s", cfg)
		}
		if _, err := ParseHeader(cfg); err != nil {
			t.Fatal(err)
		}
	})
}
