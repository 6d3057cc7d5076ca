package reconcile

import (
	"context"
	"testing"

	"lbc/schema"
)

// A plan and its apply through one Pool open one connection to the device,
// and a pooled connection that died is replaced on the next Dial.
func TestPoolOneConnectionForPlanAndApply(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	dial := func(ctx context.Context, dev *schema.Device) (Transport, error) {
		return DialSSH(ctx, dev, SSHConfig{KnownHosts: th.srv.KnownHostsFile(), KeyFile: th.srv.KeyFile()})
	}
	pool := NewPool(dial)
	defer pool.Close()
	ctx := context.Background()
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, pool.Dial, PlanOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Apply(ctx, p, pool.Dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("apply: %s %v", d.Outcome, d.Err)
	}
	if n := th.srv.Connections(); n != 1 {
		t.Errorf("plan + apply opened %d connections, want 1", n)
	}

	th.srv.CutAll()
	tr, err := pool.Dial(ctx, th.dev)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tr.Run(ctx, "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("after a cut: %q %v", out, err)
	}
	if n := th.srv.Connections(); n != 2 {
		t.Errorf("after a cut: %d connections, want 2 (one new)", n)
	}
	tr.Close() // a no-op: the pool still holds the connection
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Errorf("pooled connection closed by its user: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Errorf("pool close: %v", err)
	}
	if _, err := tr.Run(ctx, "true", nil); err == nil {
		t.Error("connection still open after the pool closed")
	}
}
