package schema

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the want files of testdata/{good,bad}/*.txtar")

// readCase reads a txtar case: its spec files as an fs.FS, and its want file.
func readCase(t *testing.T, file string) (*txtar.Archive, fstest.MapFS, string) {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	want := ""
	for _, f := range ar.Files {
		if f.Name == "want" {
			want = string(f.Data)
			continue
		}
		fsys[f.Name] = &fstest.MapFile{Data: f.Data, Mode: 0o644}
	}
	return ar, fsys, want
}

func writeWant(t *testing.T, file string, ar *txtar.Archive, got string) {
	t.Helper()
	found := false
	for i := range ar.Files {
		if ar.Files[i].Name == "want" {
			ar.Files[i].Data = []byte(got)
			found = true
		}
	}
	if !found {
		ar.Files = append(ar.Files, txtar.File{Name: "want", Data: []byte(got)})
	}
	if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cases(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/%s: %v", dir, err)
	}
	return files
}

// TestBad loads each invalid tree and compares the full error text.
func TestBad(t *testing.T) {
	for _, file := range cases(t, "bad") {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, fsys, want := readCase(t, file)
			spec, err := Load(context.Background(), fsys)
			if err == nil {
				t.Fatalf("Load succeeded (%d devices, %d balancers), want errors", len(spec.Devices), len(spec.Balancers))
			}
			var ds Diagnostics
			if !asDiagnostics(err, &ds) {
				t.Fatalf("error is %T, not Diagnostics: %v", err, err)
			}
			for _, d := range ds {
				if !d.Pos.IsValid() {
					t.Errorf("diagnostic without position: %v", d)
				}
			}
			got := err.Error() + "\n"
			if *update {
				writeWant(t, file, ar, got)
				return
			}
			if got != want {
				t.Errorf("errors differ (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}

func asDiagnostics(err error, ds *Diagnostics) bool {
	d, ok := err.(Diagnostics)
	*ds = d
	return ok
}

// TestGood loads each valid tree and compares the decoded spec, as JSON.
func TestGood(t *testing.T) {
	for _, file := range cases(t, "good") {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, fsys, want := readCase(t, file)
			spec, err := Load(context.Background(), fsys)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			b, err := json.MarshalIndent(spec, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got := string(b) + "\n"
			if *update {
				writeWant(t, file, ar, got)
				return
			}
			if got != want {
				t.Errorf("spec differs (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}
