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
