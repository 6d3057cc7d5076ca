package shquote

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"/etc/haproxy/haproxy.cfg", "/etc/haproxy/haproxy.cfg"},
		{"a-b_c.d:e@f%g+h,i", "a-b_c.d:e@f%g+h,i"},
		{"--opt=x", "--opt=x"},
		{"FOO=bar", "'FOO=bar'"},
		{"_x1=y", "'_x1=y'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"$(id)", "'$(id)'"},
		{"`id`", "'`id`'"},
		{"~root", "'~root'"},
		{"*", "'*'"},
		{"a\nb", "'a\nb'"},
		{"é", "'é'"},
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestJoin(t *testing.T) {
	got := Join("flock", "-n", "/var/lib/lbc/lock dir", "it's")
	want := `flock -n '/var/lib/lbc/lock dir' 'it'\''s'`
	if got != want {
		t.Errorf("Join = %q, want %q", got, want)
	}
	if got := Join(); got != "" {
		t.Errorf("Join() = %q, want empty", got)
	}
}

// A quoted NAME=value in command position must not become an assignment.
func TestQuoteAssignment(t *testing.T) {
	out := runSh(t, Quote("LBC_X=1")+" 2>/dev/null; echo ${LBC_X-unset}")
	if out != "unset\n" {
		t.Errorf("quoted assignment was taken as one: printed %q", out)
	}
}

func TestNUL(t *testing.T) {
	if _, err := QuoteArg("a\x00b"); !errors.Is(err, ErrNUL) {
		t.Errorf("QuoteArg with NUL: err = %v, want ErrNUL", err)
	}
	if _, err := JoinArgs("ok", "a\x00"); !errors.Is(err, ErrNUL) {
		t.Errorf("JoinArgs with NUL: err = %v, want ErrNUL", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Quote with NUL did not panic")
		}
	}()
	Quote("\x00")
}

// FuzzQuote runs the real /bin/sh: `printf %s <Quote(s)>` must print
// exactly s, and a word given to Join must stay one word.
func FuzzQuote(f *testing.F) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		if os.Getenv("CI") != "" {
			f.Fatalf("/bin/sh missing: %v", err)
		}
		f.Skip("/bin/sh missing")
	}
	for _, s := range []string{
		"", " ", "a", "'", "''", `\`, `\'`, `"`, "\n", "a\nb", "\t", "$HOME",
		"${HOME}", "$(id)", "`id`", "!", "!!", "~", "*", "?", "[a]", "{a,b}",
		"a;b", "a|b", "a&b", "a>b", "<", "#x", "x#", "%", "-n", "--", "-e",
		"FOO=bar", "\x01\x7f", "\xff\xfe", "é", "\r\n", "'$(id)'", `"'"'`,
		"\\n", "%s", "%%", "a=b c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := QuoteArg(s)
		if strings.IndexByte(s, 0) >= 0 {
			if !errors.Is(err, ErrNUL) {
				t.Fatalf("QuoteArg(%q): err = %v, want ErrNUL", s, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("QuoteArg(%q): %v", s, err)
		}
		if q == s && (s == "" || !isSafe(s)) {
			t.Fatalf("QuoteArg(%q) left an unsafe word unquoted", s)
		}
		// Two words, so that a word split in two shows as an extra line.
		out := runSh(t, "printf '%s\\n' "+Join(s, "end"))
		if want := s + "\nend\n"; out != want {
			t.Fatalf("sh printed %q for %q (quoted %s), want %q", out, s, q, want)
		}
	})
}

func runSh(t *testing.T, cmdline string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v: %s", cmdline, err, stderr.String())
	}
	return stdout.String()
}
