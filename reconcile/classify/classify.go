package classify

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Class is how a device's haproxy.cfg change can be applied.
type Class string

const (
	// None: the files are equal.
	None Class = "none"
	// Runtime: the runtime API can carry the change (Ops, possibly none when
	// only the header differs); the file is still swapped.
	Runtime Class = "runtime"
	// Reload: the change needs a new HAProxy process (Reason says why).
	Reload Class = "reload"
)

// Result is the class of one device's change.
type Result struct {
	Class  Class  `json:"class"`
	Reason string `json:"reason,omitempty"` // why a reload
	Ops    []Op   `json:"ops,omitempty"`    // runtime: in the order to send them
	// Maps, runtime: the host tables loaded after Ops (maps.go).
	Maps []MapOp `json:"maps,omitempty"`
}

// Kind is the kind of a runtime operation.
type Kind string

const (
	KindWeight Kind = "weight" // set weight BACKEND/SERVER To
	KindDrain  Kind = "drain"  // set weight BACKEND/SERVER 0: no new sessions
	KindState  Kind = "state"  // set server BACKEND/SERVER state To (ready | maint)
	KindAddr   Kind = "addr"   // set server BACKEND/SERVER addr A port P
	KindAdd    Kind = "add"    // add server BACKEND/SERVER Args..., then enable health with check
	KindDel    Kind = "del"    // drain, state maint once idle or at the drain timeout, del server
	// KindCert: set ssl cert File (its new content, swapped on the host) +
	// commit ssl cert File; Name is the certificate's name in its source,
	// From and To the bundle's sha256 (no key byte: see reconcile/certrt.go).
	KindCert Kind = "cert"
)

// Op is one runtime operation on one server.
type Op struct {
	Kind    Kind     `json:"kind"`
	Backend string   `json:"backend"`
	Server  string   `json:"server"`
	From    string   `json:"from,omitempty"`
	To      string   `json:"to,omitempty"`
	Args    []string `json:"args,omitempty"` // add, del: the server's address and keywords, the backend's default-server ones included
	// File and Name: a certificate's path on the host and its name (cert).
	File string `json:"file,omitempty"`
	Name string `json:"name,omitempty"`
}

// String is the operation as plan output shows it.
func (o Op) String() string {
	id := o.Backend + "/" + o.Server
	switch o.Kind {
	case KindWeight:
		return id + " weight " + o.From + " → " + o.To
	case KindDrain:
		return id + " drain (weight " + o.From + " → 0)"
	case KindState:
		return id + " state " + o.From + " → " + o.To
	case KindAddr:
		return id + " addr " + o.From + " → " + o.To
	case KindAdd:
		return "add server " + id + " " + strings.Join(o.Args, " ")
	case KindDel:
		return "del server " + id + " (after a drain)"
	case KindCert:
		return "rotate cert " + o.Name + ": sha256 " + o.From + " → " + o.To
	}
	return id + " " + string(o.Kind)
}

// dynamic reports whether HAProxy 2.6 changes weights and adds servers at
// runtime in a backend of this algorithm.
func dynamic(algo string) bool {
	return algo == "roundrobin" || algo == "leastconn" || algo == "first"
}

// Change classifies the change from live to desired, both haproxy.cfg
// files. live is nil when the host has none. trusted says that the live
// file is the one lbc applied last (its state says so), so that the
// running HAProxy runs it; without that the change is a reload.
func Change(live, desired []byte, trusted bool) Result {
	if live != nil && bytes.Equal(live, desired) {
		return Result{Class: None}
	}
	reload := func(format string, args ...any) Result {
		return Result{Class: Reload, Reason: fmt.Sprintf(format, args...)}
	}
	if live == nil {
		return reload("no haproxy.cfg on the host")
	}
	if !trusted {
		return reload("the live haproxy.cfg is not the one lbc applied last")
	}
	lc, err := parse(live)
	if err != nil {
		return reload("the live haproxy.cfg is not lbc's own rendering: %v", err)
	}
	dc, err := parse(desired)
	if err != nil {
		return reload("the new haproxy.cfg: %v", err)
	}
	if r, ok := sameSections(lc, dc); !ok {
		return r
	}
	var ops []Op
	for _, ds := range dc.sections {
		ls := lc.byHead[ds.head]
		if !slices.Equal(ls.lines, ds.lines) {
			return reload("%s: %s", ds.head, firstChange(ls.lines, ds.lines))
		}
		if !strings.HasPrefix(ds.head, "backend ") {
			continue
		}
		bops, r, ok := backendOps(strings.TrimPrefix(ds.head, "backend "), ls, ds)
		if !ok {
			return r
		}
		ops = append(ops, bops...)
	}
	return Result{Class: Runtime, Ops: ops}
}

// sameSections checks that both files hold the same sections in the same order.
func sameSections(lc, dc *config) (Result, bool) {
	for _, ds := range dc.sections {
		if lc.byHead[ds.head] == nil {
			return Result{Class: Reload, Reason: ds.head + " is new"}, false
		}
	}
	for _, ls := range lc.sections {
		if dc.byHead[ls.head] == nil {
			return Result{Class: Reload, Reason: ls.head + " is removed"}, false
		}
	}
	for i := range dc.sections {
		if lc.sections[i].head != dc.sections[i].head {
			return Result{Class: Reload, Reason: "sections are reordered"}, false
		}
	}
	return Result{}, true
}

// firstChange names the first directive of the new section that the old
// one lacks (or the first removed one). It quotes only lines of the new
// file, which lbc rendered, or says "a directive is removed".
func firstChange(old, new []string) string {
	for i, d := range new {
		if i >= len(old) || old[i] != d {
			return strconv.Quote(d) + " is new or changed"
		}
	}
	return "a directive is removed"
}

// backendOps compares the servers of one backend.
func backendOps(be string, ls, ds *section) ([]Op, Result, bool) {
	fail := func(format string, args ...any) ([]Op, Result, bool) {
		return nil, Result{Class: Reload, Reason: "backend " + be + ": " + fmt.Sprintf(format, args...)}, false
	}
	// Servers kept on both sides must keep their order: server ids follow
	// file order, and a reload would renumber them.
	var keptLive, keptNew []string
	for _, s := range ls.servers {
		if ds.byName[s.name] != nil {
			keptLive = append(keptLive, s.name)
		}
	}
	lastKept := -1
	for i, s := range ds.servers {
		if ls.byName[s.name] != nil {
			keptNew = append(keptNew, s.name)
			lastKept = i
		}
	}
	if !slices.Equal(keptLive, keptNew) {
		return fail("servers are reordered")
	}
	var ops, adds, dels []Op
	for i, s := range ds.servers {
		old := ls.byName[s.name]
		if old == nil {
			switch {
			case s.tls != "":
				return fail("server %s: TLS to the node: lbc adds such a server at a reload", s.name)
			case !dynamic(ds.algo):
				return fail("balance %s is static: HAProxy 2.6 adds servers only to backends of a dynamic algorithm", ds.algo)
			case ds.cookie:
				return fail("cookie persistence: HAProxy 2.6 cannot add a server with a cookie at runtime")
			case ds.algo == "first" && i < lastKept:
				return fail("balance first uses servers in file order: a server added before an existing one needs a reload")
			}
			args := slices.Clone(s.args)
			if s.check {
				args = append(args, ds.dflt...)
			}
			adds = append(adds, Op{Kind: KindAdd, Backend: be, Server: s.name, Args: args})
			continue
		}
		switch {
		case old.maxconn != s.maxconn:
			return fail("server %s: maxconn changes", s.name)
		case old.check != s.check:
			return fail("server %s: check changes", s.name)
		case old.backup != s.backup:
			return fail("server %s: backup changes", s.name)
		case old.cookie != s.cookie:
			return fail("server %s: cookie changes", s.name)
		case old.tls != s.tls:
			return fail("server %s: TLS to the node changes", s.name)
		}
		if old.addr != s.addr {
			ops = append(ops, Op{Kind: KindAddr, Backend: be, Server: s.name, From: old.addr, To: s.addr})
		}
		if old.disabled != s.disabled {
			ops = append(ops, Op{Kind: KindState, Backend: be, Server: s.name, From: state(old.disabled), To: state(s.disabled)})
		}
		if old.weight != s.weight {
			from, to := strconv.Itoa(old.weight), strconv.Itoa(s.weight)
			switch {
			case s.weight == 0:
				ops = append(ops, Op{Kind: KindDrain, Backend: be, Server: s.name, From: from, To: to})
			case !dynamic(ds.algo):
				return fail("balance %s is static: at runtime a weight goes only to 0 or back to the weight HAProxy started with", ds.algo)
			default:
				ops = append(ops, Op{Kind: KindWeight, Backend: be, Server: s.name, From: from, To: to})
			}
		}
	}
	for _, s := range ls.servers {
		if ds.byName[s.name] == nil && s.tls != "" {
			return fail("server %s: TLS to the node: lbc deletes such a server at a reload", s.name)
		}
		if ds.byName[s.name] == nil {
			// Args: the live server as an add server would bring it back.
			args := slices.Clone(s.args)
			if s.check {
				args = append(args, ls.dflt...)
			}
			dels = append(dels, Op{Kind: KindDel, Backend: be, Server: s.name, From: strconv.Itoa(s.weight), Args: args})
		}
	}
	return append(append(ops, adds...), dels...), Result{}, true
}

func state(disabled bool) string {
	if disabled {
		return "maint"
	}
	return "ready"
}

// Check validates a Result read from a saved plan (input anyone may have
// edited): a known class and kinds, and only words of lbc's own character
// set in the operations, so that nothing else reaches a terminal or, later,
// the stats socket.
func Check(r *Result) error {
	switch r.Class {
	case None, Runtime, Reload:
	default:
		return fmt.Errorf("change: class %q", r.Class)
	}
	if r.Class != Runtime && (len(r.Ops) > 0 || len(r.Maps) > 0) {
		return fmt.Errorf("change: operations in a %s change", r.Class)
	}
	if err := checkMapOps(r.Maps); err != nil {
		return err
	}
	if r.Class == Reload && (r.Reason == "" || len(r.Reason) > 1000) {
		return errors.New("change: a reload needs a short reason")
	}
	for i, o := range r.Ops {
		if o.Kind == KindCert {
			if err := checkCertOp(o); err != nil {
				return fmt.Errorf("change: ops[%d]: %w", i, err)
			}
			continue
		}
		switch o.Kind {
		case KindWeight, KindDrain, KindState, KindAddr, KindAdd, KindDel:
		default:
			return fmt.Errorf("change: ops[%d]: kind %q", i, o.Kind)
		}
		words := append([]string{o.Backend, o.Server}, o.Args...)
		for _, w := range []string{o.From, o.To} {
			if w != "" {
				words = append(words, w)
			}
		}
		for _, w := range words {
			if !safeWord(w) {
				return fmt.Errorf("change: ops[%d]: %q is not a word lbc renders", i, w)
			}
		}
	}
	return nil
}

// checkCertOp validates a certificate rotation read from a saved plan:
// no server, a name of lbc's words, an absolute path of [A-Za-z0-9._/-],
// two sha256 fingerprints.
func checkCertOp(o Op) error {
	if o.Backend != "" || o.Server != "" || len(o.Args) > 0 {
		return errors.New("a certificate rotation names no server")
	}
	if !safeWord(o.Name) {
		return fmt.Errorf("certificate name %q is not a word lbc renders", o.Name)
	}
	if !strings.HasPrefix(o.File, "/") || len(o.File) > 4096 || strings.Contains(o.File, "..") {
		return fmt.Errorf("certificate path %q: not an absolute path", o.File)
	}
	for i := 0; i < len(o.File); i++ {
		if c := o.File[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._/-", c) >= 0) {
			return fmt.Errorf("certificate path %q: character %q", o.File, c)
		}
	}
	for _, h := range []string{o.From, o.To} {
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return fmt.Errorf("certificate %s: %q is not a sha256", o.Name, h)
		}
	}
	return nil
}
