package reconcile

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lines(n int, f func(i int) string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(f(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestUnifiedDiffMatchesDiffU(t *testing.T) {
	if _, err := exec.LookPath("diff"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("diff(1) not installed (CI set)")
		}
		t.Skip("diff(1) not installed")
	}
	a := lines(30, func(i int) string { return fmt.Sprintf("line %d", i) })
	cases := map[string][2]string{
		"one change":      {a, strings.Replace(a, "line 15\n", "line fifteen\n", 1)},
		"two hunks":       {a, strings.Replace(strings.Replace(a, "line 3\n", "", 1), "line 27\n", "line 27\nextra\n", 1)},
		"merged hunks":    {a, strings.Replace(strings.Replace(a, "line 10\n", "x\n", 1), "line 16\n", "y\n", 1)},
		"from empty":      {"", "a\nb\n"},
		"to empty":        {"a\nb\n", ""},
		"no final eol":    {"a\nb\n", "a\nb"},
		"append at end":   {a, a + "new\n"},
		"insert at start": {a, "new\n" + a},
	}
	dir := t.TempDir()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := UnifiedDiff("a", "b", []byte(c[0]), []byte(c[1]))
			fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(fa, []byte(c[0]), 0o644)
			os.WriteFile(fb, []byte(c[1]), 0o644)
			out, _ := exec.Command("diff", "-u", fa, fb).Output()
			// Drop the --- +++ headers, which carry dates.
			want := string(out)
			want = want[strings.Index(want, "@@"):]
			if got = got[strings.Index(got, "@@"):]; got != want {
				t.Errorf("got:\n%s\nwant (diff -u):\n%s", got, want)
			}
		})
	}
	if d := UnifiedDiff("a", "b", []byte(a), []byte(a)); d != "" {
		t.Errorf("equal inputs: %q", d)
	}
}

// TestUnifiedDiffPatches checks with patch(1) that random diffs turn a into b.
func TestUnifiedDiffPatches(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("patch(1) not installed (CI set)")
		}
		t.Skip("patch(1) not installed")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for n := 0; n < 40; n++ {
		var a, b []string
		for i := 0; i < 60; i++ {
			l := fmt.Sprintf("l%d", rng.IntN(20))
			switch rng.IntN(10) {
			case 0:
				a = append(a, l)
			case 1:
				b = append(b, l)
			default:
				a, b = append(a, l), append(b, l)
			}
		}
		sa, sb := strings.Join(a, "\n")+"\n", strings.Join(b, "\n")+"\n"
		d := UnifiedDiff("a/f", "b/f", []byte(sa), []byte(sb))
		f := filepath.Join(dir, "f")
		os.WriteFile(f, []byte(sa), 0o644)
		cmd := exec.Command("patch", "-s", "--no-backup-if-mismatch", f)
		cmd.Stdin = strings.NewReader(d)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch: %v: %s\n%s", n, err, out, d)
		}
		if got, _ := os.ReadFile(f); string(got) != sb {
			t.Fatalf("case %d: patched file differs\n%s", n, d)
		}
	}
}

// A host can return any config: one of more lines than the line diff can
// map (about 1.1 million distinct lines made it panic) is summarized, not
// diffed, and nothing panics.
func TestUnifiedDiffHugeFileSummarized(t *testing.T) {
	huge := lines(1_200_000, func(i int) string { return fmt.Sprintf("l%d", i) })
	small := lines(10, func(i int) string { return fmt.Sprintf("l%d", i) })
	got := UnifiedDiff("live/x", "new/x", []byte(huge), []byte(small))
	want := fmt.Sprintf("--- live/x\n+++ new/x\nfiles differ: 1200000 → 10 lines (not diffed: more than %d lines)\n", MaxDiffLines)
	if got != want {
		t.Fatalf("diff of a huge file:\n%.300s\nwant:\n%s", got, want)
	}
}

// A diff that would take long (100k distinct lines against 20k others:
// 33 s before it was bounded) stops at the time budget and is summarized.
func TestUnifiedDiffTimeBudget(t *testing.T) {
	defer func(b time.Duration) { diffBudget = b }(diffBudget)
	diffBudget = 300 * time.Millisecond
	a := lines(100_000, func(i int) string { return fmt.Sprintf("a%d", i) })
	b := lines(20_000, func(i int) string { return fmt.Sprintf("b%d", i) })
	start := time.Now()
	got := UnifiedDiff("live/x", "new/x", []byte(a), []byte(b))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("diff took %s, want about the budget (%s)", d, diffBudget)
	}
	want := "--- live/x\n+++ new/x\nfiles differ: 100000 → 20000 lines (not diffed: the diff took more than 300ms)\n"
	if got != want {
		t.Fatalf("diff over budget:\n%.300s\nwant:\n%s", got, want)
	}
}
