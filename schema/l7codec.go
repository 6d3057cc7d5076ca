package schema

// The cache codec (cachecodec.go) of a balancer's pools, rules and host table.

func (e *encoder) l7(b *Balancer) {
	e.n(b.Pools == nil, len(b.Pools))
	for _, p := range b.Pools {
		e.str(p.Name)
		e.str(p.Algorithm)
		e.backend(p.Nodes, p.HealthMonitor, p.Persistence, p.Timeouts)
	}
	e.n(b.Rules == nil, len(b.Rules))
	for _, r := range b.Rules {
		e.n(r.Match == nil, len(r.Match))
		for _, c := range r.Match {
			e.str(c.Kind)
			e.str(c.Name)
			e.str(c.Compare)
			e.str(c.Value)
			e.strs(c.Types)
			e.bool(c.Not)
		}
		e.str(r.Pool)
		e.n(r.Redirect == nil, 0)
		if rd := r.Redirect; rd != nil {
			e.str(rd.Location)
			e.str(rd.Prefix)
			e.int(rd.Code)
		}
		e.bool(r.Reject)
	}
	e.n(b.Hosts == nil, len(b.Hosts))
	for _, h := range sortedKeys(b.Hosts) {
		e.str(h)
		e.str(b.Hosts[h])
	}
}

func (d *cdecoder) l7(b *Balancer) {
	if isNil, n := d.n(); !isNil {
		b.Pools = make([]Pool, n)
		for i := range b.Pools {
			p := Pool{Name: d.str(), Algorithm: d.str()}
			p.Nodes, p.HealthMonitor, p.Persistence, p.Timeouts = d.backend()
			b.Pools[i] = p
		}
	}
	if isNil, n := d.n(); !isNil {
		b.Rules = make([]Rule, n)
		for i := range b.Rules {
			var r Rule
			if isNil, n := d.n(); !isNil {
				r.Match = make([]Condition, n)
				for j := range r.Match {
					r.Match[j] = Condition{Kind: d.str(), Name: d.str(), Compare: d.str(), Value: d.str(), Types: d.strs(), Not: d.bool()}
				}
			}
			r.Pool = d.str()
			if isNil, _ := d.n(); !isNil {
				r.Redirect = &Redirect{Location: d.str(), Prefix: d.str(), Code: d.int()}
			}
			r.Reject = d.bool()
			b.Rules[i] = r
		}
	}
	if isNil, n := d.n(); !isNil {
		b.Hosts = make(map[string]string, n)
		for range n {
			h := d.str()
			b.Hosts[h] = d.str()
		}
	}
}
