package reconcile

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ViewOptions tune the human view. The caller decides Color from NO_COLOR
// and whether the output is a terminal.
type ViewOptions struct {
	Color bool
}

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// Summary is the one-line count of a plan: "N to change, M unchanged, K
// unreachable" (and ", E failed" when planning failed on some device).
func (p *Plan) Summary() string {
	c, u, un, f := p.Counts()
	s := fmt.Sprintf("%d to change, %d unchanged, %d unreachable", c, u, un)
	if f > 0 {
		s += fmt.Sprintf(", %d failed", f)
	}
	return s
}

// WriteText writes the human view of p: per device a line with a marker
// (~ change, = unchanged, ! unreachable or error), the diffs with +/- lines,
// the VIPs to add (+) and remove (-), then the summary line.
func WriteText(w io.Writer, p *Plan, o ViewOptions) error {
	bw := bufio.NewWriter(w)
	c := func(code, s string) string {
		if !o.Color {
			return s
		}
		return code + s + ansiReset
	}
	for _, d := range p.Devices {
		head := fmt.Sprintf("%s (%s)", d.Device, d.Address)
		switch d.Status {
		case StatusChanges:
			fmt.Fprintf(bw, "%s %s: changes\n", c(ansiYellow, "~"), c(ansiBold, head))
		case StatusUnchanged:
			fmt.Fprintf(bw, "= %s: no changes\n", head)
		default:
			fmt.Fprintf(bw, "%s %s: %s: %s\n", c(ansiRed, "!"), head, d.Status, d.Error)
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
				if code != "" {
					l = c(code, l)
				}
				fmt.Fprintf(bw, "    %s\n", l)
			}
		}
		for _, v := range d.VIPsAdd {
			fmt.Fprintf(bw, "  %s vip %s\n", c(ansiGreen, "+"), v)
		}
		for _, v := range d.VIPsRemove {
			fmt.Fprintf(bw, "  %s vip %s\n", c(ansiRed, "-"), v)
		}
		for _, n := range d.Notes {
			fmt.Fprintf(bw, "  note: %s\n", n)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	rev := p.Revision
	if rev == "" {
		rev = "none" // as compile and apply say it
	}
	fmt.Fprintf(bw, "\nPlan (revision %s): %s.\n", rev, p.Summary())
	return bw.Flush()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
