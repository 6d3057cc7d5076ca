package atomicfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o600 {
		t.Fatalf("got %q %v, want \"two\" -rw-------", b, st.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestReplaceDirKeepsOldOnFailure(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	if err := ReplaceDir(out, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "a"), []byte("old"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := ReplaceDir(out, func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "a"), []byte("new"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a")); string(b) != "old" {
		t.Fatalf("out/a = %q after a failed replace, want old", b)
	}
	if err := ReplaceDir(out, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "b"), []byte("new"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "a")); !os.IsNotExist(err) {
		t.Fatalf("out/a still there after replace: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Fatalf("leftovers beside out: %v", ents)
	}
}
