package cli

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"lbc/reconcile"
	"lbc/reconcile/classify"
)

// testConfig is a small haproxy.cfg with one server of the given weight.
func testConfig(weight int) []byte {
	return []byte("global\n    maxconn 100\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n" +
		"frontend fe-web\n    bind 127.0.0.1:8080\n    default_backend be-web\n\n" +
		"backend be-web\n    balance roundrobin\n    server n1 127.0.0.1:9 weight " + itoa(weight) + " check\n    server n2 127.0.0.1:10 weight 1 check\n")
}

func itoa(i int) string { return strconv.Itoa(i) }

// samplePlan is a plan of three devices: one to change, one unchanged, one
// unreachable.
func samplePlan() *reconcile.Plan {
	return &reconcile.Plan{Format: reconcile.PlanFormat, Revision: "0123abc", Devices: []reconcile.DevicePlan{
		{
			Device: "lb-a1", Address: "192.0.2.11", Status: reconcile.StatusChanges,
			ConfigDiff: reconcile.UnifiedDiff("live/lb-a1/haproxy.cfg", "new/lb-a1/haproxy.cfg", testConfig(10), testConfig(20)),
			Change: &classify.Result{Class: classify.Runtime, Ops: []classify.Op{
				{Kind: classify.KindWeight, Backend: "be-web", Server: "n1", From: "10", To: "20"},
				{Kind: classify.KindAdd, Backend: "be-web", Server: "n3", Args: []string{"127.0.0.1:11", "weight", "1", "check", "inter", "2s"}},
				{Kind: classify.KindDel, Backend: "be-web", Server: "n2", From: "1"},
			}},
			VIPsAdd: []string{"203.0.113.11/32 dev eth0"}, VIPsRemove: []string{"203.0.113.10/32 dev eth0"},
			Notes:        []string{"live haproxy.cfg is not the one lbc applied last (edited by hand, or an apply was interrupted)"},
			LiveRevision: "fedcba9",
			Fingerprints: map[string]string{"/etc/haproxy/haproxy.cfg": "24616f47fe7996c709d46197ba6058c764a062c171f2af47fdad6f57d7877774",
				"/var/lib/lbc/state.json": "", "addresses": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
			Desired: reconcile.Desired{Config: string(testConfig(20)), VIPs: []string{"203.0.113.11/32 dev eth0"}, Wanted: []string{"203.0.113.11/32 dev eth0"}},
		},
		{Device: "lb-a2", Address: "192.0.2.12", Status: reconcile.StatusUnchanged, Desired: reconcile.Desired{Config: string(testConfig(10))}},
		{Device: "lb-b1", Address: "192.0.2.13", Status: reconcile.StatusUnreachable, Error: "plan lb-b1: connect lb-b1 (192.0.2.13:22): dial tcp 192.0.2.13:22: i/o timeout"},
	}, Notes: nil}
}

func TestPlanViews(t *testing.T) {
	p := samplePlan()
	var b bytes.Buffer
	if err := writePlanText(&b, p, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())
	if bytes.Contains(b.Bytes(), []byte("\x1b[")) {
		t.Error("colour in plain text")
	}
	b.Reset()
	writePlanText(&b, p, true)
	golden(t, "plan.color.txt", b.Bytes())
	b.Reset()
	if err := writePlanJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.jsonl", b.Bytes())
	for i, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("line %d not one JSON object: %v", i+1, err)
		}
		if _, ok := m["desired"]; ok {
			t.Errorf("line %d carries the files to write", i+1)
		}
	}
	b.Reset()
	if err := writePlanMarkdown(&b, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.md", b.Bytes())
}

// The plan's own notes (devices that left the spec) show in text and JSON.
func TestPlanViewsNotes(t *testing.T) {
	p := &reconcile.Plan{Format: reconcile.PlanFormat, Notes: []string{"device lb-gone not in the spec any more: not touched"}}
	var b strings.Builder
	if err := writePlanText(&b, p, false); err != nil || !strings.Contains(b.String(), "note: device lb-gone not in the spec any more") {
		t.Errorf("text view does not show the note (%v):\n%s", err, b.String())
	}
	b.Reset()
	if err := writePlanJSON(&b, p); err != nil || !strings.Contains(b.String(), `"notes":["device lb-gone not in the spec`) {
		t.Errorf("json view does not show the note (%v):\n%s", err, b.String())
	}
}

// A reload shows its reason, escaped like any text a saved plan may carry.
func TestPlanViewReloadClass(t *testing.T) {
	p := samplePlan()
	p.Devices[0].Change = &classify.Result{Class: classify.Reload, Reason: "backend be-web: \x1b[31m"}
	var b strings.Builder
	if err := writePlanText(&b, p, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  haproxy.cfg: needs a reload: backend be-web: \\x1b[31m\n") || strings.Contains(b.String(), "runtime-capable") {
		t.Errorf("text view:\n%s", b.String())
	}
	b.Reset()
	if err := writePlanMarkdown(&b, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "haproxy.cfg: needs a reload: backend be-web: \\x1b[31m\n") {
		t.Errorf("markdown view:\n%s", b.String())
	}
}

// A certificate rotation shows as a runtime operation, by fingerprints,
// in text, JSON and markdown.
func TestPlanViewCertRotation(t *testing.T) {
	p := samplePlan()
	from, to := strings.Repeat("a", 64), strings.Repeat("b", 64)
	p.Devices[0].Change = &classify.Result{Class: classify.Runtime, Ops: []classify.Op{
		{Kind: classify.KindCert, Name: "www", File: "/var/lib/lbc/certs/www.pem", From: from, To: to}}}
	line := "rotate cert www: sha256 " + from + " → " + to
	var b strings.Builder
	if err := writePlanText(&b, p, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "haproxy.cfg: runtime, 1 runtime operation(s), no reload:\n    "+line+"\n") {
		t.Errorf("text view:\n%s", b.String())
	}
	b.Reset()
	if err := writePlanMarkdown(&b, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), line) {
		t.Errorf("markdown view:\n%s", b.String())
	}
	b.Reset()
	if err := writePlanJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `{"kind":"cert","backend":"","server":"","from":"`+from+`","to":"`+to+`","file":"/var/lib/lbc/certs/www.pem","name":"www"}`) {
		t.Errorf("json view:\n%s", b.String())
	}
}
