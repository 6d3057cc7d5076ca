package gitsrc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
)

// largeTree commits 10,000 spec-like files of about 400 bytes in 100
// directories (with the git CLI, for speed) and returns the repository
// directory and the spec directory.
func largeTree(b *testing.B) (string, string) {
	b.Helper()
	dir := b.TempDir()
	specs := filepath.Join(dir, "specs")
	body := strings.Repeat("\t// padding to make a realistic file size\n", 9)
	for d := range 100 {
		sub := filepath.Join(specs, "balancers", fmt.Sprintf("t%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			src := fmt.Sprintf("package t%03d\n\nbalancers: \"b-%03d-%03d\": {\n%s}\n", d, d, f, body)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("b%03d.cue", f)), []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	run := func(args ...string) {
		b.Helper()
		if out, err := gitCmd(dir, args...); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	run("add", "-A")
	run("commit", "-q", "-m", "large")
	return dir, specs
}

// BenchmarkStamp10k measures Stamp over 10,000 files, clean and with the
// last file edited (no early exit), with and without the index's stat
// data, against go-git's Worktree.Status.
func BenchmarkStamp10k(b *testing.B) {
	dir, specs := largeTree(b)
	repo, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			s, err := repo.Stamp(specs)
			if err != nil || strings.HasSuffix(s, DirtySuffix) {
				b.Fatalf("stamp = %s, %v", s, err)
			}
		}
	})
	b.Run("clean-hash-every-file", func(b *testing.B) {
		for b.Loop() {
			_, want, _, err := repo.headTree("specs")
			if err != nil {
				b.Fatal(err)
			}
			if d, err := differs(specs, want, nil); d || err != nil {
				b.Fatalf("differs = %v, %v", d, err)
			}
		}
	})
	last := filepath.Join(specs, "balancers/t099/b099.cue")
	orig, _ := os.ReadFile(last)
	if err := os.WriteFile(last, append(orig, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("dirty-last-file", func(b *testing.B) {
		for b.Loop() {
			s, err := repo.Stamp(specs)
			if err != nil || !strings.HasSuffix(s, DirtySuffix) {
				b.Fatalf("stamp = %s, %v", s, err)
			}
		}
	})
	b.Run("go-git-worktree-status", func(b *testing.B) {
		g, err := git.PlainOpen(dir)
		if err != nil {
			b.Fatal(err)
		}
		wt, _ := g.Worktree()
		for b.Loop() {
			st, err := wt.Status()
			if err != nil || st.IsClean() {
				b.Fatalf("status clean=%v, %v", st.IsClean(), err)
			}
		}
	})
}

func gitCmd(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	return cmd.CombinedOutput()
}
