package reconcile

import (
	"fmt"
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// UnifiedDiff returns a unified diff (context 3) from a to b, with the
// given file labels, or "" when a and b are equal. A file that does not
// end in a newline gets the usual "\ No newline at end of file" marker.
func UnifiedDiff(fromLabel, toLabel string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	lines := diffLines(string(a), string(b))
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", fromLabel, toLabel)
	for _, h := range hunks(lines) {
		out.WriteString(h)
	}
	return out.String()
}

// diffLine is one line of a line diff: op is ' ', '-' or '+'.
type diffLine struct {
	op   byte
	text string // without its newline
	eol  bool   // the line ended in a newline
}

func diffLines(a, b string) []diffLine {
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0 // deterministic: never cut a diff short under load
	ca, cb, arr := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(ca, cb, false), arr)
	var out []diffLine
	for _, d := range diffs {
		op := byte(' ')
		switch d.Type {
		case diffmatchpatch.DiffDelete:
			op = '-'
		case diffmatchpatch.DiffInsert:
			op = '+'
		}
		text := d.Text
		for text != "" {
			i := strings.IndexByte(text, '\n')
			if i < 0 {
				out = append(out, diffLine{op: op, text: text})
				break
			}
			out = append(out, diffLine{op: op, text: text[:i], eol: true})
			text = text[i+1:]
		}
	}
	return out
}

// hunks groups a line diff into unified-diff hunks with diffContext lines
// of context, each starting with its @@ -a,b +c,d @@ header.
func hunks(lines []diffLine) []string {
	var out []string
	i := 0
	for {
		// Find the next change.
		for i < len(lines) && lines[i].op == ' ' {
			i++
		}
		if i >= len(lines) {
			return out
		}
		start := max(i-diffContext, 0)
		// Extend while the gap of unchanged lines to the next change is
		// at most 2*context.
		end := i
		for {
			for end < len(lines) && lines[end].op != ' ' {
				end++
			}
			gap := end
			for gap < len(lines) && lines[gap].op == ' ' {
				gap++
			}
			if gap < len(lines) && gap-end <= 2*diffContext {
				end = gap
				continue
			}
			end = min(end+diffContext, len(lines))
			break
		}
		// Line numbers: count lines of a and b before start.
		aLine, bLine := 1, 1
		for _, l := range lines[:start] {
			if l.op != '+' {
				aLine++
			}
			if l.op != '-' {
				bLine++
			}
		}
		var aN, bN int
		var body strings.Builder
		for _, l := range lines[start:end] {
			if l.op != '+' {
				aN++
			}
			if l.op != '-' {
				bN++
			}
			body.WriteByte(l.op)
			body.WriteString(l.text)
			body.WriteByte('\n')
			if !l.eol {
				body.WriteString("\\ No newline at end of file\n")
			}
		}
		out = append(out, fmt.Sprintf("@@ -%s +%s @@\n", hunkRange(aLine, aN), hunkRange(bLine, bN))+body.String())
		i = end
	}
}

// hunkRange formats a hunk range as diff(1) does: an empty range names
// the line before it.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start-1)
	case 1:
		return fmt.Sprintf("%d", start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
