package schema

// The cache codec of TLS settings (see cachecodec.go).

func (e *encoder) tls(t *TLS) {
	e.n(t == nil, 0)
	if t == nil {
		return
	}
	e.n(t.Certificates == nil, len(t.Certificates))
	for i := range t.Certificates {
		e.certRef(&t.Certificates[i])
	}
	e.str(t.MinVersion)
	e.strs(t.ALPN)
	e.bool(t.RedirectHTTP)
	e.duration(t.HSTS)
}

func (e *encoder) certRef(c *CertRef) {
	e.str(c.Name)
	e.str(c.HostPath)
	e.strs(c.SNI)
	e.pos(c.Pos)
	e.str(c.Field)
}

func (e *encoder) nodeTLS(t *NodeTLS) {
	e.n(t == nil, 0)
	if t == nil {
		return
	}
	e.str(t.Verify)
	e.str(t.SNI)
	e.n(t.CA == nil, 0)
	if t.CA != nil {
		e.certRef(t.CA)
	}
}

func (d *cdecoder) tls() *TLS {
	if isNil, _ := d.n(); isNil {
		return nil
	}
	t := &TLS{}
	if isNil, n := d.n(); !isNil {
		t.Certificates = make([]CertRef, n)
		for i := range t.Certificates {
			t.Certificates[i] = d.certRef()
		}
	}
	t.MinVersion = d.str()
	t.ALPN = d.strs()
	t.RedirectHTTP = d.bool()
	t.HSTS = d.duration()
	return t
}

func (d *cdecoder) certRef() CertRef {
	return CertRef{Name: d.str(), HostPath: d.str(), SNI: d.strs(), Pos: d.pos(), Field: d.str()}
}

func (d *cdecoder) nodeTLS() *NodeTLS {
	if isNil, _ := d.n(); isNil {
		return nil
	}
	t := &NodeTLS{Verify: d.str(), SNI: d.str()}
	if isNil, _ := d.n(); !isNil {
		c := d.certRef()
		t.CA = &c
	}
	return t
}
