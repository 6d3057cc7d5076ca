package schema

// The raw L7 fields of a balancer as the specs write them, and their
// decoding (see decode.go); l7check.go checks them into Pools, Rules
// and Hosts.

type rawPool struct {
	Name          string
	hmSet         bool            // the pool has a healthMonitor of its own
	Algorithm     string          `json:"algorithm"`
	Nodes         []rawNode       `json:"-"`
	HealthMonitor rawHealth       `json:"healthMonitor"`
	Persistence   *rawPersistence `json:"-"`
	Timeouts      *rawTimeouts    `json:"-"`
}

type rawRule struct {
	Match    []rawCondition
	Pool     string
	poolSet  bool
	Redirect *rawRedirect
	Reject   bool
	rejSet   bool
}

type rawCondition struct {
	kinds    []string // the kinds the condition sets, in schema order
	Host     *rawMatch
	Path     *rawMatch
	FileType []string
	Header   *rawMatch
	Cookie   *rawMatch
	Not      bool
}

type rawMatch struct {
	Name     string
	compares []string // the comparisons set, in schema order
	Value    string   // the value of the first one
}

type rawRedirect struct {
	Location, Prefix string
	Code             int
}

// compares is the order the comparisons of #Match are read in.
var compares = []string{CmpExact, CmpPrefix, CmpSuffix, CmpContains, CmpRegex}

// l7 reads pools, rules and hosts of the balancer value v.
func (d *decoder) l7(c *compiled, v node, r *rawBalancer) {
	if x, ok := d.field(v, "pools"); ok {
		x.each(func(name string, pv node) {
			p := c.pool
			p.Name = name
			// A pool's own monitor starts from the schema's defaults, as
			// the balancer's does; without one, checkL7 gives it the
			// balancer's.
			p.HealthMonitor = c.balancer.HealthMonitor
			_, p.hmSet = d.field(pv, "healthMonitor")
			d.str(pv, "algorithm", &p.Algorithm)
			d.nodes(c, pv, &p.Nodes)
			d.backendSettings(c, pv, &p.HealthMonitor, &p.Persistence, &p.Timeouts)
			r.Pools = append(r.Pools, p)
		})
	}
	if x, ok := d.field(v, "rules"); ok {
		if n := d.length(x); n > 0 { // rules: [] stays nil, as before
			r.Rules = make([]rawRule, 0, n)
		}
		d.list(x, func(e node) {
			var rr rawRule
			if m, ok := d.field(e, "match"); ok {
				rr.Match = make([]rawCondition, 0, d.length(m))
				d.list(m, func(ce node) { rr.Match = append(rr.Match, d.condition(ce)) })
			}
			rr.poolSet = d.str(e, "pool", &rr.Pool)
			if rd, ok := d.field(e, "redirect"); ok {
				rr.Redirect = &rawRedirect{Code: c.redirectCode}
				d.str(rd, "location", &rr.Redirect.Location)
				d.str(rd, "prefix", &rr.Redirect.Prefix)
				d.int(rd, "code", &rr.Redirect.Code)
			}
			if _, ok := d.field(e, "reject"); ok {
				rr.rejSet = true
				d.bool(e, "reject", &rr.Reject)
			}
			r.Rules = append(r.Rules, rr)
		})
	}
	if x, ok := d.field(v, "hosts"); ok {
		r.Hosts = map[string]string{}
		x.each(func(host string, hv node) {
			var pool string
			s, err := hv.String()
			d.fail(err)
			pool = s
			if _, dup := r.Hosts[host]; !dup {
				r.hostKeys = append(r.hostKeys, host)
			}
			r.Hosts[host] = pool
		})
	}
}

func (d *decoder) condition(v node) rawCondition {
	var c rawCondition
	match := func(name string, withName bool) *rawMatch {
		x, ok := d.field(v, name)
		if !ok {
			return nil
		}
		c.kinds = append(c.kinds, name)
		m := &rawMatch{}
		if withName {
			d.str(x, "name", &m.Name)
		}
		for _, cmp := range compares {
			var s string
			if d.str(x, cmp, &s) {
				if len(m.compares) == 0 {
					m.Value = s
				}
				m.compares = append(m.compares, cmp)
			}
		}
		return m
	}
	c.Host = match(CondHost, false)
	c.Path = match(CondPath, false)
	if _, ok := d.field(v, CondFileType); ok {
		c.kinds = append(c.kinds, CondFileType)
		d.strs(v, CondFileType, &c.FileType)
		if c.FileType == nil {
			c.FileType = []string{}
		}
	}
	c.Header = match(CondHeader, true)
	c.Cookie = match(CondCookie, true)
	d.bool(v, "not", &c.Not)
	return c
}
