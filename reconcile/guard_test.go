package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// refuseNewer is a RevisionGuard that refuses to replace revision "rev2"
// and records what it was asked.
type refuseNewer struct {
	mu    sync.Mutex
	asked [][2]string
}

var errTooOld = errors.New("host runs a newer revision")

func (g *refuseNewer) CheckRevision(hostRev, newRev string) error {
	g.mu.Lock()
	g.asked = append(g.asked, [2]string{hostRev, newRev})
	g.mu.Unlock()
	if hostRev == "rev2" {
		return errTooOld
	}
	return nil
}

// The revision guard is asked per device, with the revision the host's
// state.json names as read under the lock; a refusal changes nothing on
// the host, frees the lock, and is reported as refused.
func TestApplyRevisionGuard(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	g := &refuseNewer{}
	o := applyOpts("test")
	o.Guard = g

	// A host lbc never applied to: the guard is asked with no revision.
	r, err := Apply(context.Background(), th.plan("rev2", testConfig(18080, 10), "203.0.113.10"), th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("first apply: %s: %v", d.Outcome, d.Err)
	}
	if len(g.asked) != 1 || g.asked[0] != [2]string{"", "rev2"} {
		t.Fatalf("guard asked %q, want once with (\"\", rev2)", g.asked)
	}

	// An older revision over rev2: refused before anything changes.
	before := th.snap()
	p := th.plan("rev1", testConfig(18080, 20), "203.0.113.11")
	if p.Devices[0].Status != StatusChanges {
		t.Fatalf("plan: %s %s", p.Devices[0].Status, p.Devices[0].Error)
	}
	r, err = Apply(context.Background(), p, th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Devices[0]
	if d.Outcome != OutcomeRefused || !errors.Is(d.Err, errTooOld) || d.Err.Error() != "apply lb-a1: refused: host runs a newer revision" {
		t.Fatalf("apply over a newer revision: %s: %v, want refused", d.Outcome, d.Err)
	}
	if g.asked[1] != [2]string{"rev2", "rev1"} {
		t.Errorf("guard asked %q, want (rev2, rev1)", g.asked[1])
	}
	if now := th.snap(); now != before {
		t.Errorf("a refused apply changed the host:\n%+v\nwas\n%+v", now, before)
	}
	th.waitUnlocked()

	// Without the guard, the same plan applies: the refusal was the guard's.
	r, err = Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil || r.Devices[0].Outcome != OutcomeApplied {
		t.Fatalf("apply without a guard: %+v %v", r.Devices[0], err)
	}
}
