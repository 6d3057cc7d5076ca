package testkit

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProductDoesNotImportTestkit fails when a product package (anything
// outside internal/testkit) imports test infrastructure in its non-test
// files: the lab, the fault-injecting SSH server and the generator stay
// out of the lbc binary.
func TestProductDoesNotImportTestkit(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go: not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "lbc/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const kit = "lbc/internal/testkit"
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], kit) {
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, kit) {
				t.Errorf("%s imports %s outside its tests", f[0], imp)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d product packages; go list output:\n%s", checked, out)
	}
}

// TestLowerLayersDoNotImportCLI fails when a lower layer (reconcile,
// schema, compiler, or a package under them) depends, even indirectly, on
// the command line's concerns: how results are printed and which exit code
// they map to are decided in internal/cli alone.
func TestLowerLayersDoNotImportCLI(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go: not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`,
		"lbc/reconcile/...", "lbc/schema/...", "lbc/compiler/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{"lbc/internal/cli", "lbc/internal/exitcode", "lbc/cmd/"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		checked++
		for _, dep := range f[1:] {
			for _, bad := range forbidden {
				if dep == bad || strings.HasPrefix(dep, bad+"/") || strings.HasSuffix(bad, "/") && strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s: exit codes and views belong to internal/cli", f[0], dep)
				}
			}
		}
	}
	if checked < 3 {
		t.Fatalf("checked %d packages; go list output:\n%s", checked, out)
	}
}
