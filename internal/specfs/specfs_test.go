package specfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

func TestFS(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a", "ok.cue"), []byte("x: 1\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "big.cue"), make([]byte, 101), 0o644))
	must(os.WriteFile(filepath.Join(top, "secret"), []byte("secret\n"), 0o644))
	must(os.Symlink("../ok.cue", filepath.Join(dir, "a", "b", "in.cue")))
	must(os.Symlink("../../secret", filepath.Join(dir, "a", "up.cue")))
	must(os.Symlink("/dev/zero", filepath.Join(dir, "zero.cue")))
	must(os.Symlink(top, filepath.Join(dir, "topdir")))
	must(os.Symlink(filepath.Join(dir, "a", "ok.cue"), filepath.Join(dir, "abs.cue")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo.cue"), 0o644))

	f, err := Open(dir, 100)
	must(err)
	defer f.Close()

	for name, want := range map[string]string{"a/ok.cue": "x: 1\n", "a/b/in.cue": "x: 1\n"} {
		b, err := f.ReadFile(name)
		if err != nil || string(b) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, b, err, want)
		}
	}
	for _, name := range []string{"a/up.cue", "zero.cue", "topdir/secret", "abs.cue"} {
		if b, err := f.ReadFile(name); !errors.Is(err, ErrOutside) {
			t.Errorf("ReadFile(%s) = %q, %v; want ErrOutside", name, b, err)
		}
		if _, err := f.Stat(name); !errors.Is(err, ErrOutside) {
			t.Errorf("Stat(%s) = %v; want ErrOutside", name, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := f.ReadFile("fifo.cue"); done <- err }()
	select {
	case err := <-done:
		var nr *NotRegularError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), "a named pipe") {
			t.Errorf("ReadFile(fifo.cue) = %v, want NotRegularError (a named pipe)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile(fifo.cue) waits for a writer")
	}
	var tl *TooLargeError
	if _, err := f.ReadFile("big.cue"); !errors.As(err, &tl) || tl.Size != 101 || tl.Limit != 100 {
		t.Errorf("ReadFile(big.cue) = %v, want TooLargeError 101 > 100", err)
	}
	if _, err := f.ReadFile("a"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
	if _, err := f.ReadFile("missing.cue"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing.cue) = %v, want ErrNotExist", err)
	}
	es, err := f.ReadDir(".")
	must(err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "a abs.cue big.cue fifo.cue topdir zero.cue" {
		t.Errorf("ReadDir = %s", got)
	}
}

// A file that grows past the limit after it was opened fails the read.
func TestFSGrowing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "g.cue")
	if err := os.WriteFile(p, make([]byte, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := f.Open("g.cue")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if err := os.WriteFile(p, make([]byte, 30), 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	total := 0
	for {
		n, err := file.Read(buf)
		total += n
		if err != nil {
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				t.Errorf("read: %v, want TooLargeError", err)
			}
			break
		}
	}
	if total != 20 {
		t.Errorf("read %d bytes, want the limit, 20", total)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 bytes", 1024: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB", 3 << 30: "3 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestLimit(t *testing.T) {
	fsys := fstest.MapFS{
		"a/small.cue": {Data: []byte("x: 1\n")},
		"a/big.cue":   {Data: make([]byte, 11)},
	}
	l := Limit(fsys, 10)
	if b, err := fs.ReadFile(l, "a/small.cue"); err != nil || string(b) != "x: 1\n" {
		t.Errorf("small: %q, %v", b, err)
	}
	var tl *TooLargeError
	if _, err := fs.ReadFile(l, "a/big.cue"); !errors.As(err, &tl) {
		t.Errorf("big: %v, want TooLargeError", err)
	}
	if es, err := fs.ReadDir(l, "a"); err != nil || len(es) != 2 {
		t.Errorf("ReadDir: %v, %v", es, err)
	}
	if Limit(fsys, 0) == nil {
		t.Error("Limit(0) is nil")
	}
}
