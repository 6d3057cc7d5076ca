package schema

import (
	"fmt"
	"math/bits"
	"net/netip"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Bounds of a balancer's L7 routing.
const (
	MaxRules      = 1000      // rules a balancer may have
	MaxConditions = 32        // conditions a rule may have
	MaxHosts      = 1_000_000 // entries of a host table
	MaxPools      = 1000      // pools a balancer may have
)

var redirectCodes = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

// checkL7 checks the pools, rules and host table of the raw balancer r
// and sets them on b; fieldAt is the position of a field of b (see
// lazyFields: called only for an error).
func checkL7(b *Balancer, r *rawBalancer, fieldAt func(key string) Pos, base string, ds *Diagnostics) {
	report := func(key, path, format string, args ...any) {
		*ds = append(*ds, errorf(fieldAt(key), join(base, path), format, args...))
	}
	if len(r.Pools) == 0 && len(r.Rules) == 0 && r.Hosts == nil {
		return
	}
	if r.Protocol != "http" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"pools", r.Pools != nil}, {"rules", r.Rules != nil}, {"hosts", r.Hosts != nil}} {
			if f.set {
				report(f.name, f.name, "%s need protocol http", f.name)
			}
		}
		return
	}
	pools := map[string]bool{DefaultPool: true}
	if len(r.Pools) > MaxPools {
		report("pools", "pools", "%d pools, more than %d", len(r.Pools), MaxPools)
	}
	for _, rp := range r.Pools {
		pools[rp.Name] = true
		if rp.Name == DefaultPool {
			report("pools."+rp.Name, "pools."+label(rp.Name), "pool name %q is reserved for the balancer's own nodes", DefaultPool)
			continue
		}
		bad := func(field, format string, args ...any) { // the key and path built only for an error
			report("pools."+rp.Name+"."+field, "pools."+label(rp.Name)+"."+field, format, args...)
		}
		p := Pool{Name: rp.Name, Algorithm: rp.Algorithm}
		p.Nodes, p.HealthMonitor, p.Persistence, p.Timeouts = checkBackend(r.Protocol, rp.Nodes, rp.HealthMonitor, rp.Persistence, rp.Timeouts, bad)
		inherit(&p, rp.hmSet, b)
		b.Pools = append(b.Pools, p)
	}
	sort.Slice(b.Pools, func(i, j int) bool { return b.Pools[i].Name < b.Pools[j].Name })

	if len(r.Rules) > MaxRules {
		report("rules", "rules", "%d rules, more than %d", len(r.Rules), MaxRules)
	}
	catchall := -1
	n := 0
	for _, rr := range r.Rules {
		n += len(rr.Match)
	}
	conds := make([]Condition, 0, n) // the rules' conditions, one allocation
	// i is the rule checked: one closure for all of them, not one each.
	i := 0
	bad := func(field, format string, args ...any) {
		k := "rules[" + strconv.Itoa(i) + "]" // built only for an error
		if field != "" {
			k += "." + field
		}
		report(k, k, format, args...)
	}
	for ; i < len(r.Rules); i++ {
		rr := &r.Rules[i]
		if catchall >= 0 {
			bad("", "unreachable: rules[%d] before it matches every request", catchall)
		}
		rule, ok := checkRule(rr, pools, &conds, bad)
		if ok {
			if b.Rules == nil {
				b.Rules = make([]Rule, 0, len(r.Rules)) // one allocation, not append's five
			}
			b.Rules = append(b.Rules, rule)
		}
		if ok && rule.Catchall() && catchall < 0 {
			catchall = i
		}
	}

	if r.Hosts != nil {
		if catchall >= 0 {
			report("hosts", "hosts", "unreachable: rules[%d] matches every request before the host table", catchall)
		}
		if len(r.Hosts) > MaxHosts {
			report("hosts", "hosts", "%d hosts, more than %d", len(r.Hosts), MaxHosts)
		}
		b.Hosts = make(map[string]string, len(r.Hosts))
		for _, h := range r.hostKeys {
			pool := r.Hosts[h]
			key, path := "hosts."+h, "hosts."+label(h)
			ok := true
			if !isHostname(h) || strings.HasSuffix(h, ".") {
				report(key, path, "invalid host %s: must be a DNS name in lower case, without a final dot", Quote(h))
				ok = false
			}
			if !pools[pool] {
				report(key, path, "unknown pool %s (%s)", Quote(pool), poolList(pools))
				ok = false
			}
			if ok {
				b.Hosts[h] = pool
			}
		}
	}
}

// inherit gives the pool p what it does not set of the balancer b: the
// health monitor (when hmSet is false) and the connect and server
// timeouts, as an operator expects of a pool of the same service.
func inherit(p *Pool, hmSet bool, b *Balancer) {
	if !hmSet {
		p.HealthMonitor = b.HealthMonitor
	}
	bt := b.Timeouts
	if bt == nil || bt.Connect == 0 && bt.Server == 0 {
		return
	}
	t := Timeouts{}
	if p.Timeouts != nil {
		t = *p.Timeouts
	}
	if t.Connect == 0 {
		t.Connect = bt.Connect
	}
	if t.Server == 0 {
		t.Server = bt.Server
	}
	p.Timeouts = &t
}

// poolList names the pools a balancer has, for a message.
func poolList(pools map[string]bool) string {
	names := make([]string, 0, len(pools))
	for n := range pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return "pools: " + strings.Join(names, ", ")
}

// checkRule checks one rule: its conditions and its one action. The
// conditions are appended to conds and the rule's Match is a part of it.
func checkRule(rr *rawRule, pools map[string]bool, conds *[]Condition, bad func(field, format string, args ...any)) (Rule, bool) {
	n0 := 0
	count := 0
	failed := func() bool { return n0 > 0 }
	fail := func(field, format string, args ...any) {
		n0++
		bad(field, format, args...)
	}
	rule := Rule{}
	start := len(*conds)
	if len(rr.Match) > MaxConditions {
		fail("match", "%d conditions, more than %d", len(rr.Match), MaxConditions)
	}
	j := 0 // the condition checked: one closure for all of them
	condBad := func(f, format string, args ...any) {
		field := "match[" + strconv.Itoa(j) + "]"
		if f != "" {
			f = field + "." + f
		} else {
			f = field
		}
		fail(f, format, args...)
	}
	for ; j < len(rr.Match); j++ {
		c, ok := checkCondition(&rr.Match[j], condBad)
		if ok {
			*conds = append(*conds, c)
		}
	}
	if n := len(*conds); n > start {
		rule.Match = (*conds)[start:n:n]
	}
	if rr.poolSet {
		count++
		rule.Pool = rr.Pool
		if !pools[rr.Pool] {
			fail("pool", "unknown pool %s (%s)", Quote(rr.Pool), poolList(pools))
		}
	}
	if rd := rr.Redirect; rd != nil {
		count++
		rule.Redirect = &Redirect{Location: rd.Location, Prefix: rd.Prefix, Code: rd.Code}
		switch {
		case rd.Location != "" && rd.Prefix != "":
			fail("redirect", "redirect takes location or prefix, not both")
		case rd.Location == "" && rd.Prefix == "":
			fail("redirect", "redirect needs location or prefix")
		case rd.Location != "":
			if err := checkURL(rd.Location); err != nil {
				fail("redirect.location", "%v", err)
			}
		default:
			if err := checkURL(rd.Prefix); err != nil {
				fail("redirect.prefix", "%v", err)
			} else if rd.Prefix != "/" && strings.HasSuffix(rd.Prefix, "/") {
				fail("redirect.prefix", "redirect prefix %s ends with /: the request's path, which starts with /, follows it", Quote(rd.Prefix))
			}
		}
		if !redirectCodes[rd.Code] {
			fail("redirect.code", "redirect code %d: must be 301, 302, 303, 307 or 308", rd.Code)
		}
	}
	if rr.rejSet {
		if rr.Reject {
			count++
			rule.Reject = true
		} else if count == 0 {
			fail("reject", "reject: false is no action: write reject: true, or another action")
		}
	}
	switch {
	case count == 0 && !(rr.rejSet && !rr.Reject):
		fail("", "a rule needs one action: pool, redirect or reject: true")
	case count > 1:
		fail("", "a rule takes one action: pool, redirect or reject: true, not several")
	}
	return rule, !failed()
}

// checkCondition checks one condition: exactly one kind, and its value.
func checkCondition(rc *rawCondition, bad func(field, format string, args ...any)) (Condition, bool) {
	ok := true
	fail := func(field, format string, args ...any) {
		ok = false
		bad(field, format, args...)
	}
	var (
		c   = Condition{Not: rc.Not}
		m   *rawMatch
		set int
	)
	for _, k := range rc.sets() {
		if k.set {
			if set == 0 {
				c.Kind, m = k.name, k.m
			}
			set++
		}
	}
	switch set {
	case 0:
		fail("", "a condition needs one of host, path, fileType, header, cookie")
		return Condition{}, false
	case 1:
	default:
		fail("", "a condition takes one of host, path, fileType, header, cookie, not %s: write one condition each (they are AND-ed)", strings.Join(rc.kinds(), " and "))
		return Condition{}, false
	}
	if c.Kind == CondFileType {
		if len(rc.FileType) == 0 {
			fail(CondFileType, "fileType needs at least one file extension")
		}
		c.Types = rc.FileType
		return c, ok
	}
	c.Name = m.Name
	switch bits.OnesCount8(m.cmps) {
	case 0:
		if c.Kind == CondHost || c.Kind == CondPath {
			fail(c.Kind, "%s needs one of exact, prefix, suffix, contains, regex", c.Kind)
			return c, false
		}
		c.Compare = CmpFound
		return c, ok
	case 1:
	default:
		fail(c.Kind, "%s takes one of exact, prefix, suffix, contains, regex, not %s", c.Kind, strings.Join(m.compares(), " and "))
		return c, false
	}
	c.Compare, c.Value = compares[bits.TrailingZeros8(m.cmps)], m.Value
	field := func() string { return c.Kind + "." + c.Compare } // built only for an error
	switch {
	case c.Compare == CmpRegex:
		if err := CheckRegex(c.Value); err != nil {
			fail(field(), "%v", err)
		}
	case c.Kind == CondHost && c.Compare == CmpExact && strings.HasPrefix(c.Value, "["):
		if err := checkIPv6Host(c.Value); err != nil {
			fail(field(), "%v", err)
		}
	case c.Kind == CondHost:
		if strings.Trim(c.Value, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
			fail(field(), "invalid host %s: hosts are compared in lower case, without the port: use a-z 0-9 . - only (an IPv6 address: exact: \"[2001:db8::1]\")", Quote(c.Value))
		}
	case c.Kind == CondPath && (c.Compare == CmpExact || c.Compare == CmpPrefix) && !strings.HasPrefix(c.Value, "/"):
		fail(field(), "a path starts with /: %s never matches", Quote(c.Value))
	}
	return c, ok
}

// checkIPv6Host checks a host condition's IPv6 literal: in brackets, as
// the Host header carries it, and in the canonical form (lower case, the
// longest run of zeros compressed) that browsers send and that the
// request's Host is compared with after its port is cut.
func checkIPv6Host(v string) error {
	inner, ok := strings.CutPrefix(v, "[")
	if ok {
		inner, ok = strings.CutSuffix(inner, "]")
	}
	a, err := netip.ParseAddr(inner)
	switch {
	case !ok || err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("invalid host %s: an IPv6 address in brackets, without the port: [2001:db8::1]", Quote(v))
	case a.String() != inner:
		return fmt.Errorf("host %s: write the IPv6 address as browsers send it: [%s]", Quote(v), a)
	}
	return nil
}

// CheckRegex checks a regular expression of a rule: RE2 syntax (Go's
// regexp/syntax), which HAProxy's PCRE reads the same for the characters
// the schema allows, and no nested repetition or repeated alternation,
// on which a backtracking engine such as PCRE can take exponential time
// ((a+)+b, (a|aa)*c).
func CheckRegex(s string) error {
	if err, ok := regexChecks.Load(s); ok {
		return err.(regexResult).err
	}
	err := checkRegex(s)
	if regexCount.Add(1) > maxRegexChecks {
		regexChecks.Clear() // bounded: a tree of many distinct regexes starts over
		regexCount.Store(1)
	}
	regexChecks.Store(s, regexResult{err})
	return err
}

// regexChecks caches CheckRegex by the expression's text: a fleet's
// balancers tend to repeat the same few expressions, each parsed once.
var (
	regexChecks sync.Map // string → regexResult
	regexCount  atomic.Int64
)

const maxRegexChecks = 10_000

type regexResult struct{ err error }

func checkRegex(s string) error {
	re, err := syntax.Parse(s, syntax.Perl)
	if err != nil {
		return fmt.Errorf("invalid regular expression %s: %v", Quote(s), err)
	}
	if why := backtracks(re, false); why != "" {
		return fmt.Errorf("regular expression %s has %s: HAProxy's backtracking engine can take exponential time on it", Quote(s), why)
	}
	return nil
}

// backtracks finds a repetition inside a repetition, or an alternation
// inside one; inRepeat says whether re is inside a repetition.
func backtracks(re *syntax.Regexp, inRepeat bool) string {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat, syntax.OpQuest:
		unbounded := re.Op == syntax.OpStar || re.Op == syntax.OpPlus || re.Op == syntax.OpRepeat && (re.Max == -1 || re.Max > 1)
		if inRepeat && re.Op != syntax.OpQuest {
			return "a repetition inside a repetition"
		}
		for _, sub := range re.Sub {
			if why := backtracks(sub, inRepeat || unbounded); why != "" {
				return why
			}
		}
		return ""
	case syntax.OpAlternate:
		if inRepeat {
			return "an alternation inside a repetition"
		}
	}
	for _, sub := range re.Sub {
		if why := backtracks(sub, inRepeat); why != "" {
			return why
		}
	}
	return ""
}

// checkURL checks a redirect target: an http or https URL with a host,
// or an absolute path (the schema keeps its characters safe).
func checkURL(s string) error {
	if s == "" {
		return fmt.Errorf("empty redirect target")
	}
	if strings.HasPrefix(s, "/") {
		if strings.HasPrefix(s, "//") {
			return fmt.Errorf("redirect target %s starts with //: a browser reads it as another host; write https://HOST/...", Quote(s))
		}
		return nil
	}
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "http://")
	}
	host, _, _ := strings.Cut(rest, "/")
	if !ok || host == "" {
		return fmt.Errorf("redirect target %s: must be an http(s) URL with a host, or a path starting with /", Quote(s))
	}
	return nil
}
