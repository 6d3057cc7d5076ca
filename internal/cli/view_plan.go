package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"lbc/reconcile"
	"lbc/reconcile/classify"
)

// The views of a plan: text (writePlanText, also what apply and watch
// print before they apply), --json (writePlanJSON) and --markdown
// (writePlanMarkdown, a pull-request comment). Each renders the same
// reconcile.Plan; host-originated text is escaped (term.go) in all but JSON.

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// paint returns s in colour code when color is set (and code is not empty).
func paint(color bool, code, s string) string {
	if !color || code == "" {
		return s
	}
	return code + s + ansiReset
}

// planSummary is the one-line count of a plan: "N to change, M unchanged,
// K unreachable" (and ", E failed" when planning failed on some device).
func planSummary(p *reconcile.Plan) string {
	c, u, un, f := p.Counts()
	s := fmt.Sprintf("%d to change, %d unchanged, %d unreachable", c, u, un)
	if f > 0 {
		s += fmt.Sprintf(", %d failed", f)
	}
	return s
}

// writePlanText writes the human view of p: per device a line with a
// marker (~ change, = unchanged, ! unreachable or error), the diffs with
// +/- lines, the VIPs to add (+) and remove (-), then the summary line.
// color adds ANSI colours (the caller decides from NO_COLOR and whether
// the output is a terminal).
func writePlanText(w io.Writer, p *reconcile.Plan, color bool) error {
	bw := bufio.NewWriter(w)
	for i := range p.Devices {
		writeDevicePlanText(bw, &p.Devices[i], color)
	}
	writePlanFooter(bw, p)
	return bw.Flush()
}

// writeDevicePlanText writes one device's part of writePlanText.
func writeDevicePlanText(bw *bufio.Writer, d *reconcile.DevicePlan, color bool) {
	c := func(code, s string) string { return paint(color, code, s) }
	head := fmt.Sprintf("%s (%s)", termLine(d.Device), termLine(d.Address))
	switch d.Status {
	case reconcile.StatusChanges:
		fmt.Fprintf(bw, "%s %s: changes\n", c(ansiYellow, "~"), c(ansiBold, head))
	case reconcile.StatusUnchanged:
		fmt.Fprintf(bw, "= %s: no changes\n", head)
	default:
		fmt.Fprintf(bw, "%s %s: %s: %s\n", c(ansiRed, "!"), head, d.Status, indentText(d.Error, "    "))
	}
	for _, l := range changeLines(d.Change) {
		fmt.Fprintf(bw, "  %s\n", l)
	}
	for _, l := range certLines(d.Certificates) {
		fmt.Fprintf(bw, "  %s\n", l)
	}
	for _, diff := range []string{d.ConfigDiff, d.KeepalivedDiff} {
		for _, l := range splitLines(diff) {
			code := ""
			switch {
			case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
				code = ansiBold
			case strings.HasPrefix(l, "@@"):
				code = ansiCyan
			case strings.HasPrefix(l, "+"):
				code = ansiGreen
			case strings.HasPrefix(l, "-"):
				code = ansiRed
			}
			// A diff line is the host's own text: its tabs stay.
			fmt.Fprintf(bw, "    %s\n", c(code, termText(l)))
		}
	}
	for _, f := range d.FileChanges {
		l := termLine(f.String())
		code := map[byte]string{'+': ansiGreen, '-': ansiRed, '~': ansiYellow}[l[0]]
		fmt.Fprintf(bw, "  %s %s\n", c(code, l[:1]), l[1:])
	}
	for _, r := range d.Routing {
		l := termLine(r)
		if l == "" {
			continue
		}
		code := map[byte]string{'+': ansiGreen, '-': ansiRed, '~': ansiYellow}[l[0]]
		fmt.Fprintf(bw, "  %s %s\n", c(code, l[:1]), l[1:])
	}
	for _, v := range d.VIPsAdd {
		fmt.Fprintf(bw, "  %s vip %s\n", c(ansiGreen, "+"), termLine(v))
	}
	for _, v := range d.VIPsRemove {
		fmt.Fprintf(bw, "  %s vip %s\n", c(ansiRed, "-"), termLine(v))
	}
	for _, n := range d.Notes {
		fmt.Fprintf(bw, "  note: %s\n", termLine(n))
	}
}

// writePlanFooter writes the end of writePlanText: the plan's notes and
// its summary line.
func writePlanFooter(bw *bufio.Writer, p *reconcile.Plan) {
	for _, n := range p.Notes {
		fmt.Fprintf(bw, "note: %s\n", termLine(n))
	}
	fmt.Fprintf(bw, "\nPlan (revision %s): %s.\n", termLine(orNone(p.Revision)), planSummary(p))
}

// changeLines describes a device's haproxy.cfg change class, escaped:
// "haproxy.cfg: needs a reload: REASON", or "haproxy.cfg: runtime, ..."
// and one indented line per runtime operation (apply sends them on the
// stats socket, without a reload, unless --reload).
func changeLines(r *classify.Result) []string {
	switch {
	case r == nil || r.Class == classify.None:
		return nil
	case r.Class == classify.Reload:
		return []string{"haproxy.cfg: needs a reload: " + termLine(r.Reason)}
	case len(r.Ops) == 0 && len(r.Maps) == 0:
		return []string{"haproxy.cfg: runtime, no runtime operation (the file alone changes): no reload"}
	}
	out := []string{fmt.Sprintf("haproxy.cfg: runtime, %d runtime operation(s), no reload:", len(r.Ops)+len(r.Maps))}
	for _, o := range r.Ops {
		out = append(out, "  "+termLine(o.String()))
	}
	for _, m := range r.Maps {
		out = append(out, "  "+termLine(m.String()))
	}
	return out
}

// indentText escapes s (keeping its layout) and indents its lines after
// the first.
func indentText(s, indent string) string {
	return strings.ReplaceAll(termText(strings.TrimSuffix(s, "\n")), "\n", "\n"+indent)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// planDeviceRecord is one device line of plan --json: the device plan
// without the files it would write.
type planDeviceRecord struct {
	Type           string                 `json:"type"` // "device"
	Device         string                 `json:"device"`
	Address        string                 `json:"address"`
	Status         reconcile.Status       `json:"status"`
	ConfigDiff     string                 `json:"configDiff,omitempty"`
	KeepalivedDiff string                 `json:"keepalivedDiff,omitempty"`
	Change         *classify.Result       `json:"change,omitempty"`
	VIPsAdd        []string               `json:"vipsAdd,omitempty"`
	VIPsRemove     []string               `json:"vipsRemove,omitempty"`
	FileChanges    []reconcile.FileChange `json:"fileChanges,omitempty"`
	Routing        []string               `json:"routing,omitempty"`
	Certificates   []reconcile.CertInfo   `json:"certificates,omitempty"`
	Notes          []string               `json:"notes,omitempty"`
	LiveRevision   string                 `json:"liveRevision,omitempty"`
	Fingerprints   map[string]string      `json:"fingerprints,omitempty"`
	Error          string                 `json:"error,omitempty"`
}

// planSummaryRecord is the last line of plan --json.
type planSummaryRecord struct {
	Type        string `json:"type"` // "summary"
	Revision    string `json:"revision"`
	Changes     int    `json:"changes"`
	Unchanged   int    `json:"unchanged"`
	Unreachable int    `json:"unreachable"`
	Failed      int    `json:"failed"`
	// Notes are the plan's own notes (devices that left the spec).
	Notes []string `json:"notes,omitempty"`
}

// writePlanJSON writes one JSON object a line: one per device (type
// "device"), then one summary (type "summary").
func writePlanJSON(w io.Writer, p *reconcile.Plan) error {
	enc := json.NewEncoder(w)
	for _, d := range p.Devices {
		if err := enc.Encode(planDeviceRecord{
			Type: "device", Device: d.Device, Address: d.Address, Status: d.Status,
			ConfigDiff: d.ConfigDiff, KeepalivedDiff: d.KeepalivedDiff,
			Change: d.Change, VIPsAdd: d.VIPsAdd, VIPsRemove: d.VIPsRemove, FileChanges: d.FileChanges, Routing: d.Routing, Certificates: d.Certificates, Notes: d.Notes,
			LiveRevision: d.LiveRevision, Fingerprints: d.Fingerprints, Error: d.Error,
		}); err != nil {
			return err
		}
	}
	c, u, un, f := p.Counts()
	return enc.Encode(planSummaryRecord{Type: "summary", Revision: p.Revision, Changes: c, Unchanged: u, Unreachable: un, Failed: f, Notes: p.Notes})
}

// writePlanMarkdown writes the plan as a pull-request comment: the
// summary, then per changed or failed device a <details> block with a diff.
func writePlanMarkdown(w io.Writer, p *reconcile.Plan) error {
	bw := bufio.NewWriter(w)
	md := func(s string) string { return htmlEscape(termLine(s)) }
	fmt.Fprintf(bw, "### lbc plan for `%s`\n\n**%s**\n", md(orDash(p.Revision)), planSummary(p))
	var same []string
	for _, d := range p.Devices {
		switch d.Status {
		case reconcile.StatusUnchanged:
			same = append(same, "`"+md(d.Device)+"`")
			continue
		case reconcile.StatusChanges:
			fmt.Fprintf(bw, "\n<details><summary><code>%s</code> (%s): changes</summary>\n\n", md(d.Device), md(d.Address))
		default:
			fmt.Fprintf(bw, "\n<details open><summary><code>%s</code> (%s): %s</summary>\n\n", md(d.Device), md(d.Address), md(string(d.Status)))
			fmt.Fprintf(bw, "%s\n", fenced("text", termText(d.Error)))
		}
		for i, l := range changeLines(d.Change) {
			if i == 0 {
				fmt.Fprintf(bw, "%s\n", md(l))
			} else {
				fmt.Fprintf(bw, "- `%s`\n", md(strings.TrimSpace(l)))
			}
		}
		if d.Change != nil {
			bw.WriteString("\n")
		}
		var body strings.Builder
		body.WriteString(termText(d.ConfigDiff))
		body.WriteString(termText(d.KeepalivedDiff))
		for _, f := range d.FileChanges {
			fmt.Fprintf(&body, "%s\n", termLine(f.String()))
		}
		for _, r := range d.Routing {
			fmt.Fprintf(&body, "%s\n", termLine(r))
		}
		for _, v := range d.VIPsAdd {
			fmt.Fprintf(&body, "+vip %s\n", termLine(v))
		}
		for _, v := range d.VIPsRemove {
			fmt.Fprintf(&body, "-vip %s\n", termLine(v))
		}
		if body.Len() > 0 {
			fmt.Fprintf(bw, "%s\n", fenced("diff", body.String()))
		}
		for _, l := range certLines(d.Certificates) {
			fmt.Fprintf(bw, "- %s\n", htmlEscape(l))
		}
		for _, n := range d.Notes {
			fmt.Fprintf(bw, "- %s\n", md(n))
		}
		if len(d.Notes) > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString("</details>\n")
	}
	if len(same) > 0 {
		fmt.Fprintf(bw, "\nUnchanged: %s\n", strings.Join(same, ", "))
	}
	if len(p.Notes) > 0 {
		bw.WriteString("\n")
		for _, n := range p.Notes {
			fmt.Fprintf(bw, "- %s\n", md(n))
		}
	}
	return bw.Flush()
}

// fenced wraps s in a code fence longer than any backtick run inside it.
func fenced(lang, s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return fence + lang + "\n" + s + fence + "\n"
}

var htmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
