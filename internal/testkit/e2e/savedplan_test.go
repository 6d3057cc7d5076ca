package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lbc/internal/testkit/lab"
)

// TestSavedPlan runs the CI flow with a plan file against the lab: `lbc
// plan -out` on a pull request, `lbc apply FILE` on merge. The saved plan
// applies exactly what it showed, traffic follows, and the same file is
// refused once the host it read has changed (here: a hand edit), naming
// the device and the file, with nothing changed on the host.
func TestSavedPlan(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 1, Nodes: 2})
	l, tmp := g.l, g.tmp
	n1, n2 := l.Nodes[0], l.Nodes[1]
	spec := fmt.Sprintf("package spec\n\nbalancers: web: {\n\ttenant: \"sp\"\n\tprotocol: \"http\"\n"+
		"\tvips: [{address: %q, port: 80}]\n\tnodes: [\n\t\t{address: %q, port: %d},\n\t\t{address: %q, port: %d},\n\t]\n}\n",
		l.VIP(1), n1.Address, n1.Port, n2.Address, n2.Port)
	if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := g.sshFlags()
	planFile := filepath.Join(tmp, "web.plan")

	r := g.must(2, tmp, append(append([]string{"plan", "--detailed-exitcode", "-out", planFile}, flags...), "specs")...)
	if !strings.Contains(r.stdout, "1 to change") {
		t.Errorf("plan: want 1 to change\n%s", r)
	}
	saved, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"PRIVATE KEY", filepath.Base(l.KeyFile)} {
		if strings.Contains(string(saved), secret) {
			t.Errorf("the saved plan holds %q", secret)
		}
	}
	r = g.must(0, tmp, append(append([]string{"apply", "--adopt"}, flags...), planFile)...)
	if !strings.Contains(r.stdout, "1 applied") {
		t.Errorf("apply of the saved plan: want 1 applied\n%s", r)
	}
	g.serves(1, "n1", "n2")
	g.must(0, tmp, append(append([]string{"plan", "--detailed-exitcode"}, flags...), "specs")...)

	// A new plan, saved; then the host changes under it: the file is stale.
	if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(strings.Replace(spec, fmt.Sprintf("port: %d},\n\t]", n2.Port), fmt.Sprintf("port: %d, weight: 3},\n\t]", n2.Port), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.must(2, tmp, append(append([]string{"plan", "--detailed-exitcode", "-out", planFile}, flags...), "specs")...)
	dev := l.Devices[0]
	cfg, err := os.ReadFile(dev.Config)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(cfg, "\n# edited by hand\n"...)
	if err := os.WriteFile(dev.Config, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	r = g.must(1, tmp, append(append([]string{"apply", "--adopt"}, flags...), planFile)...)
	if out := r.stdout + r.stderr; !strings.Contains(out, "stale") || !strings.Contains(out, dev.Name) || !strings.Contains(out, dev.Config) {
		t.Errorf("stale plan: want a refusal naming %s and %s\n%s", dev.Name, dev.Config, r)
	}
	if now, _ := os.ReadFile(dev.Config); string(now) != string(edited) {
		t.Errorf("a refused plan changed the host's config:\n%s", now)
	}
	g.serves(1, "n1", "n2")
}
