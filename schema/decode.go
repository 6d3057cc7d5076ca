package schema

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
)

// The raw types mirror the schema. They start as copies of the schema's
// defaults (see compileSchema) and take each field the specs set.
type rawDevice struct {
	Address string `json:"address"`
	SSH     struct {
		User string `json:"user"`
		Port int    `json:"port"`
		Sudo bool   `json:"sudo"`
	} `json:"ssh"`
	Zone     string `json:"zone"`
	Capacity struct {
		Balancers int `json:"balancers"`
		Maxconn   int `json:"maxconn"`
	} `json:"capacity"`
	Tags         []string `json:"tags"`
	VIPInterface string   `json:"vipInterface"`
	VIPNetworks  []string `json:"vipNetworks"`
	HAProxy      rawTool  `json:"haproxy"`
	Keepalived   rawTool  `json:"keepalived"`
	StateDir     string   `json:"stateDir"`
}

type rawTool struct {
	Config string `json:"config"`
	Reload string `json:"reload"`
	Check  string `json:"check"`
}

type rawVIP struct {
	Address string  `json:"address"`
	Port    int     `json:"port"`
	TLS     *rawTLS `json:"-"`
}

type rawTLS struct {
	Certificates []rawCert `json:"-"`
	MinVersion   string    `json:"minVersion"`
	ALPN         []string  `json:"alpn"`
	RedirectHTTP bool      `json:"redirectHTTP"`
	HSTS         string    `json:"hsts"`
}

type rawCert struct {
	Name     string
	HostPath string
	SNI      []string
	pos      Pos
}

type rawNodeTLS struct {
	Verify string   `json:"verify"`
	CA     *rawCert `json:"-"`
	SNI    string   `json:"sni"`
}

type rawNode struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
	Maxconn int    `json:"maxconn"`
	Backup  bool   `json:"backup"`
	State   string `json:"state"`
}

type rawHealth struct {
	Type     string   `json:"type"`
	Method   string   `json:"method"`
	Path     string   `json:"path"`
	Expect   int      `json:"expect"`
	Interval string   `json:"interval"`
	Timeout  string   `json:"timeout"`
	Rise     int      `json:"rise"`
	Fall     int      `json:"fall"`
	httpSet  []string // the http-only fields the specs set
}

type rawPersistence struct {
	Type      string `json:"type"`
	Cookie    string `json:"cookie"`
	cookieSet bool
}

type rawTimeouts struct {
	Connect string `json:"connect"`
	Client  string `json:"client"`
	Server  string `json:"server"`
}

type rawBalancer struct {
	Tenant        string          `json:"tenant"`
	Protocol      string          `json:"protocol"`
	Algorithm     string          `json:"algorithm"`
	VIPs          []rawVIP        `json:"vips"`
	Nodes         []rawNode       `json:"nodes"`
	HealthMonitor rawHealth       `json:"healthMonitor"`
	Persistence   *rawPersistence `json:"persistence"`
	Timeouts      *rawTimeouts    `json:"timeouts"`
	Maxconn       int             `json:"maxconn"`
	Placement     struct {
		Zones  []string `json:"zones"`
		Tags   []string `json:"tags"`
		Device string   `json:"device"`
		HA     bool     `json:"ha"`
	} `json:"placement"`
	Failback bool `json:"failback"`
	Drain    struct {
		Timeout string `json:"timeout"`
	} `json:"drain"`
	Pools    []rawPool         `json:"-"` // in the order the specs write them
	Rules    []rawRule         `json:"-"`
	Hosts    map[string]string `json:"-"`
	hostKeys []string          // Hosts' keys in the order the specs write them
	NodeTLS  *rawNodeTLS       `json:"-"`
}

type rawScheduler struct {
	Filters []string           `json:"filters"`
	Costs   map[string]float64 `json:"costs"`
}

// node is a value the decoder reads: a cue.Value of the unified instance
// (cueNode) or plain data checked by the fast path (*dval).
type node interface {
	lookup(name string) (node, bool)
	each(f func(name string, x node)) // the fields of a struct
	items() ([]node, error)
	String() (string, error)
	Int64() (int64, error)
	Float64() (float64, error)
	Bool() (bool, error)
	pos() Pos
}

type cueNode struct{ v cue.Value }

func (c cueNode) lookup(name string) (node, bool) {
	f := c.v.LookupPath(sel(name))
	return cueNode{f}, f.Exists()
}

func (c cueNode) each(f func(string, node)) {
	it, err := c.v.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		f(it.Selector().Unquoted(), cueNode{it.Value()})
	}
}

func (c cueNode) items() ([]node, error) {
	it, err := c.v.List()
	if err != nil {
		return nil, err
	}
	var out []node
	for it.Next() {
		out = append(out, cueNode{it.Value()})
	}
	return out, nil
}

func (c cueNode) String() (string, error)   { return c.v.String() }
func (c cueNode) Int64() (int64, error)     { return c.v.Int64() }
func (c cueNode) Float64() (float64, error) { return c.v.Float64() }
func (c cueNode) Bool() (bool, error)       { return c.v.Bool() }
func (c cueNode) pos() Pos                  { return posOf(userPos(c.v), relName) }

// userPos is where the spec files write v. CUE gives the position of one
// conjunct, after unification with the schema often the schema's; then the
// first conjunct a spec file wrote is taken, as the evaluated path (which
// never sees the schema) does.
func userPos(v cue.Value) token.Pos {
	p := v.Pos()
	if p.IsValid() && p.Filename() != schemaFile {
		return p
	}
	if op, args := v.Expr(); op == cue.AndOp {
		for _, a := range args {
			if ap := a.Pos(); ap.IsValid() && ap.Filename() != schemaFile {
				return ap
			}
		}
	}
	return p
}

func (v *dval) lookup(name string) (node, bool) {
	if f := v.get(name); f != nil {
		return f, true
	}
	return nil, false
}

func (v *dval) each(f func(string, node)) {
	for _, x := range v.fields {
		f(x.name, x.v)
	}
}

func (v *dval) items() ([]node, error) {
	if v.kind != dList {
		return nil, fmt.Errorf("not a list")
	}
	out := make([]node, len(v.elems))
	for i, e := range v.elems {
		out[i] = e
	}
	return out, nil
}

func (v *dval) String() (string, error) {
	if v.kind != dString {
		return "", fmt.Errorf("not a string")
	}
	return v.s, nil
}

func (v *dval) Int64() (int64, error) {
	if v.kind != dInt {
		return 0, fmt.Errorf("not an integer")
	}
	return v.i, nil
}

func (v *dval) Float64() (float64, error) {
	switch v.kind {
	case dInt:
		return float64(v.i), nil
	case dFloat:
		return v.float(), nil
	}
	return 0, fmt.Errorf("not a number")
}

func (v *dval) Bool() (bool, error) {
	if v.kind != dBool {
		return false, fmt.Errorf("not a bool")
	}
	return v.b, nil
}

func (v *dval) pos() Pos { return posOf(v.at, relName) }

// decode reads the unified, validated instance value v into p. diags are
// the schema errors; the devices and balancers they concern are recorded
// as rejected and not decoded, the others are.
func decode(c *compiled, p *Partial, v node, diags Diagnostics, pos *positions, first Pos) {
	p.Diagnostics = append(p.Diagnostics, diags...)
	bad := map[string]bool{}
	for _, d := range diags {
		if k := entityKey(d.Path); k != "" {
			bad[k] = true
		}
	}
	for k := range bad {
		kind, name, _ := strings.Cut(k, "/")
		m := pos.devices
		if kind == "balancers" {
			m = pos.balancers
		}
		ep := first
		if e := m[name]; e != nil {
			ep = e.pos
		}
		p.rejected[k] = ep
	}
	each(v, "devices", func(name string, x node) {
		if bad["devices/"+name] {
			return
		}
		d := &decoder{}
		r := d.device(c, x)
		if d.err != nil {
			p.reject("devices/"+name, entityAt(pos.devices, name, x, first),
				Diagnostics{errorf(entityAt(pos.devices, name, x, first), devicePath(name), "decode: %v", d.err)})
			return
		}
		p.addDevice(name, r, pos.devices[name], entityAt(pos.devices, name, x, first))
	})
	each(v, "balancers", func(name string, x node) {
		if bad["balancers/"+name] {
			return
		}
		d := &decoder{}
		r := d.balancer(c, x)
		if d.err != nil {
			p.reject("balancers/"+name, entityAt(pos.balancers, name, x, first),
				Diagnostics{errorf(entityAt(pos.balancers, name, x, first), balancerPath(name), "decode: %v", d.err)})
			return
		}
		p.addBalancer(name, r, pos.balancers[name], entityAt(pos.balancers, name, x, first))
	})
	if s, ok := v.lookup("scheduler"); ok && !bad["scheduler"] {
		p.SchedulerPos = pos.scheduler
		if !p.SchedulerPos.IsValid() {
			p.SchedulerPos = first
		}
		p.schedulerFields = pos.schedulerFields
		d := &decoder{}
		r := d.scheduler(c, s)
		if d.err != nil {
			p.reject("scheduler", p.SchedulerPos, Diagnostics{errorf(p.SchedulerPos, "scheduler", "decode: %v", d.err)})
			return
		}
		p.addScheduler(r)
	}
}

// entityAt is the position of an entity: its key in the files, else where
// CUE says its value comes from, else the instance's first file.
func entityAt(m map[string]*entityPos, name string, x node, first Pos) Pos {
	if e := m[name]; e != nil {
		return e.pos
	}
	if p := x.pos(); p.IsValid() {
		return p
	}
	return first
}

// each calls f for each field of the struct at top.
func each(v node, top string, f func(string, node)) {
	if x, ok := v.lookup(top); ok {
		x.each(f)
	}
}

var (
	pathsMu sync.Mutex
	paths   = map[string]cue.Path{}
)

// sel returns the path of one field, built once.
func sel(name string) cue.Path {
	pathsMu.Lock()
	defer pathsMu.Unlock()
	p, ok := paths[name]
	if !ok {
		p = cue.MakePath(cue.Str(name))
		paths[name] = p
	}
	return p
}

// decoder reads fields of validated values by name; it never walks a
// struct's fields in order (that sorts them, which is slow) and sets only
// the fields that exist, so defaults already in place stay.
type decoder struct {
	err     error
	matches []rawMatch // a slab of a balancer's rule conditions (see match)
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) field(v node, name string) (node, bool) { return v.lookup(name) }

func (d *decoder) str(v node, name string, dst *string) bool {
	f, ok := d.field(v, name)
	if !ok {
		return false
	}
	s, err := f.String()
	d.fail(err)
	*dst = s
	return true
}

func (d *decoder) int(v node, name string, dst *int) bool {
	f, ok := d.field(v, name)
	if !ok {
		return false
	}
	n, err := f.Int64()
	d.fail(err)
	*dst = int(n)
	return true
}

func (d *decoder) bool(v node, name string, dst *bool) {
	if f, ok := d.field(v, name); ok {
		b, err := f.Bool()
		d.fail(err)
		*dst = b
	}
}

func (d *decoder) float(v node, name string, dst *float64) {
	if f, ok := d.field(v, name); ok {
		x, err := f.Float64()
		d.fail(err)
		*dst = x
	}
}

func (d *decoder) strs(v node, name string, dst *[]string) {
	f, ok := d.field(v, name)
	if !ok {
		return
	}
	var out []string
	if n := d.length(f); n > 0 {
		out = make([]string, 0, n)
	}
	d.list(f, func(x node) {
		s, err := x.String()
		d.fail(err)
		out = append(out, s)
	})
	*dst = out
}

func (d *decoder) list(v node, f func(node)) {
	if dv, ok := v.(*dval); ok && dv.kind == dList {
		for _, e := range dv.elems { // no []node copy
			f(e)
		}
		return
	}
	es, err := v.items()
	if err != nil {
		d.fail(err)
		return
	}
	for _, e := range es {
		f(e)
	}
}

// length is the number of elements of the list v (0 when it is not one),
// to size what is decoded from it.
func (d *decoder) length(v node) int {
	if dv, ok := v.(*dval); ok && dv.kind == dList {
		return len(dv.elems)
	}
	return 0
}

func (d *decoder) tool(v node, name string, t *rawTool) {
	if x, ok := d.field(v, name); ok {
		d.str(x, "config", &t.Config)
		d.str(x, "reload", &t.Reload)
		d.str(x, "check", &t.Check)
	}
}

func (d *decoder) device(c *compiled, v node) *rawDevice {
	r := c.device
	d.str(v, "address", &r.Address)
	if x, ok := d.field(v, "ssh"); ok {
		d.str(x, "user", &r.SSH.User)
		d.int(x, "port", &r.SSH.Port)
		d.bool(x, "sudo", &r.SSH.Sudo)
	}
	d.str(v, "zone", &r.Zone)
	if x, ok := d.field(v, "capacity"); ok {
		d.int(x, "balancers", &r.Capacity.Balancers)
		d.int(x, "maxconn", &r.Capacity.Maxconn)
	}
	d.strs(v, "tags", &r.Tags)
	d.str(v, "vipInterface", &r.VIPInterface)
	d.strs(v, "vipNetworks", &r.VIPNetworks)
	d.tool(v, "haproxy", &r.HAProxy)
	d.tool(v, "keepalived", &r.Keepalived)
	d.str(v, "stateDir", &r.StateDir)
	return &r
}

func (d *decoder) balancer(c *compiled, v node) *rawBalancer {
	r := c.balancer
	d.str(v, "tenant", &r.Tenant)
	d.str(v, "protocol", &r.Protocol)
	d.str(v, "algorithm", &r.Algorithm)
	if x, ok := d.field(v, "vips"); ok {
		d.list(x, func(e node) {
			var vip rawVIP
			d.str(e, "address", &vip.Address)
			d.int(e, "port", &vip.Port)
			vip.TLS = d.tls(c, e)
			r.VIPs = append(r.VIPs, vip)
		})
	}
	d.nodes(c, v, &r.Nodes)
	d.backendSettings(c, v, &r.HealthMonitor, &r.Persistence, &r.Timeouts)
	d.int(v, "maxconn", &r.Maxconn)
	if x, ok := d.field(v, "placement"); ok {
		d.strs(x, "zones", &r.Placement.Zones)
		d.strs(x, "tags", &r.Placement.Tags)
		d.str(x, "device", &r.Placement.Device)
		d.bool(x, "ha", &r.Placement.HA)
	}
	d.bool(v, "failback", &r.Failback)
	if x, ok := d.field(v, "drain"); ok {
		d.str(x, "timeout", &r.Drain.Timeout)
	}
	d.l7(c, v, &r)
	r.NodeTLS = d.nodeTLS(c, v)
	return &r
}

// nodes reads a list of nodes, each from the schema's defaults.
func (d *decoder) nodes(c *compiled, v node, dst *[]rawNode) {
	if x, ok := d.field(v, "nodes"); ok {
		d.list(x, func(e node) {
			n := c.node
			d.str(e, "address", &n.Address)
			d.int(e, "port", &n.Port)
			d.int(e, "weight", &n.Weight)
			d.int(e, "maxconn", &n.Maxconn)
			d.bool(e, "backup", &n.Backup)
			d.str(e, "state", &n.State)
			*dst = append(*dst, n)
		})
	}
}

// backendSettings reads what a balancer and a pool share: health monitor,
// persistence and timeouts.
func (d *decoder) backendSettings(c *compiled, v node, h *rawHealth, pers **rawPersistence, tos **rawTimeouts) {
	if x, ok := d.field(v, "healthMonitor"); ok {
		d.str(x, "type", &h.Type)
		d.str(x, "interval", &h.Interval)
		d.str(x, "timeout", &h.Timeout)
		d.int(x, "rise", &h.Rise)
		d.int(x, "fall", &h.Fall)
		if d.str(x, "method", &h.Method) {
			h.httpSet = append(h.httpSet, "method")
		}
		if d.str(x, "path", &h.Path) {
			h.httpSet = append(h.httpSet, "path")
		}
		if d.int(x, "expect", &h.Expect) {
			h.httpSet = append(h.httpSet, "expect")
		}
	}
	if x, ok := d.field(v, "persistence"); ok {
		p := &rawPersistence{Cookie: c.cookie}
		d.str(x, "type", &p.Type)
		p.cookieSet = d.str(x, "cookie", &p.Cookie)
		*pers = p
	}
	if x, ok := d.field(v, "timeouts"); ok {
		t := &rawTimeouts{}
		d.str(x, "connect", &t.Connect)
		d.str(x, "client", &t.Client)
		d.str(x, "server", &t.Server)
		*tos = t
	}
}

func (d *decoder) scheduler(c *compiled, v node) *rawScheduler {
	r := &rawScheduler{Filters: c.scheduler.Filters, Costs: map[string]float64{}}
	for k, x := range c.scheduler.Costs {
		r.Costs[k] = x
	}
	d.strs(v, "filters", &r.Filters)
	if x, ok := d.field(v, "costs"); ok {
		for k := range r.Costs {
			cost := r.Costs[k]
			d.float(x, k, &cost)
			r.Costs[k] = cost
		}
	}
	return r
}

// entityKey returns "devices/NAME", "balancers/NAME" or "scheduler" for a
// diagnostic path inside one, or "".
func entityKey(path string) string {
	if path == "scheduler" || strings.HasPrefix(path, "scheduler.") {
		return "scheduler"
	}
	for _, top := range []string{"devices", "balancers"} {
		rest, ok := strings.CutPrefix(path, top+".")
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return ""
			}
			return top + "/" + unquote(q)
		}
		if i := strings.IndexAny(rest, ".["); i >= 0 {
			rest = rest[:i]
		}
		return top + "/" + rest
	}
	return ""
}
