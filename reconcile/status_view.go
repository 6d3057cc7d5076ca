package reconcile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
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

// Line is the human line of s, e.g.
// "203.0.113.10 (shop-web): held by lb-a1 (primary)".
func (s HAVIPSummary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): ", s.VIP, strings.Join(s.Balancers, ", "))
	var hs []string
	for _, h := range s.Holders {
		role := h.Role
		if role == RoleNone {
			role = "not in its pair"
		}
		hs = append(hs, fmt.Sprintf("%s (%s)", h.Device, role))
	}
	switch {
	case len(hs) == 2:
		b.WriteString("held by BOTH (split brain): " + strings.Join(hs, ", "))
	case len(hs) > 2:
		fmt.Fprintf(&b, "held by %d devices (split brain): %s", len(hs), strings.Join(hs, ", "))
	case len(hs) == 1:
		b.WriteString("held by " + hs[0])
	default:
		b.WriteString("held by NONE")
		if len(s.Unknown) > 0 {
			b.WriteString(" of the reachable devices")
		}
	}
	if len(s.Unknown) > 0 {
		fmt.Fprintf(&b, "; %s unreachable", strings.Join(s.Unknown, ", "))
	}
	return b.String()
}

// ShortRevision is a revision for a table: a Git hash cut to 12 hex
// digits, keeping a "-dirty" suffix; "-" when empty.
func ShortRevision(rev string) string {
	base, dirty := strings.CutSuffix(rev, "-dirty")
	if len(base) > 12 && isHex(base) {
		base = base[:12]
	}
	if dirty {
		base += "-dirty"
	}
	return orDash(base)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// StatusCounts counts the devices of st by Sync state.
func StatusCounts(st []DeviceStatus) map[string]int {
	n := map[string]int{}
	for _, d := range st {
		n[d.Sync]++
	}
	return n
}

// statusSummary is "3 devices: 1 in-sync, 1 behind, 1 unreachable".
func statusSummary(st []DeviceStatus) string {
	n := StatusCounts(st)
	var parts []string
	for _, s := range []string{SyncInSync, SyncBehind, SyncDrifted, SyncNeverApplied, SyncUnreachable, SyncError} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	noun := "devices"
	if len(st) == 1 {
		noun = "device"
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d %s", len(st), noun)
	}
	return fmt.Sprintf("%d %s: %s", len(st), noun, strings.Join(parts, ", "))
}

// WriteStatusText writes the human view of st: a table (device, revision,
// applied at, lbc version, state), the reasons and errors per device, the
// HA VIPs and who holds each, and a count line. Color adds ANSI colours.
func WriteStatusText(w io.Writer, st []DeviceStatus, color bool) error {
	c := func(code, s string) string {
		if !color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tREVISION\tAPPLIED AT\tLBC VERSION\tSTATE")
	for _, d := range st {
		// The state is the last column: its colour codes do not upset alignment.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Device, ShortRevision(d.Revision), orDash(d.AppliedAt),
			orDash(d.LBCVersion), c(syncColor(d.Sync), d.Sync))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := true
	for _, d := range st {
		lines := d.Notes
		if d.Error != "" {
			lines = append([]string{d.Error}, lines...)
		}
		for _, l := range lines {
			if first {
				bw.WriteString("\n")
				first = false
			}
			fmt.Fprintf(bw, "%s %s: %s\n", c(syncColor(d.Sync), "!"), d.Device, l)
		}
	}
	if ha := SummarizeHAVIPs(st); len(ha) > 0 {
		bw.WriteString("\nHA VIPs:\n")
		for _, s := range ha {
			code := ""
			switch {
			case s.State != HAHeld:
				code = ansiRed
			case s.Holders[0].Role != "primary":
				code = ansiYellow // failed over, or held outside its pair
			}
			fmt.Fprintf(bw, "  %s\n", c(code, s.Line()))
		}
	}
	fmt.Fprintf(bw, "\n%s.\n", statusSummary(st))
	return bw.Flush()
}

func syncColor(s string) string {
	switch s {
	case SyncInSync:
		return ansiGreen
	case SyncBehind, SyncNeverApplied:
		return ansiYellow
	default:
		return ansiRed
	}
}

// jsonStatus is one device line of the JSON view.
type jsonStatus struct {
	Type string `json:"type"` // "device"
	DeviceStatus
}

// jsonHAVIP is one HA VIP line of the JSON view.
type jsonHAVIP struct {
	Type string `json:"type"` // "ha-vip"
	HAVIPSummary
}

// jsonStatusSummary is the last line of the JSON view.
type jsonStatusSummary struct {
	Type    string         `json:"type"` // "summary"
	Devices int            `json:"devices"`
	Sync    map[string]int `json:"sync"` // devices per Sync state
}

// WriteStatusJSON writes one JSON object a line: one per device (type
// "device", the DeviceStatus fields), one per HA VIP (type "ha-vip", the
// HAVIPSummary fields), then one summary (type "summary").
func WriteStatusJSON(w io.Writer, st []DeviceStatus) error {
	enc := json.NewEncoder(w)
	for _, d := range st {
		if err := enc.Encode(jsonStatus{"device", d}); err != nil {
			return err
		}
	}
	for _, s := range SummarizeHAVIPs(st) {
		if err := enc.Encode(jsonHAVIP{"ha-vip", s}); err != nil {
			return err
		}
	}
	return enc.Encode(jsonStatusSummary{Type: "summary", Devices: len(st), Sync: StatusCounts(st)})
}
