package cli

import (
	"bytes"
	"strings"
	"testing"
)

// The plan that lbc apply DIR prints device by device, handed out in any
// order, is the text view of the whole plan: devices by name, then the
// notes and the summary.
func TestPlanPrinterOrder(t *testing.T) {
	p := samplePlan()
	p.Notes = []string{"device lb-z9 not in the spec any more: not touched"}
	var want bytes.Buffer
	if err := writePlanText(&want, p, false); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	pr := newPlanPrinter(&got, len(p.Devices), false, nil)
	for i := len(p.Devices) - 1; i >= 0; i-- {
		pr.planned(i, &p.Devices[i])
		if i > 0 && got.Len() > 0 {
			t.Fatalf("printed before device 0 was planned:\n%s", got.String())
		}
	}
	if err := pr.finish(p); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("printed:\n%s\nwant:\n%s", got.String(), want.String())
	}
	if !strings.Contains(got.String(), "lb-a1") || !strings.Contains(got.String(), "Plan (revision") {
		t.Errorf("printed %q: no device or summary", got.String())
	}
}
