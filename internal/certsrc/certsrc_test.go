package certsrc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/testcert"
	"lbc/schema"
)

// fixture is a certificate directory with a good certificate (www, with
// its intermediate and CA) and one of each kind of bad input.
func fixture(t *testing.T) (dir string, root *testcert.CA, good *testcert.Leaf) {
	t.Helper()
	dir = t.TempDir()
	root = testcert.NewCA("lbc test root")
	inter := root.Intermediate("lbc test intermediate")
	good = inter.Leaf(testcert.Opts{DNS: []string{"www.example.com", "example.com"}})
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := good.WriteDir(dir, "www"); err != nil {
		t.Fatal(err)
	}
	write("www.ca.pem", root.PEM())
	expired := inter.Leaf(testcert.Opts{DNS: []string{"old.example.com"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	expired.WriteDir(dir, "old")
	other := inter.Leaf(testcert.Opts{DNS: []string{"x.example.com"}})
	write("mismatch.pem", good.CertPEM())
	write("mismatch.key", other.KeyPEM())
	// The leaf alone: its intermediate missing.
	write("nochain.pem", testcert.CertPEM(good.Cert))
	write("nochain.key", good.KeyPEM())
	write("nochain.ca.pem", root.PEM())
	write("notpem.pem", []byte("this is not PEM\n"))
	write("notpem.key", good.KeyPEM())
	write("big.pem", bytes.Repeat([]byte("A"), 10<<20))
	write("big.key", good.KeyPEM())
	write("internal-ca.pem", root.PEM())
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "stolen.pem"), good.CertPEM(), 0o600)
	os.WriteFile(filepath.Join(outside, "stolen.key"), good.KeyPEM(), 0o600)
	os.Symlink(filepath.Join(outside, "stolen.pem"), filepath.Join(dir, "link.pem"))
	os.Symlink(filepath.Join(outside, "stolen.key"), filepath.Join(dir, "link.key"))
	return dir, root, good
}

func TestDirRefusesHostileInput(t *testing.T) {
	dir, _, good := fixture(t)
	d, err := OpenDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := NewResolver(d, nil)
	ctx := context.Background()
	b, err := r.bundle(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	if errs := b.Check(time.Now(), []string{"www.example.com", "example.com"}); len(errs) != 0 {
		t.Fatalf("good certificate: %v", errs)
	}
	if !bytes.Equal(b.Leaf.Raw, good.Cert.Raw) || len(b.Chain) != 1 {
		t.Errorf("parsed %d chain certificates", len(b.Chain))
	}
	cases := []struct{ name, sni, want string }{
		{"../www", "", "a name, not a path"},
		{"/etc/passwd", "", "a name, not a path"},
		{"link", "", "path escapes from parent"},
		{"old", "", "expired on"},
		{"mismatch", "", "the key does not match the certificate"},
		{"nochain", "", "chain not complete to its CA"},
		{"www", "shop.example.org", "host name shop.example.org is not covered by its SANs"},
		{"notpem", "", "no PEM certificate in the file (not PEM?)"},
		{"big", "", "more than a certificate or key file can be"},
		{"absent", "", "not in the certificate source"},
	}
	for _, c := range cases {
		var msgs []string
		b, err := r.bundle(ctx, c.name)
		if err != nil {
			msgs = append(msgs, err.Error())
		} else {
			var sni []string
			if c.sni != "" {
				sni = []string{c.sni}
			}
			for _, e := range b.Check(time.Now(), sni) {
				msgs = append(msgs, e.Error())
			}
		}
		all := strings.Join(msgs, "; ")
		if !strings.Contains(all, c.want) {
			t.Errorf("%s: %q, want %q", c.name, all, c.want)
		}
		if strings.Contains(all, "PRIVATE KEY") || strings.Contains(all, "BEGIN") {
			t.Errorf("%s: message shows PEM: %q", c.name, all)
		}
	}
	// Resolve refuses what Check refuses.
	if _, err := r.Resolve(ctx, compiler.AuxCert, "old"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("resolve of an expired certificate: %v", err)
	}
	pemb, err := r.Resolve(ctx, compiler.AuxCert, "www")
	if err != nil || !bytes.Contains(pemb, []byte("PRIVATE KEY")) || !bytes.HasPrefix(pemb, good.CertPEM()) {
		t.Errorf("resolve www: %v", err)
	}
	if _, err := r.Resolve(ctx, compiler.AuxCA, "internal-ca"); err != nil {
		t.Errorf("resolve CA: %v", err)
	}
}

func TestOpenDirRefusesSpecTree(t *testing.T) {
	tree := t.TempDir()
	in := filepath.Join(tree, "certs")
	os.Mkdir(in, 0o700)
	if _, err := OpenDir(in, tree); err == nil || !strings.Contains(err.Error(), "inside the spec tree") {
		t.Errorf("cert dir inside the tree: %v", err)
	}
	if d, err := OpenDir(t.TempDir(), tree); err != nil {
		t.Errorf("cert dir outside the tree: %v", err)
	} else {
		d.Close()
	}
}

// TestCheckSpecPositions: each problem is a diagnostic at the position
// of the reference that names the certificate, with its field path; an
// expiry within warn is a warning.
func TestCheckSpecPositions(t *testing.T) {
	dir, _, _ := fixture(t)
	root := testcert.NewCA("soon")
	root.Leaf(testcert.Opts{DNS: []string{"soon.example.com"}, NotAfter: time.Now().Add(10 * 24 * time.Hour)}).WriteDir(dir, "soon")
	d, err := OpenDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pos := func(l int) schema.Pos { return schema.Pos{File: "b.cue", Line: l, Col: 3} }
	ref := func(name string, l int, sni ...string) schema.CertRef {
		return schema.CertRef{Name: name, SNI: sni, Pos: pos(l), Field: "balancers.web.vips[0].tls.certificates[x]"}
	}
	spec := &schema.Spec{Balancers: map[string]*schema.Balancer{"web": {Name: "web",
		VIPs: []schema.VIP{{TLS: &schema.TLS{Certificates: []schema.CertRef{
			ref("www", 1, "www.example.com"), ref("old", 2), ref("www", 3, "api.example.com"), ref("soon", 4), {HostPath: "/etc/ssl/x.pem"},
		}}}},
		NodeTLS: &schema.NodeTLS{Verify: "required", CA: &schema.CertRef{Name: "nope", Pos: pos(5), Field: "balancers.web.nodeTLS.ca"}},
	}}}
	ds, infos := NewResolver(d, nil).CheckSpec(context.Background(), spec, 30*24*time.Hour)
	var got []string
	for _, dg := range ds {
		got = append(got, dg.Severity+" "+dg.String())
	}
	want := []string{
		"error b.cue:2:3: balancers.web.vips[0].tls.certificates[x]: certificate old: expired on",
		"error b.cue:3:3: balancers.web.vips[0].tls.certificates[x]: certificate www: host name api.example.com is not covered",
		"warning b.cue:4:3: balancers.web.vips[0].tls.certificates[x]: warning: certificate soon expires on",
		"error b.cue:5:3: balancers.web.nodeTLS.ca: CA nope: ",
	}
	if len(got) != len(want) {
		t.Fatalf("diagnostics:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d: %q, want prefix %q", i, got[i], want[i])
		}
	}
	if in := infos["www"]; len(in.Fingerprint) != 64 || in.Subject == "" || len(in.SANs) != 2 || in.Issuer == "" {
		t.Errorf("info %+v", in)
	}
	if !errors.Is(func() error { _, err := d.CA(context.Background(), "nope"); return err }(), ErrNotFound) {
		t.Error("absent CA not ErrNotFound")
	}
}
