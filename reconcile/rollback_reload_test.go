package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// failFirstVerify fails the first verification, as a config that loads but
// does not run as it should: apply must roll back.
type failFirstVerify struct {
	testVerifier
	failed atomic.Bool
}

func (v *failFirstVerify) After(h Host, cfg []byte) (string, error) {
	if !v.failed.Swap(true) {
		return "echo 'injected: the new config does not run' >&2; false", nil
	}
	return v.testVerifier.After(h, cfg)
}

// A rollback whose reload signal is lost (HAProxy's master was still
// re-executing for the apply's reload) reloads once more and ends rolled
// back, the old config running.
func TestRollbackReloadsAgainWhenTheFirstIsLost(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	old := testConfig(18080, 10)
	if r, err := Apply(context.Background(), th.plan("rev1", old), th.dial, applyOpts("test")); err != nil || r.Devices[0].Outcome != OutcomeApplied {
		t.Fatalf("first apply: %v %+v", err, r)
	}
	// From now on the second reload is lost: it does nothing.
	th.write("bin/reload-fake", `#!/bin/sh
d="$(dirname "$0")/.."
n=$(cat "$d/reload-count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/reload-count"
[ "$n" = 2 ] && exit 0
sha256sum < "$d/etc/haproxy.cfg" | cut -c1-64 > "$d/state/running.tmp" && mv -f "$d/state/running.tmp" "$d/state/running"
`, 0o755)
	o := applyOpts("test")
	o.Verifier = &failFirstVerify{}
	r, err := Apply(context.Background(), th.plan("rev2", testConfig(18080, 20)), th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeRolledBack {
		t.Fatalf("outcome %s (%v), want rolled-back", d.Outcome, d.Err)
	}
	running, _ := os.ReadFile(filepath.Join(th.dir, "state/running"))
	if got := strings.TrimSpace(string(running)); got != sha256Hex(old) {
		t.Errorf("running config %s, want the old one %s", got, sha256Hex(old))
	}
	if n, _ := os.ReadFile(filepath.Join(th.dir, "reload-count")); strings.TrimSpace(string(n)) != "3" {
		t.Errorf("reloads: %s, want 3 (apply, lost rollback reload, the one more)", n)
	}
}
