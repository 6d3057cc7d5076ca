// Package testcert makes certificate authorities, intermediates and
// server certificates with their keys for tests, with Go's crypto/x509 at
// test time (no network, nothing stored in the repository). Keys are
// ECDSA P-256: quick to make.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority (a root, or an intermediate of one).
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	parent *CA
}

// Leaf is a server certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain are the intermediates between Cert and the root, nearest first.
	Chain []*x509.Certificate
}

var serial int64 = time.Now().UnixNano()

func nextSerial() *big.Int { serial++; return big.NewInt(serial) }

func newKey() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// NewCA makes a self-signed root valid from an hour ago for ten years.
func NewCA(cn string) *CA {
	k := newKey()
	t := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"lbc test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &CA{Cert: sign(t, t, k.Public(), k), Key: k}
}

// Intermediate makes an intermediate CA signed by ca.
func (ca *CA) Intermediate(cn string) *CA {
	k := newKey()
	t := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"lbc test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &CA{Cert: sign(t, ca.Cert, k.Public(), ca.Key), Key: k, parent: ca}
}

// Opts say what a server certificate is for.
type Opts struct {
	CN        string
	DNS       []string // SANs
	NotBefore time.Time
	NotAfter  time.Time // zero: 90 days from now
}

// Leaf makes a server certificate signed by ca.
func (ca *CA) Leaf(o Opts) *Leaf {
	k := newKey()
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if o.CN == "" && len(o.DNS) > 0 {
		o.CN = o.DNS[0]
	}
	t := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: o.CN, Organization: []string{"lbc test"}},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter, DNSNames: o.DNS,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	l := &Leaf{Cert: sign(t, ca.Cert, k.Public(), ca.Key), Key: k}
	for p := ca; p.parent != nil; p = p.parent {
		l.Chain = append(l.Chain, p.Cert)
	}
	return l
}

// CertPEM is the certificate in PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// PEM is ca's certificate in PEM.
func (ca *CA) PEM() []byte { return CertPEM(ca.Cert) }

// CertPEM is the certificate followed by its intermediates, in PEM.
func (l *Leaf) CertPEM() []byte {
	b := CertPEM(l.Cert)
	for _, c := range l.Chain {
		b = append(b, CertPEM(c)...)
	}
	return b
}

// KeyPEM is the private key in PKCS #8 PEM ("PRIVATE KEY").
func (l *Leaf) KeyPEM() []byte { return KeyPEM(l.Key) }

// KeyPEM is k in PKCS #8 PEM.
func KeyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Bundle is what HAProxy's crt reads: certificate, chain, key.
func (l *Leaf) Bundle() []byte { return append(l.CertPEM(), l.KeyPEM()...) }

// WriteDir writes l as NAME.pem and NAME.key into dir, as a certificate
// source directory holds them.
func (l *Leaf) WriteDir(dir, name string) error {
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), l.CertPEM(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), l.KeyPEM(), 0o600)
}
