package classify

import (
	"slices"
	"strings"
	"testing"

	"lbc/schema"
)

// withL7 gives web a pool api and a rule sending /api to it.
func withL7(b *schema.Balancer) {
	b.Pools = []schema.Pool{{Name: "api", Algorithm: "roundrobin", Nodes: []schema.Node{node(11, 1), node(12, 2)}, HealthMonitor: b.HealthMonitor}}
	b.Rules = []schema.Rule{{Match: []schema.Condition{{Kind: schema.CondPath, Compare: schema.CmpPrefix, Value: "/api"}}, Pool: "api"}}
}

// A pool is a backend like any other: its server changes go at runtime;
// a rule changed, added or removed changes the frontend: a reload.
func TestL7Changes(t *testing.T) {
	live := render(t, rev1, web(withL7))
	for _, tc := range []struct {
		name       string
		mod        func(*schema.Balancer)
		class      Class
		wantOps    []string
		wantReason string
	}{
		{"pool weight", func(b *schema.Balancer) { b.Pools[0].Nodes[1].Weight = 7 }, Runtime,
			[]string{"be_web:api/198.51.100.12_8080 weight 2 → 7"}, ""},
		{"pool node added", func(b *schema.Balancer) { b.Pools[0].Nodes = append(b.Pools[0].Nodes, node(13, 1)) }, Runtime,
			[]string{"add server be_web:api/198.51.100.13_8080 198.51.100.13:8080 weight 1 check inter 2s fall 3 rise 2"}, ""},
		{"rule changed", func(b *schema.Balancer) { b.Rules[0].Match[0].Value = "/v2" }, Reload,
			nil, `frontend fe_web_203.0.113.10_80: "acl rule0_0 path -m beg /v2" is new or changed`},
		{"rule added", func(b *schema.Balancer) { b.Rules = append(b.Rules, schema.Rule{Reject: true}) }, Reload,
			nil, `frontend fe_web_203.0.113.10_80: "http-request deny if !lbc_routed" is new or changed`},
		{"pool added", func(b *schema.Balancer) {
			b.Pools = append(b.Pools, schema.Pool{Name: "b", Algorithm: "roundrobin", Nodes: []schema.Node{node(14, 1)}, HealthMonitor: b.HealthMonitor})
		}, Reload, nil, "backend be_web:b is new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Change(live, render(t, rev2, web(withL7, tc.mod)), true)
			if r.Class != tc.class || !slices.Equal(ops(r), tc.wantOps) || !strings.Contains(r.Reason, tc.wantReason) {
				t.Errorf("got %s %q %q, want %s %q %q", r.Class, r.Reason, ops(r), tc.class, tc.wantReason, tc.wantOps)
			}
		})
	}
}
