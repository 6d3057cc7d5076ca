package gitsrc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// testRepo is a repository built with go-git in a temporary directory.
type testRepo struct {
	t    *testing.T
	dir  string
	git  *git.Repository
	tick int
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := t.TempDir()
	g, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, git: g}
}

func (r *testRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) remove(name string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
		r.t.Fatal(err)
	}
}

// commit records the worktree as it is (additions and removals) and
// returns the commit's full hash.
func (r *testRepo) commit(msg string) string {
	r.t.Helper()
	wt, err := r.git.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	r.tick++
	when := time.Date(2024, 1, 1, 0, r.tick, 0, 0, time.UTC)
	h, err := wt.Commit(msg, &git.CommitOptions{
		Author: &object.Signature{Name: "t", Email: "t@example.com", When: when},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func (r *testRepo) open() *Repo {
	r.t.Helper()
	repo, err := Open(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	return repo
}

func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("git CLI not found: %v", err)
		}
		t.Skip("git CLI not installed")
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// history builds main: c1 → c2 → c3 and a side branch c1 → d1.
func history(t *testing.T) (r *testRepo, c1, c2, c3, d1 string) {
	r = newTestRepo(t)
	r.write("README", "not a spec\n")
	r.write("specs/devices/devices.cue", "package devices\n// v1\n")
	r.write("specs/balancers/shop/shop.cue", "package shop\n")
	c1 = r.commit("c1")
	r.write("specs/devices/devices.cue", "package devices\n// v2\n")
	r.write("specs/balancers/blog/blog.cue", "package blog\n")
	c2 = r.commit("c2")
	r.remove("specs/balancers/shop")
	r.write("specs/devices/devices.cue", "package devices\n// v3\n")
	c3 = r.commit("c3")
	if _, err := r.git.CreateTag("v3", plumbing.NewHash(c3), nil); err != nil {
		t.Fatal(err)
	}

	wt, _ := r.git.Worktree()
	if err := wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(c1), Branch: "refs/heads/side", Create: true}); err != nil {
		t.Fatal(err)
	}
	r.write("specs/devices/devices.cue", "package devices\n// side\n")
	d1 = r.commit("d1")
	if err := wt.Checkout(&git.CheckoutOptions{Branch: "refs/heads/main"}); err != nil {
		t.Fatal(err)
	}
	return r, c1, c2, c3, d1
}

func readAll(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		got[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestFSReadsEachRevisionWithoutCheckout(t *testing.T) {
	r, c1, c2, c3, d1 := history(t)
	repo := r.open()
	// The worktree holds uncommitted edits: FS must not see them.
	r.write("specs/devices/devices.cue", "package devices\n// uncommitted\n")

	cases := []struct {
		rev, want string
		files     map[string]string
	}{
		{"HEAD", c3, map[string]string{
			"devices/devices.cue":     "package devices\n// v3\n",
			"balancers/blog/blog.cue": "package blog\n",
		}},
		{"main", c3, nil},
		{"v3", c3, nil},
		{c3[:8], c3, nil},
		{"HEAD~1", c2, map[string]string{
			"devices/devices.cue":     "package devices\n// v2\n",
			"balancers/blog/blog.cue": "package blog\n",
			"balancers/shop/shop.cue": "package shop\n",
		}},
		{c1, c1, map[string]string{
			"devices/devices.cue":     "package devices\n// v1\n",
			"balancers/shop/shop.cue": "package shop\n",
		}},
		{"side", d1, map[string]string{
			"devices/devices.cue":     "package devices\n// side\n",
			"balancers/shop/shop.cue": "package shop\n",
		}},
	}
	for _, c := range cases {
		fsys, hash, err := repo.FS(c.rev, "specs")
		if err != nil {
			t.Fatalf("FS(%s): %v", c.rev, err)
		}
		if hash != c.want {
			t.Errorf("FS(%s) hash = %s, want %s", c.rev, hash, c.want)
		}
		if c.files == nil {
			continue
		}
		if got := readAll(t, fsys); !equalMaps(got, c.files) {
			t.Errorf("FS(%s) files = %q, want %q", c.rev, got, c.files)
		}
		var names []string
		for n := range c.files {
			names = append(names, n)
		}
		if err := fstest.TestFS(fsys, names...); err != nil {
			t.Errorf("FS(%s): %v", c.rev, err)
		}
	}

	// The whole tree, from the root.
	fsys, _, err := repo.FS("HEAD", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "README", "specs/devices/devices.cue"); err != nil {
		t.Error(err)
	}
	if _, err := fs.Stat(fsys, "specs/nope.cue"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := fs.ReadFile(fsys, "../etc/passwd"); err == nil {
		t.Error("reading ../etc/passwd succeeded")
	}

	if _, _, err := repo.FS("no-such-branch", ""); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("FS(no-such-branch): %v, want ErrUnknownRevision", err)
	}
	if _, _, err := repo.FS("HEAD", "nope"); err == nil {
		t.Error("FS of a missing subdir succeeded")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFSFollowsSymlinksInsideTheTree(t *testing.T) {
	r := newTestRepo(t)
	r.write("specs/real/a.cue", "package real\n")
	if err := os.Symlink("real", filepath.Join(r.dir, "specs/alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(r.dir, "specs/escape")); err != nil {
		t.Fatal(err)
	}
	r.commit("links")
	fsys, _, err := r.open().FS("HEAD", "specs")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "alias/a.cue")
	if err != nil || string(b) != "package real\n" {
		t.Errorf("read through link: %q, %v", b, err)
	}
	if _, err := fs.ReadFile(fsys, "escape"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link leaving the tree: %v, want ErrNotExist", err)
	}
}

func TestFSInBareRepositoryAndShallowClone(t *testing.T) {
	r, c1, c2, c3, _ := history(t)
	base := t.TempDir()
	bare := filepath.Join(base, "bare.git")
	gitCLI(t, base, "clone", "--quiet", "--bare", r.dir, bare)
	shallow := filepath.Join(base, "shallow")
	gitCLI(t, base, "clone", "--quiet", "--depth", "1", "--branch", "main", "file://"+r.dir, shallow)
	shallow2 := filepath.Join(base, "shallow2")
	gitCLI(t, base, "clone", "--quiet", "--depth", "2", "--branch", "main", "file://"+r.dir, shallow2)

	for _, dir := range []string{bare, filepath.Join(shallow, "specs")} {
		repo, err := Open(dir)
		if err != nil {
			t.Fatalf("open %s: %v", dir, err)
		}
		fsys, hash, err := repo.FS("HEAD", "specs")
		if err != nil {
			t.Fatalf("%s: FS: %v", dir, err)
		}
		if hash != c3 {
			t.Errorf("%s: hash %s, want %s", dir, hash, c3)
		}
		if got := readAll(t, fsys)["devices/devices.cue"]; got != "package devices\n// v3\n" {
			t.Errorf("%s: devices.cue = %q", dir, got)
		}
	}

	repo, err := Open(shallow)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := repo.FS("HEAD~1", ""); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("HEAD~1 in a depth-1 clone: %v, want ErrUnknownRevision", err)
	}
	if repo.Known(c1) || !repo.Known(c3) {
		t.Errorf("Known(c1)=%v Known(c3)=%v in a depth-1 clone", repo.Known(c1), repo.Known(c3))
	}
	if _, err := repo.IsAncestor(c1, c3); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("IsAncestor(c1, c3): %v, want ErrUnknownRevision", err)
	}
	err = CheckRevision(repo, c2, c3, false, false)
	if !errors.Is(err, ErrUnknownHostRevision) || !strings.Contains(err.Error(), "fetch-depth: 0") {
		t.Errorf("host at c2, depth-1 clone: %v, want ErrUnknownHostRevision with a hint", err)
	}
	if err := CheckRevision(repo, c2, c3, false, true); err != nil {
		t.Errorf("with force: %v", err)
	}

	repo2, err := Open(shallow2)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := repo2.IsAncestor(c2, c3); !ok || err != nil {
		t.Errorf("IsAncestor(c2, c3) in a depth-2 clone = %v, %v", ok, err)
	}
	// c2 is the shallow edge: whether c3 is behind it cannot be known.
	if _, err := repo2.IsAncestor(c3, c2); !errors.Is(err, ErrIncompleteHistory) {
		t.Errorf("IsAncestor(c3, c2) in a depth-2 clone: %v, want ErrIncompleteHistory", err)
	}
	if err := CheckRevision(repo2, c2, c3, false, false); err != nil {
		t.Errorf("forward in a depth-2 clone: %v", err)
	}
}

func TestCheckRevisionOutOfOrder(t *testing.T) {
	r, c1, c2, c3, d1 := history(t)
	repo := r.open()
	other := strings.Repeat("ab", 20)
	cases := []struct {
		name             string
		host, next       string
		downgrade, force bool
		want             error // nil or a sentinel
	}{
		{"first apply", "", c1, false, false, nil},
		{"same revision", c2, c2, false, false, nil},
		{"forward one", c1, c2, false, false, nil},
		{"forward two", c1, c3, false, false, nil},
		{"older job after newer", c3, c2, false, false, ErrDowngrade},
		{"oldest job last", c3, c1, false, false, ErrDowngrade},
		{"downgrade allowed", c3, c1, true, false, nil},
		{"force is not downgrade", c3, c1, false, true, ErrDowngrade},
		{"diverged", c3, d1, false, false, ErrDiverged},
		{"diverged back", d1, c2, false, false, ErrDiverged},
		{"diverged forced", c3, d1, false, true, nil},
		{"unknown host", other, c3, false, false, ErrUnknownHostRevision},
		{"garbage host", "not-a-hash", c3, false, false, ErrUnknownHostRevision},
		{"unknown host forced", other, c3, false, true, nil},
		{"unknown new", c1, other, false, true, ErrUnknownRevision},
		{"host dirty, same commit", c2 + DirtySuffix, c2, false, false, nil},
		{"host dirty, newer", c2 + DirtySuffix, c3, false, false, nil},
		{"host dirty, older", c3 + DirtySuffix, c2, false, false, ErrDowngrade},
		{"new dirty, same base", c3, c3 + DirtySuffix, false, false, nil},
		{"new dirty, older base", c3, c1 + DirtySuffix, false, false, ErrDowngrade},
		{"specs not from git", c3, "", false, false, ErrNoRevision},
		{"specs not from git forced", c3, "", false, true, nil},
	}
	for _, c := range cases {
		err := CheckRevision(repo, c.host, c.next, c.downgrade, c.force)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want nil", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	err := CheckRevision(repo, c3, c2, false, false)
	want := "host runs " + c3[:12] + ", applying " + c2[:12] + ": downgrade: "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "--allow-downgrade") {
		t.Errorf("message = %q, want prefix %q and the flag", err, want)
	}
	if err := CheckRevision(nil, c3, "", false, false); !errors.Is(err, ErrNoRevision) {
		t.Errorf("no repository: %v", err)
	}
}

func TestIsAncestor(t *testing.T) {
	r, c1, c2, c3, d1 := history(t)
	repo := r.open()
	for _, c := range []struct {
		a, b string
		want bool
	}{{c1, c3, true}, {c2, c3, true}, {c3, c3, true}, {c3, c1, false}, {d1, c3, false}, {c1, d1, true}, {"HEAD~2", "main", true}} {
		got, err := repo.IsAncestor(c.a, c.b)
		if err != nil || got != c.want {
			t.Errorf("IsAncestor(%.8s, %.8s) = %v, %v; want %v", c.a, c.b, got, err, c.want)
		}
	}
	if _, err := repo.IsAncestor(strings.Repeat("0", 40), c1); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("unknown hash: %v", err)
	}
}

func TestStamp(t *testing.T) {
	r, _, _, c3, _ := history(t)
	repo := r.open()
	specs := filepath.Join(r.dir, "specs")
	check := func(step, want string) {
		t.Helper()
		got, err := repo.Stamp(specs)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got != want {
			t.Errorf("%s: stamp %s, want %s", step, got, want)
		}
	}
	dirty := c3 + DirtySuffix
	check("clean", c3)
	r.write("README", "edited outside the spec dir\n")
	r.write("untracked-outside.txt", "x")
	check("edits outside dir", c3)

	r.write("specs/devices/devices.cue", "package devices\n// edited\n")
	check("edited", dirty)
	r.write("specs/devices/devices.cue", "package devices\n// v3\n")
	check("edit undone", c3)

	r.write("specs/balancers/new/new.cue", "package new\n")
	check("file added", dirty)
	r.remove("specs/balancers/new")
	check("added file removed", c3)

	r.remove("specs/balancers/blog/blog.cue")
	check("file removed", dirty)
	r.write("specs/balancers/blog/blog.cue", "package blog\n")
	check("file restored", c3)

	if err := os.Chmod(filepath.Join(specs, "devices/devices.cue"), 0o755); err != nil {
		t.Fatal(err)
	}
	check("made executable", dirty)
	if err := os.Chmod(filepath.Join(specs, "devices/devices.cue"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A subdirectory of the specs, and a directory not in HEAD at all.
	if got, err := repo.Stamp(filepath.Join(specs, "devices")); err != nil || got != c3 {
		t.Errorf("stamp of a subdir = %s, %v", got, err)
	}
	r.write("fresh/a.cue", "package fresh\n")
	if got, err := repo.Stamp(filepath.Join(r.dir, "fresh")); err != nil || got != dirty {
		t.Errorf("stamp of an uncommitted dir = %s, %v; want dirty", got, err)
	}
	if _, err := repo.Stamp(t.TempDir()); err == nil {
		t.Error("stamp outside the worktree succeeded")
	}
}

// schema.Load reads instances in parallel: the FS must allow it.
func TestFSConcurrentReads(t *testing.T) {
	r, _, _, _, _ := history(t)
	fsys, _, err := r.open().FS("HEAD", "specs")
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, fsys)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				for name, body := range want {
					b, err := fs.ReadFile(fsys, name)
					if err != nil || string(b) != body {
						errs <- fmt.Errorf("read %s: %q, %v", name, b, err)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
