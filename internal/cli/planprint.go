package cli

import (
	"bufio"
	"bytes"
	"io"
	"sync"

	"lbc/reconcile"
)

// planPrinter prints the text view of a plan that reconcile.PlanApply
// hands out device by device, in no particular order: each device's part
// as soon as every device before it (by name) is printed, so the output
// is writePlanText's; finish prints the notes and the summary. On a
// terminal that also shows the progress display, the display is cleared
// before each print and drawn again below it.
type planPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	view  *progressView // nil: print straight to w
	devs  []*reconcile.DevicePlan
	next  int // the first device not printed
	err   error
}

func newPlanPrinter(w io.Writer, n int, color bool, view *progressView) *planPrinter {
	if !isTerminal(w) {
		view = nil // the display is on another output: nothing to clear
	}
	return &planPrinter{w: w, color: color, view: view, devs: make([]*reconcile.DevicePlan, n)}
}

// planned records device i's plan and prints what can be printed.
func (pp *planPrinter) planned(i int, dp *reconcile.DevicePlan) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if i < 0 || i >= len(pp.devs) {
		return
	}
	pp.devs[i] = dp
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	for pp.next < len(pp.devs) && pp.devs[pp.next] != nil {
		writeDevicePlanText(bw, pp.devs[pp.next], pp.color)
		pp.devs[pp.next] = nil // printed: not kept
		pp.next++
	}
	bw.Flush()
	pp.write(b.Bytes())
}

// finish prints the notes and the summary of p, whose devices have all
// been printed; it returns the first write error.
func (pp *planPrinter) finish(p *reconcile.Plan) error {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	writePlanFooter(bw, p)
	bw.Flush()
	pp.write(b.Bytes())
	return pp.err
}

// write writes b, clearing the progress display first. Call with pp.mu held.
func (pp *planPrinter) write(b []byte) {
	if len(b) == 0 || pp.err != nil {
		return
	}
	if pp.view != nil {
		pp.err = pp.view.above(func() error { _, err := pp.w.Write(b); return err })
		return
	}
	_, pp.err = pp.w.Write(b)
}
