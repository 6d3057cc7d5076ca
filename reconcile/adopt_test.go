package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A spec may name any file on the host as its config
// (haproxy: {config: "/etc/shadow"}). The plan must not show a file lbc
// did not write, only its size and hash, and apply must not replace it
// unless told to adopt it.
func TestUnmanagedFileNotShownNorReplaced(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	secret := "root:$y$j9T$secrethash:19000:0:99999:7:::\nalice:$y$j9T$otherhash:19000:0:99999:7:::\n"
	// The test host's reload runs etc/haproxy.cfg: the secret stands there.
	th.write("etc/haproxy.cfg", secret, 0o600)
	p := th.plan("rev1", testConfig(18080, 10))
	d := p.Devices[0]
	var saved bytes.Buffer
	if err := p.Save(&saved); err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"saved plan": saved.String(), "diff and notes": d.ConfigDiff + strings.Join(d.Notes, "\n")} {
		if strings.Contains(out, "secrethash") || strings.Contains(out, "alice") {
			t.Errorf("the %s shows the unmanaged file's bytes:\n%s", what, out)
		}
	}
	summary := fmt.Sprintf("not managed by lbc: %d bytes, sha256 %s", len(secret), sha256Hex([]byte(secret)))
	if d.Status != StatusChanges || !strings.Contains(d.ConfigDiff, summary) ||
		!strings.Contains(d.ConfigDiff, "\n+    maxconn 100\n") {
		t.Fatalf("plan: %s, diff:\n%s\nwant it to say %q", d.Status, d.ConfigDiff, summary)
	}

	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Devices[0]; o.Outcome != OutcomeRefused || !errors.Is(o.Err, ErrUnmanaged) ||
		!strings.Contains(o.Err.Error(), "--adopt") {
		t.Fatalf("apply without adopt: %s (%v), want refused naming --adopt", o.Outcome, o.Err)
	}
	if got := th.read("etc/haproxy.cfg"); got != secret {
		t.Fatalf("the unmanaged file was changed:\n%s", got)
	}
	if got := th.read("state/last-good/haproxy.cfg"); got != "<absent>" {
		t.Errorf("a copy of the unmanaged file was written: %q", got)
	}

	// An edited plan cannot hide the file: apply checks what it reads
	// under the lock, not the plan's notes.
	d.ConfigDiff, d.Notes = "", nil
	r, err = Apply(context.Background(), &Plan{Format: PlanFormat, Revision: "rev1", Devices: []DevicePlan{d}}, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Devices[0]; o.Outcome != OutcomeRefused || !errors.Is(o.Err, ErrUnmanaged) {
		t.Fatalf("apply of an edited plan without adopt: %s (%v)", o.Outcome, o.Err)
	}

	opts := applyOpts("test")
	opts.Adopt = true
	r, err = Apply(context.Background(), p, th.dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Devices[0]; o.Outcome != OutcomeApplied {
		t.Fatalf("apply with adopt: %s (%v)", o.Outcome, o.Err)
	}
	if got := th.read("etc/haproxy.cfg"); got != string(testConfig(18080, 10)) {
		t.Errorf("adopted file:\n%s", got)
	}
	if got := th.read("state/last-good/haproxy.cfg"); got != secret {
		t.Errorf("last-good after adopt: %q, want the adopted file", got)
	}
	// Now lbc's: diffed as usual.
	d = th.plan("rev2", testConfig(18080, 20)).Devices[0]
	if !strings.Contains(d.ConfigDiff, "+    server n1 127.0.0.1:9 weight 20 check") {
		t.Errorf("plan after adopting:\n%s", d.ConfigDiff)
	}
}

// A config that lbc wrote and someone edited by hand is still lbc's: its
// diff is shown, and apply replaces it without --adopt.
func TestHandEditedManagedFileDiffed(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	mustApply(t, th, th.plan("rev1", testConfig(18080, 10)))
	th.write("etc/haproxy.cfg", strings.Replace(string(testConfig(18080, 10)), "maxconn 100", "maxconn 99", 1), 0o644)
	p := th.plan("rev1", testConfig(18080, 10))
	if d := p.Devices[0]; !strings.Contains(d.ConfigDiff, "-    maxconn 99\n+    maxconn 100\n") {
		t.Fatalf("diff of a hand edit:\n%s", d.ConfigDiff)
	}
	mustApply(t, th, p)
}
