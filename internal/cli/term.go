package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Text that lbc did not write itself (what a host returns: live config
// lines, state.json fields, the lock owner, stderr; and file names) reaches
// the operator's terminal only through these functions, which show every
// character that could drive the terminal as an escape: C0 controls and
// DEL as \x1b, C1 controls and bidirectional overrides as \u009b, bytes
// that are not UTF-8 as \xff. The JSON views are left alone: JSON escapes
// control characters itself.

// termLine escapes s for one line of output, tabs and newlines included.
func termLine(s string) string { return termEscape(s, false) }

// termText escapes s but keeps its tabs and newlines: multi-line text such
// as an error with a host's stderr, or the lines of a diff.
func termText(s string) string { return termEscape(s, true) }

func termEscape(s string, keepLayout bool) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size, keepLayout) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafeRune(r, size, keepLayout):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1, r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether a rune (of size bytes, as DecodeRune gave it)
// must be escaped before it reaches a terminal.
func unsafeRune(r rune, size int, keepLayout bool) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true // not UTF-8: a lone 0x9b is CSI to some terminals
	case r == '\t' || r == '\n':
		return !keepLayout
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r < 0xa0:
		return true // C1 controls (U+009B is CSI)
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f:
		return true // bidirectional overrides, which reorder what is shown
	}
	return false
}

// termWriter escapes everything written to it as termText does. The CLI's
// stderr goes through one: errors, warnings, diagnostics and progress carry
// host-originated text and file names, and lbc writes no colour there.
type termWriter struct{ w io.Writer }

func (t termWriter) Write(p []byte) (int, error) {
	s := termText(string(p))
	if _, err := io.WriteString(t.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
