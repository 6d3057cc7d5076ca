package compiler

import (
	"fmt"
	"strings"
)

// Filter names, as spec.Scheduler.Filters lists them.
const (
	FilterDevice     = "device"
	FilterZone       = "zone"
	FilterTags       = "tags"
	FilterVIPNetwork = "vipNetwork"
	FilterCapacity   = "capacity"
	FilterHA         = "ha"
)

// filterOrder is the order in which filters are evaluated and reported.
// When a device fails several, the first one in this order is the reason
// counted in an UnplaceableError, so the counts add up to the device total.
//
// The device filter (placement.device) always runs, listed or not: a pin is
// an explicit wish of one balancer, while the filter list is fleet policy.
// It pins the primary of an HA balancer; the standby is chosen freely.
// The ha filter, too, always runs for the standby of an HA pair, which is
// never the primary's device; when the filter is listed, the standby must
// moreover be in another zone than the primary.
var filterOrder = [...]string{FilterDevice, FilterZone, FilterTags, FilterVIPNetwork, FilterCapacity, FilterHA}

type filterID uint8

const (
	fDevice filterID = iota
	fZone
	fTags
	fVIPNetwork
	fCapacity
	fHA
	numFilters
)

func (f filterID) String() string { return filterOrder[f] }

// static reports whether f depends only on the balancer and the device's
// fixed attributes (zone, tags, vipNetworks), not on what is placed.
func (f filterID) static() bool { return f == fZone || f == fTags || f == fVIPNetwork }

// role says which device of a balancer is being chosen: the only or primary
// one (noPrimary), or the standby of an HA pair (the primary's index).
const noPrimary int32 = -1

// pass reports whether device d passes filter f for every member of u. For
// the standby, primary is the primary's device; otherwise it is noPrimary.
// It does not allocate; why gives the reason for a rejection.
func (s *sched) pass(f filterID, u *unit, d int32, primary int32) bool {
	switch f {
	case fDevice:
		return primary != noPrimary || u.pin == noPin || u.pin == d
	case fZone, fTags, fVIPNetwork:
		for _, b := range u.ms {
			if !s.passBal(f, b, d) {
				return false
			}
		}
		return true
	case fCapacity:
		l := &s.load[d]
		return l.count+u.n <= l.maxCount && l.committed+u.maxconn <= l.maxConn
	case fHA:
		if primary == noPrimary {
			return true
		}
		return d != primary && (!s.haZones || s.devs[d].zone != s.devs[primary].zone)
	}
	return false
}

// passBal reports whether device d passes the static filter f for b.
func (s *sched) passBal(f filterID, b *bal, d int32) bool {
	dv := &s.devs[d]
	switch f {
	case fZone:
		if len(b.zones) == 0 {
			return true
		}
		for _, z := range b.zones {
			if z == dv.zone {
				return true
			}
		}
		return false
	case fTags:
		if b.unknownTag {
			return false
		}
		have := s.classes[dv.class].tags
		for i, w := range b.tags {
			if w&^have[i] != 0 {
				return false
			}
		}
		return true
	case fVIPNetwork:
		return s.vipsOK(b, dv.class)
	}
	return true
}

// vipsOK reports whether every VIP of b lies in one of the networks of class c.
func (s *sched) vipsOK(b *bal, c int32) bool {
	nets := s.classes[c].nets
	if len(nets) == 0 {
		return true
	}
	if b.vipNets != nil {
		m := s.classes[c].netMask
		for _, v := range b.vipNets {
			if v&m == 0 {
				return false
			}
		}
		return true
	}
	for _, v := range b.b.VIPs {
		ok := false
		for _, p := range nets {
			if p.Contains(v.Address) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// why explains why device d fails filter f for u ("" when it passes). For
// a static filter and a unit of several balancers, the reason is the first
// failing member's, prefixed with its name.
func (s *sched) why(f filterID, u *unit, d int32, primary int32) string {
	if s.pass(f, u, d, primary) {
		return ""
	}
	dv := &s.devs[d]
	switch f {
	case fDevice:
		pins := map[string]bool{}
		var list []string
		for _, b := range u.ms {
			if p := b.b.Placement.Device; p != "" && !pins[p] {
				pins[p] = true
				list = append(list, p)
			}
		}
		if len(list) > 1 {
			return fmt.Sprintf("placement.device pins %s (members disagree)", strings.Join(list, ", "))
		}
		return fmt.Sprintf("placement.device pins %s", strings.Join(list, ""))
	case fZone, fTags, fVIPNetwork:
		for _, b := range u.ms {
			if s.passBal(f, b, d) {
				continue
			}
			r := s.whyBal(f, b, dv)
			if len(u.ms) > 1 {
				r = b.name + ": " + r
			}
			return r
		}
	case fCapacity:
		l := &s.load[d]
		if l.count+u.n > l.maxCount {
			if u.n == 1 {
				return fmt.Sprintf("full: %d/%d balancers", l.count, l.maxCount)
			}
			return fmt.Sprintf("%d/%d balancers, no room for %d", l.count, l.maxCount, u.n)
		}
		return fmt.Sprintf("maxconn %d committed + %d > %d", l.committed, u.maxconn, l.maxConn)
	case fHA:
		if d == primary {
			return "is the primary"
		}
		return fmt.Sprintf("same zone %s as primary %s", s.zoneNames[dv.zone], s.devs[primary].name)
	}
	return "rejected"
}

// whyBal explains why dv fails the static filter f for b.
func (s *sched) whyBal(f filterID, b *bal, dv *schedDevice) string {
	switch f {
	case fZone:
		if dv.zone < 0 || s.zoneNames[dv.zone] == "" {
			return fmt.Sprintf("no zone, placement.zones is [%s]", strings.Join(b.b.Placement.Zones, " "))
		}
		return fmt.Sprintf("zone %s not in [%s]", s.zoneNames[dv.zone], strings.Join(b.b.Placement.Zones, " "))
	case fTags:
		have := map[string]bool{}
		for _, t := range dv.d.Tags {
			have[t] = true
		}
		var missing []string
		for _, t := range b.b.Placement.Tags {
			if !have[t] {
				missing = append(missing, t)
			}
		}
		return fmt.Sprintf("missing tags [%s]", strings.Join(missing, " "))
	case fVIPNetwork:
		for _, v := range b.b.VIPs {
			in := false
			for _, p := range dv.d.VIPNetworks {
				if p.Contains(v.Address) {
					in = true
				}
			}
			if !in {
				nets := make([]string, len(dv.d.VIPNetworks))
				for i, p := range dv.d.VIPNetworks {
					nets[i] = p.String()
				}
				return fmt.Sprintf("vip %s outside vipNetworks [%s]", v.Address, strings.Join(nets, " "))
			}
		}
	}
	return "rejected"
}

// firstFailure returns the first filter, in filterOrder, that d fails for u,
// and false when d passes every enabled filter.
func (s *sched) firstFailure(u *unit, d int32, primary int32) (filterID, bool) {
	for f := filterID(0); f < numFilters; f++ {
		if s.enabled[f] && !s.pass(f, u, d, primary) {
			return f, true
		}
	}
	return 0, false
}

// fits reports whether d passes every enabled filter for u.
func (s *sched) fits(u *unit, d int32, primary int32) bool {
	_, failed := s.firstFailure(u, d, primary)
	return !failed
}

// staticOK reports whether devices of class c pass every enabled static
// filter for every member of u.
func (s *sched) staticOK(u *unit, c int32) bool {
	rep := s.classes[c].devs[0]
	for _, f := range [...]filterID{fZone, fTags, fVIPNetwork} {
		if !s.enabled[f] {
			continue
		}
		for _, b := range u.ms {
			if !s.passBal(f, b, rep) {
				return false
			}
		}
	}
	return true
}
