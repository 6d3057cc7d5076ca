// Package certsrc resolves the certificates a spec references by name:
// a Source gives a certificate's PEM (certificate and chain) and its key,
// Parse reads them into a Bundle, and Bundle.Check says whether it may
// reach a host (the key matches, it is valid now, its chain is complete
// to the CA given, it covers the spec's SNI names). Dir is the directory
// source (--cert-dir); Vault or a cloud secret manager would be other
// Sources. What it leaves to others: the spec's checks (schema), where a
// certificate goes on the host (compiler), shipping it (reconcile).
//
// Key bytes never appear in an error or an Info: errors name the
// certificate and the file, never their content.
package certsrc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// MaxFile bounds each file a source reads: a certificate with its chain
// or a key is a few KB; a file of 1 MiB or more is refused unread.
const MaxFile = 1 << 20

// Source gives the PEM of a certificate by name.
type Source interface {
	// Cert returns the certificate (then its chain) and the key of name.
	Cert(ctx context.Context, name string) (certPEM, keyPEM []byte, err error)
	// CA returns the CA certificates of name (no key); ErrNotFound when
	// the source has none.
	CA(ctx context.Context, name string) ([]byte, error)
	// Roots returns the CA that name's chain must be complete to, nil
	// when the source gives none for it.
	Roots(ctx context.Context, name string) ([]byte, error)
}

// ErrNotFound: the source has no such certificate.
var ErrNotFound = errors.New("not in the certificate source")

// nameRE is a certificate name (as the schema's #CertName).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// CheckName refuses a name that is not one: a path ("../x", "/etc/x"),
// a dot, anything a file name in the source could not be.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("certificate name %q: must be 1 to 64 of A-Z a-z 0-9 _ - (a name, not a path)", shortName(name))
	}
	return nil
}

func shortName(s string) string {
	if strings.Contains(s, "-----BEGIN") || strings.Contains(s, "PRIVATE KEY") {
		return "(PEM text, not shown)"
	}
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Bundle is one parsed certificate with its key.
type Bundle struct {
	Name  string
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // intermediates, in the order the file gives them
	key   crypto.PrivateKey
	pem   []byte // certificate, chain, key: what HAProxy's crt reads
	roots *x509.CertPool
}

// Info is what plans and status show of a certificate: never key bytes.
type Info struct {
	Name        string    `json:"name"`
	Subject     string    `json:"subject"`
	SANs        []string  `json:"sans,omitempty"`
	Issuer      string    `json:"issuer"`
	NotAfter    time.Time `json:"notAfter"`
	Fingerprint string    `json:"sha256"` // of the leaf certificate's DER
}

// Parse reads a certificate (PEM: the leaf first, then its chain) and its
// key (PEM: PKCS #8, PKCS #1 or SEC 1). roots, when not nil, is the CA
// the chain must be complete to (Check).
func Parse(name string, certPEM, keyPEM, roots []byte) (*Bundle, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", name, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: key: %w", name, err)
	}
	b := &Bundle{Name: name, Leaf: certs[0], Chain: certs[1:], key: key}
	if roots != nil {
		rc, err := parseCerts(roots)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: its CA: %w", name, err)
		}
		b.roots = x509.NewCertPool()
		for _, c := range rc {
			b.roots.AddCert(c)
		}
	}
	var out bytes.Buffer
	for _, c := range certs {
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: key: %w", name, err)
	}
	pem.Encode(&out, &pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	b.pem = out.Bytes()
	return b, nil
}

// ParseCA reads CA certificates (PEM, at least one, no key).
func ParseCA(name string, data []byte) ([]*x509.Certificate, error) {
	cs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", name, err)
	}
	return cs, nil
}

// parseCerts reads the CERTIFICATE blocks of data: at least one, and
// nothing but certificates (a key in a certificate file is refused).
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %s block where only certificates belong", blockType(blk.Type))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in the file (not PEM?)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("text after the last PEM block")
	}
	return out, nil
}

// blockType names a PEM block type in a message: a private key's type is
// said as such, other odd types are not echoed.
func blockType(t string) string {
	if strings.Contains(t, "PRIVATE KEY") {
		return "private key"
	}
	if len(t) > 32 {
		return "non-certificate"
	}
	return fmt.Sprintf("%q", t)
}

func parseKey(data []byte) (crypto.PrivateKey, error) {
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM key in the file (not PEM?)")
	}
	if b2, _ := pem.Decode(rest); b2 != nil {
		return nil, errors.New("more than one PEM block in the key file")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS #8, PKCS #1 or EC private key (encrypted keys are not supported)")
}

// Check says why b may not reach a host: its key does not match, it is
// not valid at now, its chain is not complete to its CA (when the source
// gives one), or a host name of sni is not covered by its SANs. All
// problems, one error each.
func (b *Bundle) Check(now time.Time, sni []string) []error {
	var errs []error
	if !keyMatches(b.Leaf.PublicKey, b.key) {
		errs = append(errs, errors.New("the key does not match the certificate"))
	}
	switch {
	case now.After(b.Leaf.NotAfter):
		errs = append(errs, fmt.Errorf("expired on %s", b.Leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(b.Leaf.NotBefore):
		errs = append(errs, fmt.Errorf("not valid before %s", b.Leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	if b.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range b.Chain {
			inter.AddCert(c)
		}
		if _, err := b.Leaf.Verify(x509.VerifyOptions{Roots: b.roots, Intermediates: inter, CurrentTime: now}); err != nil {
			errs = append(errs, fmt.Errorf("chain not complete to its CA: %v", err))
		}
	}
	for _, h := range sni {
		if err := b.Leaf.VerifyHostname(h); err != nil {
			errs = append(errs, fmt.Errorf("host name %s is not covered by its SANs %v", h, b.Leaf.DNSNames))
		}
	}
	return errs
}

func keyMatches(pub crypto.PublicKey, key crypto.PrivateKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	var kp crypto.PublicKey
	switch k := key.(type) {
	case *rsa.PrivateKey:
		kp = &k.PublicKey
	case *ecdsa.PrivateKey:
		kp = &k.PublicKey
	case ed25519.PrivateKey:
		kp = k.Public()
	default:
		return false
	}
	e, ok := kp.(equaler)
	return ok && e.Equal(pub)
}

// HAProxyPEM is the file HAProxy's crt reads: certificate, chain, key.
// It holds the key: it goes to a host inside a transaction and nowhere else.
func (b *Bundle) HAProxyPEM() []byte { return b.pem }

// Info describes b for plans and status.
func (b *Bundle) Info() Info { return InfoOf(b.Name, b.Leaf) }

// InfoOf describes a certificate.
func InfoOf(name string, c *x509.Certificate) Info {
	sum := sha256.Sum256(c.Raw)
	return Info{Name: name, Subject: c.Subject.String(), SANs: c.DNSNames, Issuer: c.Issuer.String(),
		NotAfter: c.NotAfter.UTC(), Fingerprint: hex.EncodeToString(sum[:])}
}
