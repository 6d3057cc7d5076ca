package reconcile

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the plan as a pull-request comment: the summary,
// then per changed or failed device a <details> block with a diff.
func WriteMarkdown(w io.Writer, p *Plan) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "### lbc plan for `%s`\n\n**%s**\n", orDash(p.Revision), p.Summary())
	var same []string
	for _, d := range p.Devices {
		switch d.Status {
		case StatusUnchanged:
			same = append(same, "`"+d.Device+"`")
			continue
		case StatusChanges:
			fmt.Fprintf(bw, "\n<details><summary><code>%s</code> (%s): changes</summary>\n\n", htmlEscape(d.Device), htmlEscape(d.Address))
		default:
			fmt.Fprintf(bw, "\n<details open><summary><code>%s</code> (%s): %s</summary>\n\n", htmlEscape(d.Device), htmlEscape(d.Address), d.Status)
			fmt.Fprintf(bw, "%s\n", fenced("text", d.Error))
		}
		var body strings.Builder
		body.WriteString(d.ConfigDiff)
		body.WriteString(d.KeepalivedDiff)
		for _, v := range d.VIPsAdd {
			fmt.Fprintf(&body, "+vip %s\n", v)
		}
		for _, v := range d.VIPsRemove {
			fmt.Fprintf(&body, "-vip %s\n", v)
		}
		if body.Len() > 0 {
			fmt.Fprintf(bw, "%s\n", fenced("diff", body.String()))
		}
		for _, n := range d.Notes {
			fmt.Fprintf(bw, "- %s\n", n)
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
			fmt.Fprintf(bw, "- %s\n", htmlEscape(n))
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
