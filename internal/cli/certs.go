package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"lbc/internal/certsrc"
	"lbc/reconcile"
	"lbc/schema"
)

// The certificate source (--cert-dir) of validate, plan, apply and status.

// errNoCertSource: the specs name certificates and no --cert-dir was given.
var errNoCertSource = errors.New("no certificate source: give --cert-dir")

// certResolver opens the certificate source, nil when none is given; the
// resolver is kept in e.certs (watch clears it each cycle).
func (e *env) certResolver() (*certsrc.Resolver, error) {
	if e.certs != nil || e.args.CertDir == "" {
		return e.certs, nil
	}
	if e.certDir == nil {
		d, err := certsrc.OpenDir(e.args.CertDir, e.args.Source.Dir)
		if err != nil {
			return nil, err
		}
		e.certDir = d // open for the process's life: one directory handle
	}
	e.certs = certsrc.NewResolver(e.certDir, time.Now)
	return e.certs, nil
}

// checkCerts checks every certificate spec names against the source:
// problems are diagnostics with the reference's position (returned as
// the error, printed by printLoadError), expiries within --cert-warn
// warnings printed to stderr. A spec that names certificates needs a
// source unless need is false (validate checks them only when given one).
func (e *env) checkCerts(spec *schema.Spec, need bool) (map[string]certsrc.Info, error) {
	r, err := e.certResolver()
	if err != nil {
		return nil, err
	}
	if r == nil {
		if !need {
			return nil, nil
		}
		var ds schema.Diagnostics
		for _, ref := range namedCerts(spec) {
			ds = append(ds, schema.Diagnostic{Severity: schema.SeverityError, Pos: ref.Pos, Path: ref.Field,
				Message: fmt.Sprintf("certificate %s: %v", ref.Name, errNoCertSource)})
		}
		if len(ds) > 0 {
			return nil, ds
		}
		return nil, nil
	}
	ds, infos := r.CheckSpec(e.ctx, spec, e.args.CertWarn)
	var errs schema.Diagnostics
	for _, d := range ds {
		if d.Severity == schema.SeverityError {
			errs = append(errs, d)
		} else {
			fmt.Fprintln(e.stderr, termLine(d.String()))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return infos, nil
}

// namedCerts are the certificate and CA references of spec that name the
// certificate source.
func namedCerts(spec *schema.Spec) []schema.CertRef {
	var out []schema.CertRef
	for _, n := range spec.BalancerNames() {
		b := spec.Balancers[n]
		for _, v := range b.VIPs {
			if v.TLS != nil {
				for _, c := range v.TLS.Certificates {
					if c.Name != "" {
						out = append(out, c)
					}
				}
			}
		}
		if t := b.NodeTLS; t != nil && t.CA != nil && t.CA.Name != "" {
			out = append(out, *t.CA)
		}
	}
	return out
}

// deviceCerts lists, for each balancer of names (a device's), the
// certificates its VIPs serve, with what the source says of them.
func deviceCerts(spec *schema.Spec, names []string, infos map[string]certsrc.Info, warn time.Duration, now time.Time) []reconcile.CertInfo {
	var out []reconcile.CertInfo
	for _, n := range names {
		b := spec.Balancers[n]
		if b == nil {
			continue
		}
		for _, v := range b.VIPs {
			if v.TLS == nil {
				continue
			}
			vip := netip.AddrPortFrom(v.Address, uint16(v.Port)).String()
			for _, c := range v.TLS.Certificates {
				ci := reconcile.CertInfo{VIP: vip, Name: c.Name, HostPath: c.HostPath}
				if in, ok := infos[c.Name]; ok && c.Name != "" {
					ci.Subject, ci.SANs, ci.Issuer, ci.NotAfter, ci.SHA256 = in.Subject, in.SANs, in.Issuer, in.NotAfter, in.Fingerprint
					if left := in.NotAfter.Sub(now); left < warn {
						ci.Warning = fmt.Sprintf("expires within %d days", int(left.Hours()/24)+1)
					}
				}
				out = append(out, ci)
			}
		}
	}
	return out
}

// certLines describes a device's certificates for the text views.
func certLines(cs []reconcile.CertInfo) []string {
	var out []string
	for _, c := range cs {
		if c.HostPath != "" {
			out = append(out, fmt.Sprintf("tls %s: %s (on the host, not read)", termLine(c.VIP), termLine(c.HostPath)))
			continue
		}
		l := fmt.Sprintf("tls %s: %s: subject %s, SANs %s, issuer %s, not after %s, sha256 %s",
			termLine(c.VIP), termLine(c.Name), termLine(c.Subject), termLine(strings.Join(c.SANs, ",")), termLine(c.Issuer),
			c.NotAfter.Format(time.RFC3339), termLine(c.SHA256))
		if c.Warning != "" {
			l += ": WARNING " + termLine(c.Warning)
		}
		out = append(out, l)
	}
	return out
}
