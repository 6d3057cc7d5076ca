package certsrc

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"lbc/compiler"
	"lbc/schema"
)

// Resolver loads the certificates a spec references from a Source, once
// each, checks them against the spec (CheckSpec), and gives the files
// that reconcile ships (Resolve: a reconcile.FileSource).
type Resolver struct {
	src Source
	now func() time.Time

	mu      sync.Mutex
	bundles map[string]*Bundle
	cas     map[string][]byte
	errs    map[string]error
}

// NewResolver resolves from src; now is the clock of the validity checks
// (time.Now when nil).
func NewResolver(src Source, now func() time.Time) *Resolver {
	if now == nil {
		now = time.Now
	}
	return &Resolver{src: src, now: now, bundles: map[string]*Bundle{}, cas: map[string][]byte{}, errs: map[string]error{}}
}

// bundle loads and parses name once.
func (r *Resolver) bundle(ctx context.Context, name string) (*Bundle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bundles[name]; ok {
		return b, nil
	}
	if err, ok := r.errs[name]; ok {
		return nil, err
	}
	b, err := r.load(ctx, name)
	if err != nil {
		r.errs[name] = err
		return nil, err
	}
	r.bundles[name] = b
	return b, nil
}

func (r *Resolver) load(ctx context.Context, name string) (*Bundle, error) {
	c, k, err := r.src.Cert(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", name, err)
	}
	roots, err := r.src.Roots(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: its CA: %w", name, err)
	}
	return Parse(name, c, k, roots)
}

// ca loads and parses the CA name once.
func (r *Resolver) ca(ctx context.Context, name string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.cas[name]; ok {
		return b, nil
	}
	if err, ok := r.errs["ca/"+name]; ok {
		return nil, err
	}
	b, err := r.src.CA(ctx, name)
	if err == nil {
		_, err = ParseCA(name, b)
	}
	if err != nil {
		err = fmt.Errorf("CA %s: %w", name, err)
		r.errs["ca/"+name] = err
		return nil, err
	}
	r.cas[name] = b
	return b, nil
}

// CheckSpec loads and checks every certificate and CA that spec
// references by name: each problem is an error diagnostic at the
// reference's position, a certificate expiring within warn a warning. It
// returns what it found of each certificate, by name.
func (r *Resolver) CheckSpec(ctx context.Context, spec *schema.Spec, warn time.Duration) (schema.Diagnostics, map[string]Info) {
	var ds schema.Diagnostics
	infos := map[string]Info{}
	now := r.now()
	diag := func(sev string, ref schema.CertRef, format string, args ...any) {
		ds = append(ds, schema.Diagnostic{Severity: sev, Message: fmt.Sprintf(format, args...), Path: ref.Field, Pos: ref.Pos})
	}
	for _, name := range spec.BalancerNames() {
		b := spec.Balancers[name]
		for _, v := range b.VIPs {
			if v.TLS == nil {
				continue
			}
			for _, ref := range v.TLS.Certificates {
				if ref.Name == "" {
					continue // hostPath: on the host, checked by haproxy -c there
				}
				bd, err := r.bundle(ctx, ref.Name)
				if err != nil {
					diag(schema.SeverityError, ref, "%v", err)
					continue
				}
				for _, e := range bd.Check(now, ref.SNI) {
					diag(schema.SeverityError, ref, "certificate %s: %v", ref.Name, e)
				}
				info := bd.Info()
				infos[ref.Name] = info
				if left := info.NotAfter.Sub(now); left > 0 && left < warn {
					diag(schema.SeverityWarning, ref, "certificate %s expires on %s, in %d days", ref.Name, info.NotAfter.Format(time.RFC3339), int(left.Hours()/24))
				}
			}
		}
		if t := b.NodeTLS; t != nil && t.CA != nil && t.CA.Name != "" {
			if _, err := r.ca(ctx, t.CA.Name); err != nil {
				diag(schema.SeverityError, *t.CA, "%v", err)
			}
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Pos.String() < ds[j].Pos.String() })
	return ds, infos
}

// Resolve gives the content of a file the compiler names by reference:
// the PEM bundle of a certificate (kind compiler.AuxCert: it holds the
// key) or a CA (compiler.AuxCA). A certificate that fails its checks is
// refused here too: nothing unchecked reaches a host.
func (r *Resolver) Resolve(ctx context.Context, kind, ref string) ([]byte, error) {
	switch kind {
	case compiler.AuxCert:
		b, err := r.bundle(ctx, ref)
		if err != nil {
			return nil, err
		}
		if errs := b.Check(r.now(), nil); len(errs) > 0 {
			return nil, fmt.Errorf("certificate %s: %v", ref, errs[0])
		}
		return b.HAProxyPEM(), nil
	case compiler.AuxCA:
		return r.ca(ctx, ref)
	}
	return nil, fmt.Errorf("certificate source: no files of kind %q", kind)
}

// Info returns what the resolver found of certificate name.
func (r *Resolver) Info(ctx context.Context, name string) (Info, error) {
	b, err := r.bundle(ctx, name)
	if err != nil {
		return Info{}, err
	}
	return b.Info(), nil
}
