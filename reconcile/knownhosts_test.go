package reconcile

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newKey(t testing.TB) (ssh.PublicKey, ssh.Signer) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey(), s
}

// outcome is a host key check's answer, comparable across callbacks.
func outcome(err error) string {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return fmt.Sprintf("revoked at %s:%d", filepath.Base(re.Revoked.Filename), re.Revoked.Line)
	case errors.As(err, &ke):
		var want []string
		for _, k := range ke.Want {
			want = append(want, fmt.Sprintf("%s:%d", filepath.Base(k.Filename), k.Line))
		}
		slices.Sort(want)
		return "key error, known: " + strings.Join(want, " ")
	}
	return "error: " + err.Error()
}

// The index answers every check as x/crypto's knownhosts does, over a
// file that mixes plain lines with what is left to the library: hashed
// hosts, wildcard and negated patterns, @revoked and @cert-authority
// lines, comments. A wrong key is refused, a revoked one too even when a
// plain line holds it, an unknown host is unknown, and the lines named in
// an error are the file's.
func TestHostKeyIndexAgreesWithKnownhosts(t *testing.T) {
	k := make([]ssh.PublicKey, 8)
	var caSigner ssh.Signer
	for i := range k {
		k[i], _ = newKey(t)
	}
	ca, caSigner := newKey(t)
	line := func(hosts []string, key ssh.PublicKey) string { return knownhosts.Line(hosts, key) }
	lines := []string{
		"# a comment",
		line([]string{"lb-a1.example"}, k[0]),
		line([]string{"[127.0.0.1]:2201", "lb-a2.example"}, k[1]),
		"",
		line([]string{knownhosts.HashHostname("lb-hashed.example")}, k[2]),
		line([]string{"*.wild.example"}, k[3]),
		line([]string{"lb-a1.example"}, k[4]), // a second key for a host
		"@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k[5]))),
		line([]string{"lb-revoked.example"}, k[5]),
		"@cert-authority *.ca.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca))),
		line([]string{"2001:db8::1", "[2001:db8::2]:2222"}, k[6]),
		line([]string{"*.neg.example,!bad.neg.example"}, k[7]),
		line([]string{"lb-a1.example"}, k[7]) + " with a comment",
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lib, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := newHostKeyIndex(file)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: k[0], CertType: ssh.HostCert, ValidPrincipals: []string{"h.ca.example"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 22}
	hosts := []string{"lb-a1.example:22", "127.0.0.1:2201", "lb-a2.example:22", "lb-a2.example:2201", "lb-hashed.example:22",
		"x.wild.example:22", "lb-revoked.example:22", "h.ca.example:22", "[2001:db8::1]:22", "[2001:db8::2]:2222",
		"ok.neg.example:22", "bad.neg.example:22", "unknown.example:22", ""}
	keys := append(append([]ssh.PublicKey{}, k...), cert, ca)
	differ := 0
	for _, h := range hosts {
		for i, key := range keys {
			want, got := outcome(lib(h, remote, key)), outcome(ix(h, remote, key))
			if want != got {
				differ++
				t.Errorf("host %q key %d: knownhosts says %q, the index %q", h, i, want, got)
			}
		}
	}
	// What the matrix covers: accepted, refused as changed, unknown, revoked.
	for _, c := range []struct {
		host string
		key  ssh.PublicKey
		want string
	}{
		{"lb-a1.example:22", k[4], "ok"},
		{"lb-a1.example:22", k[1], "key error, known: known_hosts:13 known_hosts:2 known_hosts:7"},
		{"unknown.example:22", k[0], "key error, known: "},
		{"lb-revoked.example:22", k[5], "revoked at known_hosts:8"},
		{"lb-hashed.example:22", k[2], "ok"},
		{"x.wild.example:22", k[3], "ok"},
		{"h.ca.example:22", cert, "ok"},
		{"bad.neg.example:22", k[7], "key error, known: "},
	} {
		if got := outcome(ix(c.host, remote, c.key)); got != c.want {
			t.Errorf("host %s: %q, want %q", c.host, got, c.want)
		}
	}
}

// BenchmarkHostKeyCheck: one check (lbc makes two a connection) against a
// known_hosts of 10,000 plain lines, by x/crypto's knownhosts and by the
// index: the library's cost grows with the file, the index's does not.
func BenchmarkHostKeyCheck(b *testing.B) {
	var sb strings.Builder
	var last ssh.PublicKey
	for i := range 10000 {
		k, _ := newKey(b)
		sb.WriteString(knownhosts.Line([]string{fmt.Sprintf("[127.0.0.1]:%d", 10000+i)}, k) + "\n")
		last = k
	}
	file := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 19999}
	for _, c := range []struct {
		name string
		new  func(string) (ssh.HostKeyCallback, error)
	}{{"knownhosts", func(f string) (ssh.HostKeyCallback, error) { return knownhosts.New(f) }}, {"index", newHostKeyIndex}} {
		b.Run(c.name, func(b *testing.B) {
			cb, err := c.new(file)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := cb("127.0.0.1:19999", remote, last); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
