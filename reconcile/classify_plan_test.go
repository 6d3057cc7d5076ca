package reconcile

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"lbc/reconcile/classify"
)

// The plan classifies each device's haproxy.cfg change from what the host
// really holds: a first apply and a hand-edited file need a reload, a
// weight change on the file lbc applied last is runtime-capable.
func TestPlanClassifiesChange(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	d := th.plan("rev1", testConfig(18080, 10)).Devices[0]
	if d.Change == nil || d.Change.Class != classify.Reload || d.Change.Reason != "no haproxy.cfg on the host" {
		t.Fatalf("first plan: %+v", d.Change)
	}
	mustApply(t, th, th.plan("rev1", testConfig(18080, 10)))
	if d := th.plan("rev1", testConfig(18080, 10)).Devices[0]; d.Status != StatusUnchanged || d.Change != nil {
		t.Fatalf("unchanged plan: %s %+v", d.Status, d.Change)
	}

	d = th.plan("rev2", testConfig(18080, 20)).Devices[0]
	if d.Change == nil || d.Change.Class != classify.Runtime || fmt.Sprint(d.Change.Ops) != "[be_web/n1 weight 10 → 20]" {
		t.Fatalf("weight change: %+v", d.Change)
	}

	// A frontend change needs a reload.
	d = th.plan("rev2", testConfig(18081, 10)).Devices[0]
	if d.Change == nil || d.Change.Class != classify.Reload || d.Change.Reason != `frontend fe_web: "bind 127.0.0.1:18081" is new or changed` {
		t.Fatalf("bind change: %+v", d.Change)
	}

	// The live file edited by hand (a comment) under a valid header: the
	// host may not run it, so even a weight change reloads.
	body := bytes.SplitN([]byte(th.read("etc/haproxy.cfg")), []byte("\n"), 2)[1]
	th.write("etc/haproxy.cfg", string(withHeader(append(body, "# edited\n"...))), 0o644)
	d = th.plan("rev2", testConfig(18080, 20)).Devices[0]
	if d.Change == nil || d.Change.Class != classify.Reload || !strings.Contains(d.Change.Reason, "not the one lbc applied last") {
		t.Fatalf("hand-written live file: %+v", d.Change)
	}
}
