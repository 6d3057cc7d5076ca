package schema

import (
	"encoding/json"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// The raw types mirror the schema; an instance that passed it is exported
// to JSON once and read into them (much cheaper than walking CUE values).
type rawSpec struct {
	Devices   map[string]*rawDevice   `json:"devices"`
	Balancers map[string]*rawBalancer `json:"balancers"`
	Scheduler *rawScheduler           `json:"scheduler"`
}

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

type rawBalancer struct {
	Tenant    string `json:"tenant"`
	Protocol  string `json:"protocol"`
	Algorithm string `json:"algorithm"`
	VIPs      []struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	} `json:"vips"`
	Nodes []struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
		Weight  int    `json:"weight"`
		Maxconn int    `json:"maxconn"`
		Backup  bool   `json:"backup"`
	} `json:"nodes"`
	HealthMonitor struct {
		Type     string `json:"type"`
		Method   string `json:"method"`
		Path     string `json:"path"`
		Expect   int    `json:"expect"`
		Interval string `json:"interval"`
		Timeout  string `json:"timeout"`
		Rise     int    `json:"rise"`
		Fall     int    `json:"fall"`
	} `json:"healthMonitor"`
	Persistence *struct {
		Type   string `json:"type"`
		Cookie string `json:"cookie"`
	} `json:"persistence"`
	Timeouts *struct {
		Connect string `json:"connect"`
		Client  string `json:"client"`
		Server  string `json:"server"`
	} `json:"timeouts"`
	Maxconn   int `json:"maxconn"`
	Placement struct {
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
func decode(p *Partial, v cue.Value, diags Diagnostics, pos *positions, first Pos) {
	p.Diagnostics = append(p.Diagnostics, diags...)
	bad := map[string]bool{}
	for _, d := range diags {
		if k := entityKey(d.Path); k != "" {
			bad[k] = true
		}
	}
	raw := &rawSpec{}
	if len(diags) == 0 {
		b, err := v.MarshalJSON()
		if err == nil {
			err = json.Unmarshal(b, raw)
		}
		if err != nil {
			p.Diagnostics = append(p.Diagnostics, errorf(first, "", "decode: %v", err))
			return
		}
	} else {
		raw.Devices = map[string]*rawDevice{}
		raw.Balancers = map[string]*rawBalancer{}
		decodeEach(p, v, "devices", bad, pos.devices, first, func(name string, b []byte) error {
			r := &rawDevice{}
			raw.Devices[name] = r
			return json.Unmarshal(b, r)
		})
		decodeEach(p, v, "balancers", bad, pos.balancers, first, func(name string, b []byte) error {
			r := &rawBalancer{}
			raw.Balancers[name] = r
			return json.Unmarshal(b, r)
		})
		if s := v.LookupPath(cue.MakePath(cue.Str("scheduler"))); s.Exists() && !bad["scheduler"] {
			if b, err := s.MarshalJSON(); err == nil {
				raw.Scheduler = &rawScheduler{}
				_ = json.Unmarshal(b, raw.Scheduler)
			}
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
	for name, r := range raw.Devices {
		p.addDevice(name, r, pos.devices[name], first)
	}
	for name, r := range raw.Balancers {
		p.addBalancer(name, r, pos.balancers[name], first)
	}
	if raw.Scheduler != nil {
		p.SchedulerPos = pos.scheduler
		p.schedulerFields = pos.schedulerFields
		if !p.SchedulerPos.IsValid() {
			p.SchedulerPos = first
		}
		p.addScheduler(raw.Scheduler)
	}
}

// decodeEach exports each entity under top that has no schema error.
func decodeEach(p *Partial, v cue.Value, top string, bad map[string]bool, pos map[string]*entityPos, first Pos, read func(string, []byte) error) {
	it, err := v.LookupPath(cue.MakePath(cue.Str(top))).Fields()
	if err != nil {
		return
	}
	for it.Next() {
		name := it.Selector().Unquoted()
		if bad[top+"/"+name] {
			continue
		}
		b, err := it.Value().MarshalJSON()
		if err == nil {
			err = read(name, b)
		}
		if err != nil {
			at := first
			if e := pos[name]; e != nil {
				at = e.pos
			}
			bad[top+"/"+name] = true
			p.Diagnostics = append(p.Diagnostics, errorf(at, top+"."+label(name), "%v", err))
		}
	}
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
