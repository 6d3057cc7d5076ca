package cli

import (
	"bytes"
	"testing"
)

func TestTermEscape(t *testing.T) {
	for _, c := range []struct{ in, line, text string }{
		{"plain text, ünïcode ✓", "plain text, ünïcode ✓", "plain text, ünïcode ✓"},
		{"a\x1b]0;pwned\x07b", `a\x1b]0;pwned\x07b`, `a\x1b]0;pwned\x07b`},
		{"red \x1b[31mX\x1b[0m", `red \x1b[31mX\x1b[0m`, `red \x1b[31mX\x1b[0m`},
		{"tab\there\nnext", `tab\x09here\x0anext`, "tab\there\nnext"},
		{"cr\rover", `cr\x0dover`, `cr\x0dover`},
		{"del\x7f nul\x00", `del\x7f nul\x00`, `del\x7f nul\x00`},
		{"c1 \u009b2J", `c1 \u009b2J`, `c1 \u009b2J`},
		{"raw \x9b2J \xff", `raw \x9b2J \xff`, `raw \x9b2J \xff`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`, `bidi \u202egnp.exe`},
	} {
		if got := termLine(c.in); got != c.line {
			t.Errorf("termLine(%q) = %q, want %q", c.in, got, c.line)
		}
		if got := termText(c.in); got != c.text {
			t.Errorf("termText(%q) = %q, want %q", c.in, got, c.text)
		}
	}
	var b bytes.Buffer
	n, err := termWriter{&b}.Write([]byte("lbc plan: locked by \x1b[2Jevil\n"))
	if err != nil || n != 29 || b.String() != "lbc plan: locked by \\x1b[2Jevil\n" {
		t.Errorf("termWriter: %d %v %q", n, err, b.String())
	}
}
