package classify

import (
	"slices"
	"strings"
	"testing"

	"lbc/schema"
)

// Servers with TLS to the nodes (nodeTLS): read, their weights changed at
// runtime; added, deleted or with other TLS words, a reload.
func TestNodeTLSServers(t *testing.T) {
	tlsTo := func(sni string) func(*schema.Balancer) {
		return func(b *schema.Balancer) {
			b.NodeTLS = &schema.NodeTLS{Verify: "required", CA: &schema.CertRef{Name: "internal"}, SNI: sni}
		}
	}
	old := render(t, rev1, web(tlsTo("app.internal.example")))
	if !strings.Contains(string(old), " ssl verify required ca-file ") {
		t.Fatalf("no TLS server line:\n%s", old)
	}
	ss, err := Servers(old)
	if err != nil || len(ss) != 3 || ss[1].Weight != 2 {
		t.Fatalf("Servers: %v %+v", err, ss)
	}
	weight := render(t, rev2, web(tlsTo("app.internal.example"), func(b *schema.Balancer) { b.Nodes[0].Weight = 5 }))
	if r := Change(old, weight, true); r.Class != Runtime || !slices.Equal(ops(r), []string{"be_web/198.51.100.1_8080 weight 1 → 5"}) {
		t.Errorf("weight of a TLS server: %+v", r)
	}
	for name, cfg := range map[string][]byte{
		"added":   render(t, rev2, web(tlsTo("app.internal.example"), func(b *schema.Balancer) { b.Nodes = append(b.Nodes, node(4, 1)) })),
		"deleted": render(t, rev2, web(tlsTo("app.internal.example"), func(b *schema.Balancer) { b.Nodes = b.Nodes[:2] })),
		"sni":     render(t, rev2, web(tlsTo("other.internal.example"))),
	} {
		if r := Change(old, cfg, true); r.Class != Reload || !strings.Contains(r.Reason, "TLS to the node") {
			t.Errorf("%s: %+v", name, r)
		}
	}
}
