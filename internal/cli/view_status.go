package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"lbc/reconcile"
)

// The views of `lbc status`: text (writeStatusText) and --json
// (writeStatusJSON). A host's state.json fields are host-originated text:
// the text view escapes them (term.go).

// writeStatusText writes the human view of st: a table (device, revision,
// applied at, lbc version, state), the reasons and errors per device, the
// HA VIPs and who holds each, and a count line. color adds ANSI colours.
func writeStatusText(w io.Writer, st []reconcile.DeviceStatus, color bool) error {
	c := func(code, s string) string { return paint(color, code, s) }
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tREVISION\tAPPLIED AT\tLBC VERSION\tSTATE")
	for _, d := range st {
		// The state is the last column: its colour codes do not upset alignment.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termLine(d.Device), termLine(shortRevision(d.Revision)), termLine(orDash(d.AppliedAt)),
			termLine(orDash(d.LBCVersion)), c(syncColor(d.Sync), termLine(d.Sync)))
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
			fmt.Fprintf(bw, "%s %s: %s\n", c(syncColor(d.Sync), "!"), termLine(d.Device), indentText(l, "    "))
		}
	}
	for _, d := range st {
		for _, l := range certLines(d.Certificates) {
			fmt.Fprintf(bw, "  %s: %s\n", termLine(d.Device), l)
		}
	}
	if ha := reconcile.SummarizeHAVIPs(st); len(ha) > 0 {
		bw.WriteString("\nHA VIPs:\n")
		for _, s := range ha {
			code := ""
			switch {
			case s.State != reconcile.HAHeld:
				code = ansiRed
			case s.Holders[0].Role != "primary":
				code = ansiYellow // failed over, or held outside its pair
			}
			fmt.Fprintf(bw, "  %s\n", c(code, termLine(haVIPLine(s))))
		}
	}
	fmt.Fprintf(bw, "\n%s.\n", statusSummary(st))
	return bw.Flush()
}

// haVIPLine is the human line of s, e.g.
// "203.0.113.10 (shop-web): held by lb-a1 (primary)".
func haVIPLine(s reconcile.HAVIPSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): ", s.VIP, strings.Join(s.Balancers, ", "))
	var hs []string
	for _, h := range s.Holders {
		role := h.Role
		if role == reconcile.RoleNone {
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

// shortRevision is a revision for a table: a Git hash cut to 12 hex
// digits, keeping a "-dirty" suffix; "-" when empty.
func shortRevision(rev string) string {
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

// statusSummary is "3 devices: 1 in-sync, 1 behind, 1 unreachable".
func statusSummary(st []reconcile.DeviceStatus) string {
	n := reconcile.StatusCounts(st)
	var parts []string
	for _, s := range []string{reconcile.SyncInSync, reconcile.SyncBehind, reconcile.SyncDrifted,
		reconcile.SyncNeverApplied, reconcile.SyncUnreachable, reconcile.SyncError} {
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

func syncColor(s string) string {
	switch s {
	case reconcile.SyncInSync:
		return ansiGreen
	case reconcile.SyncBehind, reconcile.SyncNeverApplied:
		return ansiYellow
	default:
		return ansiRed
	}
}

// statusDeviceRecord is one device line of status --json.
type statusDeviceRecord struct {
	Type string `json:"type"` // "device"
	reconcile.DeviceStatus
}

// statusHAVIPRecord is one HA VIP line of status --json.
type statusHAVIPRecord struct {
	Type string `json:"type"` // "ha-vip"
	reconcile.HAVIPSummary
}

// statusSummaryRecord is the last line of status --json.
type statusSummaryRecord struct {
	Type    string         `json:"type"` // "summary"
	Devices int            `json:"devices"`
	Sync    map[string]int `json:"sync"` // devices per Sync state
}

// writeStatusJSON writes one JSON object a line: one per device (type
// "device", the DeviceStatus fields), one per HA VIP (type "ha-vip", the
// HAVIPSummary fields), then one summary (type "summary").
func writeStatusJSON(w io.Writer, st []reconcile.DeviceStatus) error {
	enc := json.NewEncoder(w)
	for _, d := range st {
		if err := enc.Encode(statusDeviceRecord{"device", d}); err != nil {
			return err
		}
	}
	for _, s := range reconcile.SummarizeHAVIPs(st) {
		if err := enc.Encode(statusHAVIPRecord{"ha-vip", s}); err != nil {
			return err
		}
	}
	return enc.Encode(statusSummaryRecord{Type: "summary", Devices: len(st), Sync: reconcile.StatusCounts(st)})
}
