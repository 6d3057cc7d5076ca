package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// Runtime apply. A device whose haproxy.cfg change classify calls runtime
// (and whose keepalived.conf does not change) is applied without a
// reload, unless ApplyOptions.Reload: the same transaction stages, checks,
// keeps and swaps the file, then drains the servers to delete or drain,
// sends the operations on the stats socket, and reads the runtime back;
// lbc compares every server's address, weight and state with the new
// file and the worker's pid with the one before, then commits. Any
// difference or failure rolls back the file and the runtime values
// (host.Runtime).

// RuntimeApply is how a runtime apply went on a device.
type RuntimeApply struct {
	Ops []string `json:"ops"` // the operations, as plan shows them
	Pid int      `json:"pid"` // the worker, the same before and after
	// DrainTimedOut lists the servers still holding sessions at the
	// drain timeout ("be_web/198.51.100.1_80:2"); their sessions were shut.
	DrainTimedOut []string `json:"drainTimedOut,omitempty"`
}

// runtimePart is the runtime part of the transaction, or nil when the
// device reloads. The operations come from what the lock holder read and
// the rendered file, both parsed by lbc (classify), not from the plan.
func (x *tx) runtimePart() (*host.Runtime, []string, error) {
	d := x.dp
	if x.o.Reload || d.Change == nil || d.Change.Class != classify.Runtime || d.KeepalivedDiff != "" {
		return nil, nil, nil
	}
	live := x.live
	trusted := live.State != nil && live.Config.Exists && live.State.ConfigSHA256 == live.Config.Fingerprint()
	if !live.Config.Exists || (!trusted && len(x.files) > 0) {
		return nil, nil, nil
	}
	// An auxiliary file that changes is read by HAProxy only at a reload,
	// unless it is a certificate that runs already (certrt.go).
	var fileOps []classify.Op
	if len(x.files) > 0 || len(d.Desired.FilesRemove) > 0 {
		var reason string
		if fileOps, reason = x.applyFileOps(trusted); reason != "" {
			return nil, nil, nil
		}
	}
	r := classify.Change(live.Config.Data, []byte(d.Desired.Config), trusted)
	if r.Class == classify.None {
		r = classify.Result{Class: classify.Runtime} // the runtime may still drift
	}
	if r.Class != classify.Runtime {
		return nil, nil, nil
	}
	// Servers changed by hand on the stats socket are brought back too,
	// or, when the runtime API cannot, the change reloads.
	if live.Runtime.Exists {
		running, err := host.ParseServersState(string(live.Runtime.Data))
		if err != nil {
			return nil, nil, nil
		}
		extra, reason := driftOps([]byte(d.Desired.Config), running, r.Ops)
		if reason != "" {
			x.r.Warnings = append(x.r.Warnings, "runtime drift needs a reload: "+reason)
			return nil, nil, nil
		}
		r.Ops = append(r.Ops, extra...)
	}
	rt, err := host.ServerRuntime(r.Ops)
	if err != nil {
		return nil, nil, err
	}
	if err := addCertRotations(rt, fileOps); err != nil {
		return nil, nil, err
	}
	r.Ops = append(r.Ops, fileOps...)
	x.certOps = certOpsIn(fileOps)
	// Host tables whose entries change are loaded from their files;
	// any other file reloads.
	maps, ok := x.runtimeMaps(rt)
	if !ok {
		return nil, nil, nil
	}
	var drain []string
	var timeout time.Duration
	for _, o := range r.Ops {
		if o.Kind == classify.KindDel || o.Kind == classify.KindDrain {
			drain = append(drain, o.Backend+"/"+o.Server)
			timeout = max(timeout, d.drainTimeout(o.Backend))
		}
	}
	if len(drain) > 0 {
		rt.Drain = &host.Drain{Servers: drain, Timeout: timeout, Interval: x.o.DrainInterval}
	}
	var ops []string
	for _, o := range r.Ops {
		ops = append(ops, o.String())
	}
	for _, m := range maps {
		ops = append(ops, m.String())
	}
	return rt, ops, nil
}

// defaultDrainTimeout is a balancer's drain.timeout when the plan has none.
const defaultDrainTimeout = 30 * time.Second

// drainTimeout is the drain timeout of the balancer behind backend.
func (d *DevicePlan) drainTimeout(backend string) time.Duration {
	if s, ok := d.DrainTimeouts[backend]; ok {
		if t, err := time.ParseDuration(s); err == nil && t >= 0 {
			return t
		}
	}
	return defaultDrainTimeout
}

// runtimeChange runs a runtime change: the runtime script, lbc's
// comparison of what it read back, then the commit.
func (x *tx) runtimeChange(ctx context.Context, rt *host.Runtime, ops []string) (string, error) {
	c := x.hostChange()
	c.Runtime = rt
	x.rt = rt
	s, err := host.RuntimeScript(c)
	if err != nil {
		return StepStage, err
	}
	ra := &RuntimeApply{Ops: ops}
	rep, step, err := x.runScriptReport(ctx, s)
	if rep != nil && len(rt.Before) > 0 {
		if b, perr := host.ParseReadBack(rep.Output[host.StepRuntime], len(rt.Before)); perr == nil {
			x.certBefore = b.Answers
		}
	}
	if rep != nil && rt.Drain != nil {
		if dr, derr := host.ParseDrain(rep.Output[host.StepDrain]); derr == nil && !dr.Drained {
			ra.DrainTimedOut = dr.Left
			x.r.Warnings = append(x.r.Warnings, fmt.Sprintf("drain timeout (%s): sessions left were shut: %s",
				rt.Drain.Timeout, strings.Join(dr.Left, ", ")))
		}
	}
	if err != nil {
		return step, err
	}
	rb, err := verifyRuntime(rep, rt, []byte(x.dp.Desired.Config), x.dp.Desired.fileData, host.StepRuntimeVerify, true)
	if err == nil {
		err = x.verifyCerts(x.certOps, certAnswers(rb, rt))
	}
	if err != nil {
		return host.StepRuntimeVerify, err
	}
	ra.Pid = rb.Pid
	cs, err := host.CommitScript(c)
	if err != nil {
		return StepRemoveVIPs, err
	}
	step, err = x.runScript(ctx, cs)
	if err == nil {
		x.r.Runtime = ra
	}
	return step, err
}

// verifyRuntime compares what step read back (rt.ReadBack: show servers
// state, then show ssl cert of each rotated certificate, then show map of
// each table in rt.Maps) with cfg: every server's address, weight and
// state, and with maps (the file each path holds) the entries of rt.Maps;
// with samePid, the worker that answered before the runtime step and
// after it must be the same. It returns what it read back.
func verifyRuntime(rep *host.Report, rt *host.Runtime, cfg []byte, maps func(string) []byte, step string, samePid bool) (*host.ReadBack, error) {
	rb, err := host.ParseReadBack(rep.Output[step], len(rt.ReadBack))
	if err != nil {
		return nil, err
	}
	if samePid {
		before, _, _ := strings.Cut(strings.TrimSpace(string(rep.Output[host.StepRuntime])), "\n")
		if before != fmt.Sprintf("pid %d", rb.Pid) {
			return nil, fmt.Errorf("the worker changed during the runtime change: %.40s before, pid %d after", before, rb.Pid)
		}
	}
	if err := compareRuntime(cfg, rb.Answers[0]); err != nil {
		return nil, err
	}
	if err := compareMaps(rt.Maps, rb.Answers[len(rb.Answers)-len(rt.Maps):], maps); err != nil {
		return nil, err
	}
	return rb, nil
}

// certAnswers are the show ssl cert answers of rb: after show servers
// state, before the show map answers of rt.Maps.
func certAnswers(rb *host.ReadBack, rt *host.Runtime) []string {
	return rb.Answers[1 : len(rb.Answers)-len(rt.Maps)]
}

// maxDiffs bounds the differences an error lists.
const maxDiffs = 10

// compareRuntime compares a `show servers state` answer with cfg's
// servers; the error lists the differences (at most maxDiffs).
func compareRuntime(cfg []byte, answer string) error {
	want, err := classify.Servers(cfg)
	if err != nil {
		return err
	}
	diffs, err := runtimeDiffs(want, answer)
	if err != nil {
		return err
	}
	if len(diffs) == 0 {
		return nil
	}
	more := ""
	if len(diffs) > maxDiffs {
		more = fmt.Sprintf("; and %d more", len(diffs)-maxDiffs)
		diffs = diffs[:maxDiffs]
	}
	return fmt.Errorf("the runtime differs from the file: %s%s", strings.Join(diffs, "; "), more)
}

// runtimeDiffs lists how the runtime (a `show servers state` answer)
// differs from the servers want.
func runtimeDiffs(want []classify.Server, answer string) ([]string, error) {
	got, err := host.ParseServersState(answer)
	if err != nil {
		return nil, err
	}
	run := map[string]host.ServerState{}
	for _, g := range got {
		run[g.Backend+"/"+g.Server] = g
	}
	var diffs []string
	for _, w := range want {
		id := w.Backend + "/" + w.Name
		g, ok := run[id]
		if !ok {
			diffs = append(diffs, id+" is not running")
			continue
		}
		delete(run, id)
		if g.Addr != w.Addr {
			diffs = append(diffs, fmt.Sprintf("%s addr %s, file %s", id, g.Addr, w.Addr))
		}
		if g.Weight != w.Weight {
			diffs = append(diffs, fmt.Sprintf("%s weight %d, file %d", id, g.Weight, w.Weight))
		}
		st := "ready"
		if w.Maint {
			st = "maint"
		}
		if g.State != st {
			diffs = append(diffs, fmt.Sprintf("%s state %s, file %s", id, g.State, st))
		}
	}
	var extra []string
	for id := range run {
		extra = append(extra, id+" runs, not in the file")
	}
	sort.Strings(extra)
	return append(diffs, extra...), nil
}

// runtimeRollback puts back the file and the runtime values (txn.sh),
// compares the runtime with the old file, and disarms; when the runtime
// still differs, it reloads the old file once more (ReloadAgainScript).
func (x *tx) runtimeRollback(ctx context.Context, c host.Change) error {
	c.Runtime = x.rt
	s, err := host.RuntimeRollbackScript(c)
	if err != nil {
		return err
	}
	rep, err := runScript(ctx, s, x.lock, func(string) {})
	if err != nil && (rep.Failed != host.StepRollbackVerify || errors.Is(err, ErrConnectionLost) || errors.Is(err, errScriptTimeout)) {
		return err
	}
	if err == nil {
		var rb *host.ReadBack
		if rb, err = verifyRuntime(rep, x.rt, c.LiveConfig.Data, func(p string) []byte { return x.live.FileData[p] }, host.StepRollbackVerify, false); err == nil {
			err = verifyCertsBack(x.certBefore, certAnswers(rb, x.rt))
		}
		if err == nil {
			_, err = runScript(ctx, host.DisarmScript(c), x.lock, func(string) {})
			return err
		}
	}
	if err2 := x.reloadAgain(ctx, c); err2 != nil {
		return fmt.Errorf("%w; reloaded once more: %w", err, err2)
	}
	x.r.Warnings = append(x.r.Warnings, fmt.Sprintf("the runtime rollback left a difference (%v): reloaded the old file", err))
	return nil
}

// runtimeDrift lists how the running HAProxy (live.Runtime) differs from
// the live file, when that file is the one lbc applied last (else the
// file's own drift says enough): someone used the stats socket by hand.
// It is nil when they agree or the runtime was not read.
func runtimeDrift(live *Live) ([]string, error) {
	if !live.Runtime.Exists || !live.Config.Exists || live.State == nil || live.State.ConfigSHA256 != live.Config.Fingerprint() {
		return nil, nil
	}
	want, err := classify.Servers(live.Config.Data)
	if err != nil {
		return nil, nil // not lbc's unedited rendering: classify says why
	}
	return runtimeDiffs(want, string(live.Runtime.Data))
}

// joinDiffs joins differences, at most maxDiffs of them.
func joinDiffs(diffs []string) string {
	if len(diffs) > maxDiffs {
		return strings.Join(diffs[:maxDiffs], "; ") + fmt.Sprintf("; and %d more", len(diffs)-maxDiffs)
	}
	return strings.Join(diffs, "; ")
}

// driftOps are the operations that bring the running servers back to
// what desired says where ops leave them as they run: weights and
// states (From: the running value). reason says why the runtime cannot
// be brought back without a reload (a server running that desired does
// not have and ops do not delete, or the other way round, or another
// address); "" when it can.
func driftOps(desired []byte, running []host.ServerState, ops []classify.Op) ([]classify.Op, string) {
	want, err := classify.Servers(desired)
	if err != nil {
		return nil, "the new haproxy.cfg: " + err.Error()
	}
	type cover struct{ weight, state, add, del bool }
	covered := map[string]*cover{}
	for _, o := range ops {
		id := o.Backend + "/" + o.Server
		c := covered[id]
		if c == nil {
			c = &cover{}
			covered[id] = c
		}
		switch o.Kind {
		case classify.KindWeight, classify.KindDrain:
			c.weight = true
		case classify.KindState:
			c.state = true
		case classify.KindAdd:
			c.add = true
		case classify.KindDel:
			c.del = true
		}
	}
	run := map[string]host.ServerState{}
	for _, g := range running {
		run[g.Backend+"/"+g.Server] = g
	}
	var out []classify.Op
	for _, w := range want {
		id := w.Backend + "/" + w.Name
		c := covered[id]
		if c == nil {
			c = &cover{}
		}
		g, ok := run[id]
		delete(run, id)
		switch {
		case c.add && ok:
			return nil, id + " runs already (added on the stats socket?)"
		case c.add:
			continue
		case !ok:
			return nil, id + " is not running (deleted on the stats socket?)"
		case g.Addr != w.Addr:
			return nil, fmt.Sprintf("%s runs with address %s, the file says %s", id, g.Addr, w.Addr)
		}
		st := "ready"
		if w.Maint {
			st = "maint"
		}
		if g.State != st && !c.state {
			out = append(out, classify.Op{Kind: classify.KindState, Backend: w.Backend, Server: w.Name, From: g.State, To: st})
		}
		if g.Weight != w.Weight && !c.weight {
			k := classify.KindWeight
			if w.Weight == 0 {
				k = classify.KindDrain
			}
			out = append(out, classify.Op{Kind: k, Backend: w.Backend, Server: w.Name, From: strconv.Itoa(g.Weight), To: strconv.Itoa(w.Weight)})
		}
	}
	var extra []string
	for id := range run {
		if c := covered[id]; c == nil || !c.del {
			extra = append(extra, id)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, strings.Join(extra, ", ") + " runs, not in the file (added on the stats socket?)"
	}
	return out, ""
}
