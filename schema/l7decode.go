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
	Host     *rawMatch
	Path     *rawMatch
	FileType []string
	Header   *rawMatch
	Cookie   *rawMatch
	Not      bool
}

type rawMatch struct {
	Name  string
	cmps  uint8  // the comparisons set: bit i for compares[i]
	Value string // the value of the first one
}

// condKind is one kind a condition may set: its match (nil for fileType)
// and whether it is set.
type condKind struct {
	name string
	m    *rawMatch
	set  bool
}

// sets lists the kinds of c in schema order, whether set or not.
func (c *rawCondition) sets() [5]condKind {
	return [5]condKind{{CondHost, c.Host, c.Host != nil}, {CondPath, c.Path, c.Path != nil},
		{CondFileType, nil, c.FileType != nil}, {CondHeader, c.Header, c.Header != nil},
		{CondCookie, c.Cookie, c.Cookie != nil}}
}

// kinds are the kinds the condition sets, in schema order.
func (c *rawCondition) kinds() []string {
	var ks []string
	for _, k := range c.sets() {
		if k.set {
			ks = append(ks, k.name)
		}
	}
	return ks
}

// compares are the comparisons m sets, in schema order.
func (m *rawMatch) compares() []string {
	var cs []string
	for i, c := range compares {
		if m.cmps&(1<<i) != 0 {
			cs = append(cs, c)
		}
	}
	return cs
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
		// The rules and their conditions take one allocation each, not
		// one a rule: rules: [] stays nil, as before.
		var conds []rawCondition
		if n := d.length(x); n > 0 {
			r.Rules = make([]rawRule, 0, n)
			total := 0
			d.list(x, func(e node) {
				if m, ok := d.field(e, "match"); ok {
					total += d.length(m)
				}
			})
			conds = make([]rawCondition, 0, total)
		}
		d.list(x, func(e node) {
			var rr rawRule
			if m, ok := d.field(e, "match"); ok {
				start := len(conds)
				d.list(m, func(ce node) { conds = append(conds, d.condition(ce)) })
				rr.Match = conds[start:len(conds):len(conds)]
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

// condition reads one condition of a rule: what it sets, which checkL7
// checks (one kind, one comparison); a set fileType is never nil.
func (d *decoder) condition(v node) rawCondition {
	var c rawCondition
	c.Host = d.match(v, CondHost, false)
	c.Path = d.match(v, CondPath, false)
	if _, ok := d.field(v, CondFileType); ok {
		d.strs(v, CondFileType, &c.FileType)
		if c.FileType == nil {
			c.FileType = []string{}
		}
	}
	c.Header = d.match(v, CondHeader, true)
	c.Cookie = d.match(v, CondCookie, true)
	d.bool(v, "not", &c.Not)
	return c
}

// match reads the match of kind name of the condition v, nil when v has
// none. Matches come from a slab: a condition has one, and a rule of ten
// balancers' worth of them would otherwise be that many allocations.
func (d *decoder) match(v node, name string, withName bool) *rawMatch {
	x, ok := d.field(v, name)
	if !ok {
		return nil
	}
	if len(d.matches) == 0 {
		d.matches = make([]rawMatch, 16)
	}
	m := &d.matches[0]
	d.matches = d.matches[1:]
	if withName {
		d.str(x, "name", &m.Name)
	}
	for i, cmp := range compares {
		var s string
		if d.str(x, cmp, &s) {
			if m.cmps == 0 {
				m.Value = s
			}
			m.cmps |= 1 << i
		}
	}
	return m
}
