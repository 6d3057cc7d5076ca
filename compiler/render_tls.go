package compiler

import (
	"net/netip"
	"sort"
	"strings"

	"lbc/schema"
)

// TLS in haproxy.cfg. The compiler never sees a certificate's bytes: a
// certificate named in the certificate source is rendered as its path on
// the host, <stateDir>/certs/<name>.pem (a bundle of certificate, chain
// and key that reconcile ships, see AuxFile), a CA as
// <stateDir>/certs/<name>.ca.pem; a hostPath as it is.
//
//	bind <vip> ssl crt <first> [crt <more>...] ssl-min-ver TLSv1.2|TLSv1.3 [alpn a,b]
//	          (the first crt is the default; HAProxy picks the others by
//	          SNI from their SANs)
//	http-response set-header Strict-Transport-Security max-age=<s>  (hsts)
//	frontend fe_<balancer>_<address>_80 with http-request redirect scheme
//	          https code 301 (redirectHTTP)
//	server ... ssl verify required ca-file <ca> [sni str(<name>) verifyhost
//	          <name>] [check-ssl [check-sni <name>]]   (nodeTLS)

// CertDir is the directory on a device where lbc keeps the certificates
// it ships (mode 0700, files 0600).
func CertDir(dev *schema.Device) string {
	return strings.TrimSuffix(dev.StateDir, "/") + "/certs"
}

// CertPath is where certificate name of the certificate source lives on dev.
func CertPath(dev *schema.Device, name string) string { return CertDir(dev) + "/" + name + ".pem" }

// CAPath is where CA name of the certificate source lives on dev.
func CAPath(dev *schema.Device, name string) string { return CertDir(dev) + "/" + name + ".ca.pem" }

// certPath is where ref is on the device w renders for.
func (w *cfgWriter) certPath(ref schema.CertRef, ca bool) string {
	switch {
	case ref.HostPath != "":
		return ref.HostPath
	case ca:
		return CAPath(w.dev, ref.Name)
	}
	return CertPath(w.dev, ref.Name)
}

// bindTLS ends a bind line with its TLS settings.
func (w *cfgWriter) bindTLS(b *schema.Balancer, t *schema.TLS) {
	if t == nil {
		return
	}
	if b.Protocol != "http" {
		w.fail("balancer %s: tls needs protocol http", b.Name)
	}
	if len(t.Certificates) == 0 {
		w.fail("balancer %s: tls without a certificate", b.Name)
		return
	}
	w.s(" ssl")
	for _, c := range t.Certificates {
		p := w.certPath(c, false)
		w.balancerWord(p, b.Name, "tls.certificates")
		w.s(" crt ", p)
	}
	switch t.MinVersion {
	case "", "1.2":
		w.s(" ssl-min-ver TLSv1.2")
	case "1.3":
		w.s(" ssl-min-ver TLSv1.3")
	default:
		w.fail("balancer %s: tls.minVersion %q", b.Name, t.MinVersion)
	}
	if len(t.ALPN) > 0 {
		for _, p := range t.ALPN {
			switch p {
			case "h2", "http/1.1", "http/1.0":
			default:
				w.fail("balancer %s: tls.alpn %q", b.Name, p)
			}
		}
		w.s(" alpn ", strings.Join(t.ALPN, ","))
	}
}

// hsts adds the Strict-Transport-Security header to every response.
func (w *cfgWriter) hsts(t *schema.TLS) {
	if t == nil || t.HSTS <= 0 {
		return
	}
	w.s("    http-response set-header Strict-Transport-Security max-age=")
	w.i(int(t.HSTS.Seconds()))
	w.nl()
}

// redirectFrontend writes, for a VIP with tls.redirectHTTP, the frontend
// on port 80 of its address that redirects every request to https.
func (w *cfgWriter) redirectFrontend(b *schema.Balancer, v schema.VIP, role string) {
	if v.TLS == nil || !v.TLS.RedirectHTTP {
		return
	}
	ap := netip.AddrPortFrom(v.Address, 80)
	if v.Port == 80 || w.see(ap) {
		w.fail("balancer %s: the http redirect of %s would listen where another frontend does", b.Name, ap)
		return
	}
	w.s("\nfrontend fe_", b.Name, "_")
	w.addr(ap.Addr())
	w.s("_80\n    bind ")
	w.addrPort(ap)
	if role != VIPRoleSingle {
		w.s(" transparent")
	}
	w.s("\n    mode http\n    option httplog\n")
	w.s("    http-request redirect scheme https code 301\n")
}

// serverTLS ends a server line with nodeTLS.
func (w *cfgWriter) serverTLS(b *schema.Balancer, check bool) {
	t := b.NodeTLS
	if t == nil {
		return
	}
	w.s(" ssl")
	switch t.Verify {
	case "none":
		w.s(" verify none")
	case "", "required":
		if t.CA == nil {
			w.fail("balancer %s: nodeTLS verify required without a CA", b.Name)
			return
		}
		p := w.certPath(*t.CA, true)
		w.balancerWord(p, b.Name, "nodeTLS.ca")
		w.s(" verify required ca-file ", p)
	default:
		w.fail("balancer %s: nodeTLS.verify %q", b.Name, t.Verify)
	}
	if t.SNI != "" {
		w.balancerWord(t.SNI, b.Name, "nodeTLS.sni")
		w.s(" sni str(", t.SNI, ")")
		if t.Verify != "none" {
			w.s(" verifyhost ", t.SNI)
		}
	}
	if check {
		w.s(" check-ssl")
		if t.SNI != "" {
			w.s(" check-sni ", t.SNI)
		}
	}
}

// auxFiles lists the certificates and CAs that the balancers placed on
// dev name in the certificate source: the files reconcile ships with
// dev's haproxy.cfg, sorted by path.
func auxFiles(dev *schema.Device, placed []*schema.Balancer) []AuxFile {
	seen := map[string]bool{}
	var out []AuxFile
	add := func(f AuxFile) {
		if !seen[f.Path] {
			seen[f.Path] = true
			out = append(out, f)
		}
	}
	for _, b := range placed {
		for _, v := range b.VIPs {
			if v.TLS == nil {
				continue
			}
			for _, c := range v.TLS.Certificates {
				if c.Name != "" {
					add(AuxFile{Path: CertPath(dev, c.Name), Mode: 0o600, Kind: AuxCert, Ref: c.Name})
				}
			}
		}
		if t := b.NodeTLS; t != nil && t.CA != nil && t.CA.Name != "" {
			add(AuxFile{Path: CAPath(dev, t.CA.Name), Mode: 0o644, Kind: AuxCA, Ref: t.CA.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
