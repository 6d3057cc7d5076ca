package schema

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TLS termination on VIPs and TLS to nodes: decoding and the checks that
// need no certificate (the certificate source checks the rest, see
// internal/certsrc). Certificates are references; a spec holds no PEM.

// maxHSTS bounds the Strict-Transport-Security max-age (two years, the
// longest the browsers' preload lists ask for).
const maxHSTS = 2 * 365 * 24 * time.Hour

// tls reads the tls field of a VIP value v, nil when absent.
func (d *decoder) tls(c *compiled, v node) *rawTLS {
	x, ok := d.field(v, "tls")
	if !ok {
		return nil
	}
	t := c.tls
	t.ALPN = append([]string(nil), c.tls.ALPN...)
	if f, ok := d.field(x, "certificates"); ok {
		d.list(f, func(e node) {
			var rc rawCert
			d.certRef(e, &rc)
			d.strs(e, "sni", &rc.SNI)
			t.Certificates = append(t.Certificates, rc)
		})
	}
	d.str(x, "minVersion", &t.MinVersion)
	d.strs(x, "alpn", &t.ALPN)
	d.bool(x, "redirectHTTP", &t.RedirectHTTP)
	d.str(x, "hsts", &t.HSTS)
	return &t
}

// certRef reads name and hostPath of a certificate reference.
func (d *decoder) certRef(v node, rc *rawCert) {
	d.str(v, "name", &rc.Name)
	d.str(v, "hostPath", &rc.HostPath)
}

// nodeTLS reads a balancer's nodeTLS, nil when absent.
func (d *decoder) nodeTLS(c *compiled, v node) *rawNodeTLS {
	x, ok := d.field(v, "nodeTLS")
	if !ok {
		return nil
	}
	t := c.nodeTLS
	d.str(x, "verify", &t.Verify)
	d.str(x, "sni", &t.SNI)
	if ca, ok := d.field(x, "ca"); ok {
		t.CA = &rawCert{}
		d.certRef(ca, t.CA)
	}
	return &t
}

// checkTLS checks the tls of VIP i (field vips[i].tls) of a balancer of
// protocol, reporting with bad, and returns it parsed.
func checkTLS(protocol string, i int, r *rawTLS, fp map[string]Pos, pos Pos, base string, bad func(field, format string, args ...any)) *TLS {
	field := fmt.Sprintf("vips[%d].tls", i)
	if protocol != "http" {
		bad(field, "tls needs protocol http (lbc terminates TLS for HTTP only)")
	}
	t := &TLS{MinVersion: r.MinVersion, ALPN: r.ALPN, RedirectHTTP: r.RedirectHTTP}
	if len(r.Certificates) == 0 {
		bad(field+".certificates", "at least one certificate is required")
	}
	names := map[string]int{}
	sni := map[string]int{}
	for j, c := range r.Certificates {
		f := fmt.Sprintf("%s.certificates[%d]", field, j)
		ref, ok := checkCertRef(c, f, bad)
		if !ok {
			continue
		}
		key := ref.Name + "\x00" + ref.HostPath
		if k, dup := names[key]; dup {
			bad(f, "certificate listed twice (also certificates[%d])", k)
			continue
		}
		names[key] = j
		for k, h := range c.SNI {
			if prev, dup := sni[h]; dup {
				bad(fmt.Sprintf("%s.sni[%d]", f, k), "host name %s is also served by certificates[%d]", Quote(h), prev)
			}
			sni[h] = j
		}
		ref.SNI, ref.Pos, ref.Field = c.SNI, at(fp, f, pos), join(base, f)
		t.Certificates = append(t.Certificates, ref)
	}
	if r.HSTS != "" {
		var err error
		t.HSTS, err = time.ParseDuration(r.HSTS)
		switch {
		case err != nil:
			bad(field+".hsts", "invalid duration %s", Quote(r.HSTS))
		case t.HSTS < time.Second, t.HSTS%time.Second != 0:
			bad(field+".hsts", "hsts %s: max-age is whole seconds", Quote(r.HSTS))
		case t.HSTS > maxHSTS:
			bad(field+".hsts", "hsts %s is longer than two years", Quote(r.HSTS))
		}
	}
	seen := map[string]bool{}
	for k, p := range t.ALPN {
		if seen[p] {
			bad(fmt.Sprintf("%s.alpn[%d]", field, k), "protocol %s listed twice", Quote(p))
		}
		seen[p] = true
	}
	return t
}

// checkCertRef checks that c names exactly one of name and hostPath.
func checkCertRef(c rawCert, field string, bad func(field, format string, args ...any)) (CertRef, bool) {
	switch {
	case c.Name != "" && c.HostPath != "":
		bad(field, "set name or hostPath, not both")
	case c.Name == "" && c.HostPath == "":
		bad(field, "set name (a certificate in the certificate source, --cert-dir) or hostPath (a PEM bundle already on the host)")
	case c.HostPath != "":
		if err := CheckPath(c.HostPath); err != nil {
			bad(field+".hostPath", "%v", err)
			return CertRef{}, false
		}
		return CertRef{HostPath: c.HostPath}, true
	default:
		return CertRef{Name: c.Name}, true
	}
	return CertRef{}, false
}

// checkNodeTLS checks a balancer's nodeTLS.
func checkNodeTLS(r *rawNodeTLS, fp map[string]Pos, pos Pos, base string, bad func(field, format string, args ...any)) *NodeTLS {
	t := &NodeTLS{Verify: r.Verify, SNI: r.SNI}
	switch {
	case r.CA != nil:
		ref, ok := checkCertRef(*r.CA, "nodeTLS.ca", bad)
		if ok {
			ref.Pos, ref.Field = at(fp, "nodeTLS.ca", pos), join(base, "nodeTLS.ca")
			t.CA = &ref
		}
		if r.Verify == "none" {
			bad("nodeTLS.ca", "a CA is for verify required only")
		}
	case r.Verify == "required":
		bad("nodeTLS", `verify required needs a CA (nodeTLS.ca: {name: ...} or {hostPath: ...}), or set verify: "none"`)
	}
	return t
}

// redirectClashes reports, for every VIP with tls.redirectHTTP, a VIP
// (or another redirect) already on port 80 of its address: both would
// listen there.
func redirectClashes(bs []*Balancer, used func(ap netip.AddrPort) (string, Pos, bool)) Diagnostics {
	var ds Diagnostics
	redirects := map[netip.AddrPort]string{}
	for _, b := range bs {
		for i, v := range b.VIPs {
			if v.TLS == nil || !v.TLS.RedirectHTTP {
				continue
			}
			field := fmt.Sprintf("vips[%d].tls.redirectHTTP", i)
			ap := netip.AddrPortFrom(v.Address.Unmap(), 80)
			switch {
			case v.Port == 80:
				ds = append(ds, errorf(b.PosOf(field), join(balancerPath(b.Name), field), "redirectHTTP on a VIP of port 80: the redirect listens on port 80 itself"))
			case redirects[ap] != "":
				ds = append(ds, errorf(b.PosOf(field), join(balancerPath(b.Name), field), "%s already redirects http on %s", redirects[ap], ap))
			default:
				if who, at, ok := used(ap); ok {
					ds = append(ds, errorf(b.PosOf(field), join(balancerPath(b.Name), field), "the http redirect would listen on %s, which %s at %s uses", ap, who, at))
				}
				redirects[ap] = join(balancerPath(b.Name), field)
			}
		}
	}
	return ds
}

// PEMMarker is what starts PEM text: a spec value holding it is inline
// certificate or key material, which lbc refuses and never echoes.
const PEMMarker = "-----BEGIN"

// hasKeyMaterial reports whether s looks like PEM text or a private key.
func hasKeyMaterial(s string) bool {
	return strings.Contains(s, PEMMarker) || strings.Contains(s, "PRIVATE KEY")
}

// redactKeyMaterial replaces every double-quoted string of msg that holds
// PEM text or a private key with a note: a message about a spec value
// never echoes key material, not even its first bytes.
func redactKeyMaterial(msg string) string {
	if !hasKeyMaterial(msg) {
		return msg
	}
	const note = `(inline PEM material, not shown: a spec references certificates by name or hostPath)`
	msg = mapQuoted(msg, func(q string) string {
		if hasKeyMaterial(q) {
			return note
		}
		return q
	})
	if hasKeyMaterial(msg) { // outside quotes, or after an unterminated one
		if i := strings.Index(msg, PEMMarker); i >= 0 {
			msg = msg[:i] + note
		}
		if i := strings.Index(msg, "PRIVATE KEY"); i >= 0 {
			msg = msg[:i] + note
		}
	}
	return msg
}

// inTLS reports whether a CUE error path is inside a tls or nodeTLS field.
func inTLS(path []string) bool {
	for _, p := range path {
		if p == "tls" || p == "nodeTLS" {
			return true
		}
	}
	return false
}
