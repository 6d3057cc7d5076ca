package schema

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"sort"
	"time"
)

// The binary form of a Partial in the instance cache (cache.go): exact
// (nil and empty stay apart, every field of every type is written; a test
// fills each field and checks the round trip) and quick to read: strings
// are written once and referred to by index after that, so the file names
// of ten thousand positions cost one string.

var errCorrupt = errors.New("corrupt cache entry")

type encoder struct {
	b       []byte
	strings map[string]int
}

func (e *encoder) uint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) int(x int)     { e.b = binary.AppendVarint(e.b, int64(x)) }

func (e *encoder) bool(x bool) {
	if x {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// str writes a string: 0 and its bytes the first time, index+1 after that.
func (e *encoder) str(s string) {
	if i, ok := e.strings[s]; ok {
		e.uint(uint64(i) + 1)
		return
	}
	e.strings[s] = len(e.strings)
	e.uint(0)
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// n writes whether a slice, map or pointer is nil (0) or its length + 1.
func (e *encoder) n(isNil bool, n int) {
	if isNil {
		e.uint(0)
	} else {
		e.uint(uint64(n) + 1)
	}
}

func (e *encoder) strs(xs []string) {
	e.n(xs == nil, len(xs))
	for _, x := range xs {
		e.str(x)
	}
}

func (e *encoder) pos(p Pos) {
	e.str(p.File)
	e.int(p.Line)
	e.int(p.Col)
}

// posMap writes a map of positions in key order (deterministic output).
func (e *encoder) posMap(m map[string]Pos) {
	e.n(m == nil, len(m))
	for _, k := range sortedKeys(m) {
		e.str(k)
		e.pos(m[k])
	}
}

func (e *encoder) addr(a netip.Addr) {
	b, _ := a.MarshalBinary() // never fails
	e.uint(uint64(len(b)))
	e.b = append(e.b, b...)
}

func (e *encoder) duration(d time.Duration) { e.b = binary.AppendVarint(e.b, int64(d)) }

func encodePartial(p *Partial) []byte {
	e := &encoder{strings: map[string]int{}}
	e.str(p.Dir)
	e.strs(p.Files)
	e.n(p.Devices == nil, len(p.Devices))
	for _, k := range sortedKeys(p.Devices) {
		e.str(k)
		e.device(p.Devices[k])
	}
	e.n(p.Balancers == nil, len(p.Balancers))
	for _, k := range sortedKeys(p.Balancers) {
		e.str(k)
		e.balancer(p.Balancers[k])
	}
	e.n(p.Scheduler == nil, 0)
	if s := p.Scheduler; s != nil {
		e.strs(s.Filters)
		e.n(s.Costs == nil, len(s.Costs))
		for _, k := range sortedKeys(s.Costs) {
			e.str(k)
			e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(s.Costs[k]))
		}
	}
	e.pos(p.SchedulerPos)
	e.n(p.Diagnostics == nil, len(p.Diagnostics))
	for _, d := range p.Diagnostics {
		e.str(d.Severity)
		e.str(d.Message)
		e.str(d.Path)
		e.pos(d.Pos)
	}
	e.posMap(p.rejected)
	e.posMap(p.schedulerFields)
	return e.b
}

func (e *encoder) device(d *Device) {
	e.n(d == nil, 0)
	if d == nil {
		return
	}
	e.str(d.Name)
	e.pos(d.Pos)
	e.str(d.Address)
	e.str(d.SSH.User)
	e.int(d.SSH.Port)
	e.bool(d.SSH.Sudo)
	e.str(d.Zone)
	e.int(d.Capacity.Balancers)
	e.int(d.Capacity.Maxconn)
	e.strs(d.Tags)
	e.str(d.VIPInterface)
	e.n(d.VIPNetworks == nil, len(d.VIPNetworks))
	for _, p := range d.VIPNetworks {
		e.addr(p.Addr())
		e.int(p.Bits())
	}
	for _, s := range []string{d.HAProxy.Config, d.HAProxy.Reload, d.HAProxy.Check, d.Keepalived.Config, d.Keepalived.Reload, d.Keepalived.Check, d.StateDir} {
		e.str(s)
	}
	e.posMap(d.FieldPos)
}

func (e *encoder) balancer(b *Balancer) {
	e.n(b == nil, 0)
	if b == nil {
		return
	}
	e.str(b.Name)
	e.pos(b.Pos)
	e.str(b.Tenant)
	e.str(b.Protocol)
	e.str(b.Algorithm)
	e.n(b.VIPs == nil, len(b.VIPs))
	for _, v := range b.VIPs {
		e.addr(v.Address)
		e.int(v.Port)
		e.tls(v.TLS)
	}
	e.backend(b.Nodes, b.HealthMonitor, b.Persistence, b.Timeouts)
	e.int(b.Maxconn)
	e.strs(b.Placement.Zones)
	e.strs(b.Placement.Tags)
	e.str(b.Placement.Device)
	e.bool(b.Placement.HA)
	e.bool(b.Failback)
	e.duration(b.DrainTimeout)
	e.l7(b)
	e.nodeTLS(b.NodeTLS)
	e.posMap(b.FieldPos)
}

// backend writes what a balancer and a pool share.
func (e *encoder) backend(nodes []Node, h HealthMonitor, pers *Persistence, t *Timeouts) {
	e.n(nodes == nil, len(nodes))
	for _, n := range nodes {
		e.addr(n.Address)
		e.int(n.Port)
		e.int(n.Weight)
		e.int(n.Maxconn)
		e.bool(n.Backup)
		e.str(n.State)
	}
	e.str(h.Type)
	e.str(h.Method)
	e.str(h.Path)
	e.int(h.Expect)
	e.duration(h.Interval)
	e.duration(h.Timeout)
	e.int(h.Rise)
	e.int(h.Fall)
	e.n(pers == nil, 0)
	if pers != nil {
		e.str(pers.Type)
		e.str(pers.Cookie)
	}
	e.n(t == nil, 0)
	if t != nil {
		e.duration(t.Connect)
		e.duration(t.Client)
		e.duration(t.Server)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decoder of the binary form: any malformed input sets err (and decoding
// goes on reading zeros), never panics, and allocates no more than the
// input's length allows.
type cdecoder struct {
	b       []byte
	strings []string
	err     error
}

func (d *cdecoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *cdecoder) uint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *cdecoder) int() int {
	x, n := binary.Varint(d.b)
	if n <= 0 || x != int64(int(x)) {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return int(x)
}

func (d *cdecoder) bool() bool {
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail()
		return false
	}
	x := d.b[0] == 1
	d.b = d.b[1:]
	return x
}

func (d *cdecoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	x := d.b[:n]
	d.b = d.b[n:]
	return x
}

func (d *cdecoder) str() string {
	i := d.uint()
	if i > 0 {
		if i > uint64(len(d.strings)) {
			d.fail()
			return ""
		}
		return d.strings[i-1]
	}
	s := string(d.bytes(d.uint()))
	if d.err == nil {
		d.strings = append(d.strings, s)
	}
	return s
}

// n reads a nil flag or length; each element takes at least one byte, so
// a length beyond what is left is corrupt.
func (d *cdecoder) n() (isNil bool, n int) {
	x := d.uint()
	if x == 0 {
		return true, 0
	}
	if x-1 > uint64(len(d.b)) {
		d.fail()
		return true, 0
	}
	return false, int(x - 1)
}

func (d *cdecoder) strs() []string {
	isNil, n := d.n()
	if isNil {
		return nil
	}
	xs := make([]string, n)
	for i := range xs {
		xs[i] = d.str()
	}
	return xs
}

func (d *cdecoder) pos() Pos { return Pos{File: d.str(), Line: d.int(), Col: d.int()} }

func (d *cdecoder) posMap() map[string]Pos {
	isNil, n := d.n()
	if isNil {
		return nil
	}
	m := make(map[string]Pos, n)
	for range n {
		k := d.str()
		m[k] = d.pos()
	}
	return m
}

func (d *cdecoder) addr() netip.Addr {
	var a netip.Addr
	if err := a.UnmarshalBinary(d.bytes(d.uint())); err != nil {
		d.fail()
	}
	return a
}

func (d *cdecoder) duration() time.Duration {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return time.Duration(x)
}

func decodePartial(b []byte) (*Partial, error) {
	d := &cdecoder{b: b}
	p := &Partial{}
	p.Dir = d.str()
	p.Files = d.strs()
	if isNil, n := d.n(); !isNil {
		p.Devices = make(map[string]*Device, n)
		for range n {
			k := d.str()
			p.Devices[k] = d.device()
		}
	}
	if isNil, n := d.n(); !isNil {
		p.Balancers = make(map[string]*Balancer, n)
		for range n {
			k := d.str()
			p.Balancers[k] = d.balancer()
		}
	}
	if isNil, _ := d.n(); !isNil {
		s := &Scheduler{Filters: d.strs()}
		if isNil, n := d.n(); !isNil {
			s.Costs = make(map[string]float64, n)
			for range n {
				k := d.str()
				s.Costs[k] = math.Float64frombits(binary.LittleEndian.Uint64(d.bytes(8)))
			}
		}
		p.Scheduler = s
	}
	p.SchedulerPos = d.pos()
	if isNil, n := d.n(); !isNil {
		p.Diagnostics = make(Diagnostics, n)
		for i := range p.Diagnostics {
			p.Diagnostics[i] = Diagnostic{Severity: d.str(), Message: d.str(), Path: d.str(), Pos: d.pos()}
		}
	}
	p.rejected = d.posMap()
	p.schedulerFields = d.posMap()
	if d.err == nil && len(d.b) > 0 {
		d.fail()
	}
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}

func (d *cdecoder) device() *Device {
	if isNil, _ := d.n(); isNil {
		return nil
	}
	x := &Device{Name: d.str(), Pos: d.pos(), Address: d.str()}
	x.SSH = SSH{User: d.str(), Port: d.int(), Sudo: d.bool()}
	x.Zone = d.str()
	x.Capacity = Capacity{Balancers: d.int(), Maxconn: d.int()}
	x.Tags = d.strs()
	x.VIPInterface = d.str()
	if isNil, n := d.n(); !isNil {
		x.VIPNetworks = make([]netip.Prefix, n)
		for i := range x.VIPNetworks {
			a := d.addr()
			bits := d.int()
			p := netip.PrefixFrom(a, bits)
			if !p.IsValid() && d.err == nil {
				d.fail()
			}
			x.VIPNetworks[i] = p
		}
	}
	x.HAProxy = HAProxy{Config: d.str(), Reload: d.str(), Check: d.str()}
	x.Keepalived = Keepalived{Config: d.str(), Reload: d.str(), Check: d.str()}
	x.StateDir = d.str()
	x.FieldPos = d.posMap()
	return x
}

func (d *cdecoder) balancer() *Balancer {
	if isNil, _ := d.n(); isNil {
		return nil
	}
	b := &Balancer{Name: d.str(), Pos: d.pos(), Tenant: d.str(), Protocol: d.str(), Algorithm: d.str()}
	if isNil, n := d.n(); !isNil {
		b.VIPs = make([]VIP, n)
		for i := range b.VIPs {
			b.VIPs[i] = VIP{Address: d.addr(), Port: d.int()}
			b.VIPs[i].TLS = d.tls()
		}
	}
	b.Nodes, b.HealthMonitor, b.Persistence, b.Timeouts = d.backend()
	b.Maxconn = d.int()
	b.Placement = Placement{Zones: d.strs(), Tags: d.strs(), Device: d.str(), HA: d.bool()}
	b.Failback = d.bool()
	b.DrainTimeout = d.duration()
	d.l7(b)
	b.NodeTLS = d.nodeTLS()
	b.FieldPos = d.posMap()
	return b
}

// backend reads what encoder.backend wrote.
func (d *cdecoder) backend() (nodes []Node, h HealthMonitor, pers *Persistence, t *Timeouts) {
	if isNil, n := d.n(); !isNil {
		nodes = make([]Node, n)
		for i := range nodes {
			nodes[i] = Node{Address: d.addr(), Port: d.int(), Weight: d.int(), Maxconn: d.int(), Backup: d.bool(), State: d.str()}
		}
	}
	h = HealthMonitor{Type: d.str(), Method: d.str(), Path: d.str(), Expect: d.int(),
		Interval: d.duration(), Timeout: d.duration(), Rise: d.int(), Fall: d.int()}
	if isNil, _ := d.n(); !isNil {
		pers = &Persistence{Type: d.str(), Cookie: d.str()}
	}
	if isNil, _ := d.n(); !isNil {
		t = &Timeouts{Connect: d.duration(), Client: d.duration(), Server: d.duration()}
	}
	return nodes, h, pers, t
}
