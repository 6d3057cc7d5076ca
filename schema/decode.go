package schema

import (
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
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
	Address string `json:"address"`
	Port    int    `json:"port"`
}

type rawNode struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
	Maxconn int    `json:"maxconn"`
	Backup  bool   `json:"backup"`
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
}

type rawScheduler struct {
	Filters []string           `json:"filters"`
	Costs   map[string]float64 `json:"costs"`
}

// decode reads the unified, validated instance value v into p. diags are
// the schema errors; the devices and balancers they concern are recorded
// as rejected and not decoded, the others are.
func decode(c *compiled, p *Partial, v cue.Value, diags Diagnostics, pos *positions, first Pos) {
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
	each(v, "devices", func(name string, x cue.Value) {
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
	each(v, "balancers", func(name string, x cue.Value) {
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
	if s := v.LookupPath(sel("scheduler")); s.Exists() && !bad["scheduler"] {
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
func entityAt(m map[string]*entityPos, name string, x cue.Value, first Pos) Pos {
	if e := m[name]; e != nil {
		return e.pos
	}
	if p := posOf(x.Pos(), relName); p.IsValid() {
		return p
	}
	return first
}

// each calls f for each field of the struct at top.
func each(v cue.Value, top string, f func(string, cue.Value)) {
	it, err := v.LookupPath(sel(top)).Fields()
	if err != nil {
		return
	}
	for it.Next() {
		f(it.Selector().Unquoted(), it.Value())
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
type decoder struct{ err error }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) field(v cue.Value, name string) (cue.Value, bool) {
	f := v.LookupPath(sel(name))
	return f, f.Exists()
}

func (d *decoder) str(v cue.Value, name string, dst *string) bool {
	f, ok := d.field(v, name)
	if !ok {
		return false
	}
	s, err := f.String()
	d.fail(err)
	*dst = s
	return true
}

func (d *decoder) int(v cue.Value, name string, dst *int) bool {
	f, ok := d.field(v, name)
	if !ok {
		return false
	}
	n, err := f.Int64()
	d.fail(err)
	*dst = int(n)
	return true
}

func (d *decoder) bool(v cue.Value, name string, dst *bool) {
	if f, ok := d.field(v, name); ok {
		b, err := f.Bool()
		d.fail(err)
		*dst = b
	}
}

func (d *decoder) float(v cue.Value, name string, dst *float64) {
	if f, ok := d.field(v, name); ok {
		x, err := f.Float64()
		d.fail(err)
		*dst = x
	}
}

func (d *decoder) strs(v cue.Value, name string, dst *[]string) {
	f, ok := d.field(v, name)
	if !ok {
		return
	}
	var out []string
	d.list(f, func(x cue.Value) {
		s, err := x.String()
		d.fail(err)
		out = append(out, s)
	})
	*dst = out
}

func (d *decoder) list(v cue.Value, f func(cue.Value)) {
	it, err := v.List()
	if err != nil {
		d.fail(err)
		return
	}
	for it.Next() {
		f(it.Value())
	}
}

func (d *decoder) tool(v cue.Value, name string, t *rawTool) {
	if x, ok := d.field(v, name); ok {
		d.str(x, "config", &t.Config)
		d.str(x, "reload", &t.Reload)
		d.str(x, "check", &t.Check)
	}
}

func (d *decoder) device(c *compiled, v cue.Value) *rawDevice {
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

func (d *decoder) balancer(c *compiled, v cue.Value) *rawBalancer {
	r := c.balancer
	d.str(v, "tenant", &r.Tenant)
	d.str(v, "protocol", &r.Protocol)
	d.str(v, "algorithm", &r.Algorithm)
	if x, ok := d.field(v, "vips"); ok {
		d.list(x, func(e cue.Value) {
			var vip rawVIP
			d.str(e, "address", &vip.Address)
			d.int(e, "port", &vip.Port)
			r.VIPs = append(r.VIPs, vip)
		})
	}
	if x, ok := d.field(v, "nodes"); ok {
		d.list(x, func(e cue.Value) {
			n := c.node
			d.str(e, "address", &n.Address)
			d.int(e, "port", &n.Port)
			d.int(e, "weight", &n.Weight)
			d.int(e, "maxconn", &n.Maxconn)
			d.bool(e, "backup", &n.Backup)
			r.Nodes = append(r.Nodes, n)
		})
	}
	if x, ok := d.field(v, "healthMonitor"); ok {
		h := &r.HealthMonitor
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
		r.Persistence = p
	}
	if x, ok := d.field(v, "timeouts"); ok {
		t := &rawTimeouts{}
		d.str(x, "connect", &t.Connect)
		d.str(x, "client", &t.Client)
		d.str(x, "server", &t.Server)
		r.Timeouts = t
	}
	d.int(v, "maxconn", &r.Maxconn)
	if x, ok := d.field(v, "placement"); ok {
		d.strs(x, "zones", &r.Placement.Zones)
		d.strs(x, "tags", &r.Placement.Tags)
		d.str(x, "device", &r.Placement.Device)
		d.bool(x, "ha", &r.Placement.HA)
	}
	d.bool(v, "failback", &r.Failback)
	return &r
}

func (d *decoder) scheduler(c *compiled, v cue.Value) *rawScheduler {
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
