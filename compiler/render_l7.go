package compiler

import (
	"fmt"
	"path"
	"sort"
	"strconv"

	"lbc/schema"
)

// L7 routing of an http balancer: its rules in each of its frontends,
// one backend per pool, and its host table as a map file beside
// haproxy.cfg.
//
// Rules are tried in spec order and the first that matches decides, as a
// user reads them. HAProxy runs every http-request rule before any
// use_backend rule, so a pool rule does not pick its backend at once: it
// records its index in the variable txn.lbc_rule, every later rule also
// requires that no earlier one matched (!lbc_routed), and after the rules
// one use_backend line a pool rule sends the request on. A redirect or a
// reject ends the request where it matches. Then the host table, then the
// default backend (the balancer's own nodes).
//
//	acl lbc_routed var(txn.lbc_rule) -m found
//	# rule <i> of <balancer>: DescribeRule                 one a rule, read by plans
//	acl rule<i>_<j> FETCH [-i] -m MATCH [--] VALUE...   one a condition
//	http-request set-var(txn.lbc_rule) int(<i>) if rule<i>_0 !rule<i>_1 !lbc_routed
//	http-request redirect location|prefix TARGET code C if ... !lbc_routed
//	http-request deny if ... !lbc_routed                (403)
//	use_backend be_<balancer>:<pool> if { var(txn.lbc_rule) -m int <i> }
//	use_backend %[req.hdr(host),lower,regsub(:[0-9]+$,),map(MAPFILE,be_<balancer>)]

// HostsMapName is the file name of balancer's host table.
func HostsMapName(balancer string) string { return "lbc-hosts-" + balancer + ".map" }

// HostsMapPath is where dev keeps balancer's host table: beside its haproxy.cfg.
func HostsMapPath(dev *schema.Device, balancer string) string {
	return path.Join(path.Dir(dev.HAProxy.Config), HostsMapName(balancer))
}

// PoolBackend is the backend of a balancer's pool; schema.DefaultPool's
// is the balancer's own. A balancer name has no ':', so no pool backend
// is another balancer's.
func PoolBackend(balancer, pool string) string {
	if pool == schema.DefaultPool {
		return "be_" + balancer
	}
	return "be_" + balancer + ":" + pool
}

// hostFetch is the Host header in lower case without its port: only a
// trailing :digits goes, so an IPv6 literal keeps its brackets and
// colons ([2001:db8::1]:8080 → [2001:db8::1]). The $ is read by HAProxy
// as an environment variable only inside double quotes; this is never
// quoted.
const hostFetch = "req.hdr(host),lower,regsub(:[0-9]+$,)"

var matchFlag = map[string]string{
	schema.CmpExact: "-m str", schema.CmpPrefix: "-m beg", schema.CmpSuffix: "-m end",
	schema.CmpContains: "-m sub", schema.CmpRegex: "-m reg", schema.CmpFound: "-m found",
}

// routing writes the rules and the host table of b into a frontend.
func (w *cfgWriter) routing(b *schema.Balancer, mapPath string) {
	if len(b.Rules) > 0 {
		w.s("    acl lbc_routed var(txn.lbc_rule) -m found\n")
	}
	for i, r := range b.Rules {
		w.s("    # rule ")
		w.i(i)
		w.s(" of ", b.Name, ": ")
		w.buf = appendRule(w.buf, r)
		w.nl()
		for j, c := range r.Match {
			w.acl(b.Name, i, j, c)
		}
		switch {
		case r.Pool != "" && r.Redirect == nil && !r.Reject:
			if !hasPool(b, r.Pool) {
				w.fail("balancer %s: rules[%d]: unknown pool %q", b.Name, i, r.Pool)
			}
			w.s("    http-request set-var(txn.lbc_rule) int(")
			w.i(i)
			w.s(")")
		case r.Redirect != nil && r.Pool == "" && !r.Reject:
			rd := r.Redirect
			kind, target := "location", rd.Location
			if target == "" {
				kind, target = "prefix", rd.Prefix
			}
			w.redirectTarget(target, b.Name, i)
			switch rd.Code {
			case 301, 302, 303, 307, 308:
			default:
				w.fail("balancer %s: rules[%d]: redirect code %d", b.Name, i, rd.Code)
			}
			w.s("    http-request redirect ", kind, " ", target, " code ")
			w.i(rd.Code)
		case r.Reject && r.Pool == "" && r.Redirect == nil:
			w.s("    http-request deny")
		default:
			w.fail("balancer %s: rules[%d]: not one action", b.Name, i)
			return
		}
		w.s(" if")
		for j, c := range r.Match {
			w.s(" ")
			if c.Not {
				w.s("!")
			}
			w.aclName(i, j)
		}
		w.s(" !lbc_routed\n")
	}
	for i, r := range b.Rules {
		if r.Pool != "" {
			w.s("    use_backend ", PoolBackend(b.Name, r.Pool), " if { var(txn.lbc_rule) -m int ")
			w.i(i)
			w.s(" }\n")
		}
	}
	if b.Hosts != nil {
		w.word(mapPath, "host table path")
		w.s("    use_backend %[", hostFetch, ",map(", mapPath, ",be_", b.Name, ")]\n")
	}
}

// hasPool reports whether b has the pool name (the default pool always):
// a scan of its pools, not a map made for each frontend (a balancer has a
// few; at the schema's bounds, 1000 pools and rules, a million compares).
func hasPool(b *schema.Balancer, name string) bool {
	if name == schema.DefaultPool {
		return true
	}
	for _, p := range b.Pools {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (w *cfgWriter) aclName(i, j int) {
	w.s("rule")
	w.i(i)
	w.s("_")
	w.i(j)
}

// acl writes the ACL of condition j of rule i.
func (w *cfgWriter) acl(balancer string, i, j int, c schema.Condition) {
	w.s("    acl ")
	w.aclName(i, j)
	w.s(" ")
	switch c.Kind {
	case schema.CondHost:
		w.s(hostFetch)
	case schema.CondPath:
		w.s("path")
	case schema.CondHeader, schema.CondCookie:
		if !isToken(c.Name) {
			w.fail("balancer %s: rules[%d].match[%d]: unsafe %s name %q", balancer, i, j, c.Kind, c.Name)
		}
		if c.Kind == schema.CondHeader {
			w.s("req.fhdr(", c.Name, ")")
		} else {
			w.s("req.cook(", c.Name, ")")
		}
	case schema.CondFileType:
		if len(c.Types) == 0 {
			w.fail("balancer %s: rules[%d].match[%d]: no file type", balancer, i, j)
		}
		w.s("path -i -m end")
		for _, t := range c.Types {
			if !isToken(t) {
				w.fail("balancer %s: rules[%d].match[%d]: unsafe file type %q", balancer, i, j, t)
			}
			w.s(" .", t)
		}
		w.nl()
		return
	default:
		w.fail("balancer %s: rules[%d].match[%d]: unknown condition %q", balancer, i, j, c.Kind)
		return
	}
	flag, ok := matchFlag[c.Compare]
	if !ok || c.Compare == schema.CmpFound && (c.Kind == schema.CondHost || c.Kind == schema.CondPath) {
		w.fail("balancer %s: rules[%d].match[%d]: unknown comparison %q", balancer, i, j, c.Compare)
		return
	}
	w.s(" ", flag)
	if c.Compare != schema.CmpFound {
		if err := checkWord(c.Value, false); err != nil {
			w.fail("balancer %s: rules[%d].match[%d]: %w", balancer, i, j, err)
		}
		if c.Value != "" && c.Value[0] == '-' {
			w.s(" --") // a value HAProxy would read as a flag
		}
		w.s(" ", c.Value)
	}
	w.nl()
}

// redirectTarget records an error unless target is a safe word without
// '%' (HAProxy reads a redirect target as a log format).
func (w *cfgWriter) redirectTarget(target, balancer string, i int) {
	err := checkWord(target, false)
	if err == nil {
		for k := 0; k < len(target); k++ {
			if target[k] == '%' {
				w.fail("balancer %s: rules[%d]: redirect target %q holds %%", balancer, i, target)
				return
			}
		}
		return
	}
	w.fail("balancer %s: rules[%d]: %w", balancer, i, err)
}

// isToken accepts a header or cookie name or a file type: letters,
// digits, '.', '_' and '-'.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RenderHostsMap renders the host table of b as an HAProxy map file: the
// lbc header line, then one "HOST BACKEND" line a host, sorted by host.
func RenderHostsMap(b *schema.Balancer, opts Options) ([]byte, error) {
	w, err := newCfgWriter(opts, 64*len(b.Hosts))
	if err != nil {
		return nil, err
	}
	pools := map[string]bool{schema.DefaultPool: true}
	for _, p := range b.Pools {
		pools[p.Name] = true
	}
	hosts := make([]string, 0, len(b.Hosts))
	for h := range b.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	w.s("# host table of balancer ", b.Name, ": host backend\n")
	for _, h := range hosts {
		p := b.Hosts[h]
		if !isHost(h) || !pools[p] {
			w.fail("balancer %s: hosts: invalid entry %s", b.Name, strconv.Quote(h))
			break
		}
		w.s(h, " ", PoolBackend(b.Name, p), "\n")
	}
	if w.err != nil {
		return nil, fmt.Errorf("render %s: %w", HostsMapName(b.Name), w.err)
	}
	return w.finish(), nil
}

// isHost accepts a lower-case host name of a-z 0-9 . -.
func isHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// DescribeRule says what a rule does in one line of safe words, as the
// comment above its lines in haproxy.cfg and plans show it: "path prefix
// /api/ and not header X-Env exact beta -> pool api".
func DescribeRule(r schema.Rule) string { return string(appendRule(nil, r)) }

// appendRule appends DescribeRule(r) to b (the renderer writes it into
// the file without a string of its own).
func appendRule(b []byte, r schema.Rule) []byte {
	if len(r.Match) == 0 {
		b = append(b, "every request"...)
	}
	for j, c := range r.Match {
		if j > 0 {
			b = append(b, " and "...)
		}
		if c.Not {
			b = append(b, "not "...)
		}
		b = append(b, c.Kind...)
		if c.Name != "" {
			b = append(append(b, ' '), c.Name...)
		}
		if c.Kind == schema.CondFileType {
			for _, t := range c.Types {
				b = append(append(b, ' '), t...)
			}
			continue
		}
		b = append(append(b, ' '), c.Compare...)
		if c.Compare != schema.CmpFound {
			b = append(append(b, ' '), c.Value...)
		}
	}
	b = append(b, " -> "...)
	switch {
	case r.Redirect != nil:
		b = append(b, "redirect "...)
		b = strconv.AppendInt(b, int64(r.Redirect.Code), 10)
		if r.Redirect.Location != "" {
			b = append(append(b, " location "...), r.Redirect.Location...)
		} else {
			b = append(append(b, " prefix "...), r.Redirect.Prefix...)
		}
	case r.Reject:
		b = append(b, "reject 403"...)
	default:
		b = append(b, "pool "...)
		b = append(b, r.Pool...)
	}
	return b
}
