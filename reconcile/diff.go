package reconcile

import (
	"fmt"
	"strings"
	"time"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// The bounds of the diff work: a host can return any file, and a line diff
// costs time in the product of the files' sizes and the edit's. A file of
// more than MaxDiffLines lines (either side) is not diffed (the line diff
// maps each distinct line to one rune: beyond about 1.1 million it cannot),
// nor is a pair whose diff takes longer than DiffBudget; both show as
// "files differ: N → M lines" instead.
const (
	MaxDiffLines = 200_000
	DiffBudget   = 5 * time.Second
)

// diffBudget is DiffBudget; tests shorten it.
var diffBudget = DiffBudget

// UnifiedDiff returns a unified diff (context 3) from a to b, with the
// given file labels, or "" when a and b are equal. A file that does not
// end in a newline gets the usual "\ No newline at end of file" marker.
// Files too large to diff within the bounds above give the labels and one
// line "files differ: N → M lines (...)".
func UnifiedDiff(fromLabel, toLabel string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", fromLabel, toLabel)
	lines, why := diffLines(string(a), string(b))
	if why != "" {
		fmt.Fprintf(&out, "files differ: %d → %d lines (%s)\n", countLines(a), countLines(b), why)
		return out.String()
	}
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

// countLines is the number of lines of b (a last line without a newline
// counts).
func countLines(b []byte) int {
	n := strings.Count(string(b), "\n")
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// diffLines returns the line diff from a to b, or why it was not made
// (too many lines, or over the time budget).
func diffLines(a, b string) ([]diffLine, string) {
	if na, nb := countLines([]byte(a)), countLines([]byte(b)); na > MaxDiffLines || nb > MaxDiffLines {
		return nil, fmt.Sprintf("not diffed: more than %d lines", MaxDiffLines)
	}
	dmp := diffmatchpatch.New()
	// A diff that runs out of time is cut short (diffmatchpatch then
	// returns a coarse one): it is not shown, so what is shown never
	// depends on the machine's load.
	dmp.DiffTimeout = diffBudget
	start := time.Now()
	ca, cb, arr := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffMain(ca, cb, false)
	if time.Since(start) >= diffBudget {
		return nil, fmt.Sprintf("not diffed: the diff took more than %s", diffBudget)
	}
	diffs = dmp.DiffCharsToLines(diffs, arr)
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
	return out, ""
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
