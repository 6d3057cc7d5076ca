package reconcile

import (
	"net/netip"
	"slices"
	"sort"
)

// HA VIP states of an HAVIPSummary.
const (
	HAHeld       = "held"        // exactly one device holds the address
	HANone       = "none"        // no device holds it: the VIP is down
	HASplitBrain = "split-brain" // more than one device holds it
	HAUnknown    = "unknown"     // no reachable device holds it, and a device of the pair is unreachable
)

// HAVIPSummary is one HA VIP address across the fleet: who should carry
// it and who holds it now.
type HAVIPSummary struct {
	VIP       string   `json:"vip"`
	Balancers []string `json:"balancers"`
	Primary   string   `json:"primary,omitempty"` // from the compile
	Standby   string   `json:"standby,omitempty"`
	Holders   []Holder `json:"holders"`               // reachable devices that have the address, sorted
	Unknown   []string `json:"unreachable,omitempty"` // devices of the pair that could not be read
	State     string   `json:"state"`                 // one of the HA* constants
}

// Holder is a device that holds an HA VIP, with its role for that VIP.
type Holder struct {
	Device string `json:"device"`
	Role   string `json:"role"` // primary | standby | none (not in the VIP's pair)
}

// SummarizeHAVIPs gathers the HA VIPs of st by address, sorted.
func SummarizeHAVIPs(st []DeviceStatus) []HAVIPSummary {
	byAddr := map[netip.Addr]*HAVIPSummary{}
	get := func(s string) *HAVIPSummary {
		a := netip.MustParseAddr(s)
		if byAddr[a] == nil {
			byAddr[a] = &HAVIPSummary{VIP: a.String(), Balancers: []string{}, Holders: []Holder{}}
		}
		return byAddr[a]
	}
	for _, d := range st {
		for _, v := range d.HAVIPs {
			s := get(v.VIP)
			if v.Role != RoleNone && !slices.Contains(s.Balancers, v.Balancer) {
				s.Balancers = append(s.Balancers, v.Balancer)
			}
			switch v.Role {
			case "primary":
				s.Primary = d.Device
			case "standby":
				s.Standby = d.Device
			}
			if !d.Reachable {
				if v.Role != RoleNone && !slices.Contains(s.Unknown, d.Device) {
					s.Unknown = append(s.Unknown, d.Device)
				}
				continue
			}
			if v.Held && !holds(s.Holders, d.Device) {
				s.Holders = append(s.Holders, Holder{d.Device, v.Role})
			}
		}
	}
	out := make([]HAVIPSummary, 0, len(byAddr))
	for _, s := range byAddr {
		sort.Strings(s.Balancers)
		sort.Strings(s.Unknown)
		sort.Slice(s.Holders, func(i, j int) bool { return s.Holders[i].Device < s.Holders[j].Device })
		switch {
		case len(s.Holders) > 1:
			s.State = HASplitBrain
		case len(s.Holders) == 1:
			s.State = HAHeld
		case len(s.Unknown) > 0:
			s.State = HAUnknown
		default:
			s.State = HANone
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		return netip.MustParseAddr(out[i].VIP).Less(netip.MustParseAddr(out[j].VIP))
	})
	return out
}

func holds(hs []Holder, dev string) bool {
	return slices.ContainsFunc(hs, func(h Holder) bool { return h.Device == dev })
}

// StatusCounts counts the devices of st by Sync state.
func StatusCounts(st []DeviceStatus) map[string]int {
	n := map[string]int{}
	for _, d := range st {
		n[d.Sync]++
	}
	return n
}
