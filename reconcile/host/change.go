package host

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Change is one device's change, as narrow as its scripts need it: the
// device's paths and commands, the files to install, the addresses to add
// and remove, and the live files as the lock holder read them (kept as
// last-known-good, restored by a rollback).
type Change struct {
	// Device names the device (in a keepalived.conf without instances).
	Device string
	Host   Host
	// Config is the haproxy.cfg to install.
	Config string
	// ManageKeepalived: Keepalived is the keepalived.conf to install, in
	// the same transaction.
	ManageKeepalived bool
	Keepalived       string
	// VIPsAdd and VIPsRemove are the addresses to add and remove, VIPs
	// every address lbc manages after the change ("addr/prefix dev iface").
	VIPsAdd, VIPsRemove, VIPs []string
	// LiveConfig and LiveKeepalived are the live files as read under the
	// lock.
	LiveConfig, LiveKeepalived File
	// State is the state.json that write-state writes.
	State []byte
	// Runtime, when set, makes the change a runtime one: no reload, the
	// commands go to the stats socket (see Runtime, RuntimeScript).
	Runtime *Runtime
	// Files are the auxiliary files to write (new, or changed on the
	// host); FilesRemove the paths of auxiliary files that lbc wrote
	// before (state.json lists them) and no longer wants. See AuxFile.
	Files       []AuxFile
	FilesRemove []string
}

// ChangeScript is the whole transaction after the lock, as one script,
// which carries every file it writes in its own text (written with the
// shell's printf: no process):
//
//   - stage: write the new files beside the live ones and run the device's
//     check commands on them;
//   - keep-last-good: keep the live files in <stateDir>/last-good
//     (written from the bytes read under the lock);
//   - arm: install the rollback script (RollbackFile) as <stateDir>/txn.sh;
//
// which change nothing the host runs; then:
//
//   - add-vips: new addresses first (a config binding an address the host
//     does not have yet fails to load);
//   - save-server-state: for the new process (failing is a warning);
//   - swap: rename the staged files over the live ones;
//   - reload, and verify: wait on the host until the new config runs with
//     every frontend bound, or fail;
//   - remove-vips: the addresses lbc added and no longer wants;
//   - write-state: write the next state.json beside the live one, rename
//     it into place and disarm (empty txn.sh: only a non-empty one is
//     armed).
//
// VIPs are /32 or /128 (compiler), each its own primary address; but when
// a removed one has a subnet's prefix (added by an older lbc), deleting it
// may delete the subnet's secondaries too (unless promote_secondaries is
// set), so the wanted ones are replaced after it.
//
// Once the host has the whole script it runs to its end even if the
// connection is cut (it ignores SIGHUP and SIGPIPE): it commits, or it
// fails and the lock holder rolls back what it armed. Notes says what the
// script leaves out (no check command).
func ChangeScript(c Change, v Verifier) (*Script, error) {
	if c.Runtime != nil {
		return nil, errors.New("change script: a runtime change is sent by RuntimeScript")
	}
	rm, err := removeVIPsCmd(c)
	if err != nil {
		return nil, err
	}
	after, err := v.After(c.Host, []byte(c.Config))
	if err != nil {
		return nil, err
	}
	h, ka := c.Host, c.ManageKeepalived
	next, err := writeFileCmd(h.stateTmp(), string(c.State))
	if err != nil {
		return nil, err
	}
	s, err := prepareScript(c, func(s *Script) {
		s.warnStep(StepSaveServerState, saveServerStateCmd(h), "save server state failed (a host whose HAProxy does not run yet has none)")
	})
	if err != nil {
		return nil, err
	}
	// A daemon the reload commands start inherits neither the device lock
	// (flock -o keeps it) nor the session (a script's stdin is /dev/null).
	before := v.Before(h)
	if !v.NeedsBefore(c.LiveConfig.Data, []byte(c.Config)) {
		before = "lbc_before="
	}
	reload := before + "\n  ( " + h.Reload + " )"
	if ka && h.KeepalivedReload != "" {
		reload += " && { ( " + h.KeepalivedReload + " ) || { echo 'keepalived reload failed' >&2; false; }; }"
	}
	s.step(StepReload, reload)
	s.step(StepVerify, after)
	s.step(StepRemoveVIPs, rm)
	s.step(StepCommit, commitCmd(h, next))
	return s, nil
}

// prepareScript starts the script of a change with the steps that a
// reload and a runtime change share: stage, keep-last-good, arm-rollback,
// add-vips, then the steps beforeSwap adds (when not nil), then swap.
func prepareScript(c Change, beforeSwap func(*Script)) (*Script, error) {
	rb, err := RollbackFile(c)
	if err != nil {
		return nil, err
	}
	h, ka := c.Host, c.ManageKeepalived
	add := ":"
	if len(c.VIPsAdd) > 0 {
		if add, err = addVIPCmd(h, c.VIPsAdd); err != nil {
			return nil, err
		}
	}
	var werr error
	write := func(path, data string) string {
		w, err := writeFileCmd(path, data)
		werr = cmp.Or(werr, err)
		return w
	}
	stage := []string{write(staged(h.Config), c.Config)}
	for _, f := range c.Files {
		w, err := stageAuxCmd(f)
		werr = cmp.Or(werr, err)
		stage = append(stage, w)
	}
	checked := staged(h.Config)
	if len(c.Files) > 0 {
		checked = h.Config + checkSuffix
		stage = append(stage, write(checked, checkConfig(c.Config, c.Files)))
	}
	if ka {
		stage = append(stage, write(staged(h.KeepalivedConfig), c.Keepalived))
	}
	arm := write(h.TxnPath(), rb)
	if werr != nil {
		return nil, werr
	}
	s := newScript(false)
	if h.Check != "" {
		stage = append(stage, fmt.Sprintf("{ %s || { echo 'check haproxy.cfg failed' >&2; false; }; }", checkCmd(h.Check, checked)))
	} else {
		s.Notes = append(s.Notes, "no haproxy check command: config not checked on the host")
	}
	if ka && h.KeepalivedCheck != "" {
		stage = append(stage, fmt.Sprintf("{ %s || { echo 'check keepalived.conf failed' >&2; false; }; }", checkCmd(h.KeepalivedCheck, staged(h.KeepalivedConfig))))
	}
	if checked != staged(h.Config) {
		stage = append(stage, removeCmd(checked))
	}
	s.step(StepStage, strings.Join(stage, " &&\n  "))
	keep := keepLastGoodCmd(h.Config, c.LiveConfig, h.LastGood("haproxy.cfg"))
	for _, p := range c.auxTouched() {
		keep += " &&\n  " + keepAuxCmd(h, p)
	}
	if ka {
		keep += " &&\n  " + keepLastGoodCmd(h.KeepalivedConfig, c.LiveKeepalived, h.LastGood("keepalived.conf"))
	}
	s.step(StepKeepLastGood, keep)
	// The rollback script is written in place: the holder runs it only
	// once this script has ended, and should the script die while writing
	// it, nothing has changed yet that a part of it could undo wrongly
	// (last-good is the live file now).
	s.step(StepArm, arm)
	s.step(StepAddVIPs, add)
	var swaps []string
	for _, p := range auxPaths(c.Files) {
		swaps = append(swaps, swapCmd(p))
	}
	if len(c.FilesRemove) > 0 {
		swaps = append(swaps, removeCmd(c.FilesRemove...))
	}
	swap := strings.Join(append(swaps, swapCmd(h.Config)), " && ")
	if ka {
		swap += " && " + swapCmd(h.KeepalivedConfig)
	}
	if beforeSwap != nil {
		beforeSwap(s)
	}
	s.step(StepSwap, swap)
	return s, nil
}

// removeVIPsCmd removes the addresses lbc added and no longer wants.
// VIPs are /32 or /128 (compiler), each its own primary address; but when
// a removed one has a subnet's prefix (added by an older lbc), deleting it
// may delete the subnet's secondaries too (unless promote_secondaries is
// set), so the wanted ones are replaced after it.
func removeVIPsCmd(c Change) (string, error) {
	if len(c.VIPsRemove) == 0 {
		return ":", nil
	}
	h := c.Host
	rm, err := delVIPCmd(h, c.VIPsRemove)
	if err != nil {
		return "", err
	}
	if len(c.VIPs) > 0 && subnetSized(c.VIPsRemove) {
		again, err := addVIPCmd(h, c.VIPs)
		if err != nil {
			return "", err
		}
		rm += " && " + again
	}
	return rm, nil
}

// commitCmd writes the next state.json (next writes it beside the live
// one), renames it into place and disarms (an empty txn.sh is not armed:
// a redirection, no process).
func commitCmd(h Host, next string) string {
	return fmt.Sprintf("%s && mv -f %s %s && : > %s && %s", next, q(h.stateTmp()), q(h.StatePath()), q(h.TxnPath()), clearServerStateCmd(h))
}

// BeforeChange reports whether a failure at step left the host as it was:
// the steps up to arm change nothing the host runs.
func BeforeChange(step string) bool {
	switch step {
	case StepStage, StepKeepLastGood, StepArm:
		return true
	}
	return false
}

// keepLastGoodCmd keeps the live file as last-good, or removes a stale
// last-good copy when the live file is absent. f is the live file as the
// lock holder read it: under the lock, its bytes are the live file's, so
// last-good is written from them with the shell's printf (no process).
// A file a shell word cannot hold (a NUL byte, from a hand edit) is
// linked instead, or copied where the state directory is on another file
// system; the swap then renames the new file over the live name, so
// last-good keeps the old bytes either way.
func keepLastGoodCmd(live string, f File, good string) string {
	if !f.Exists {
		return "rm -f " + q(good)
	}
	dir := mkdirCmd(path.Dir(good))
	if w, err := writeFileCmd(good, string(f.Data)); err == nil {
		return dir + " && " + w
	}
	tmp := good + ".lbc-tmp"
	return fmt.Sprintf("%s && { ln -f %s %s 2>/dev/null || { cp %s %s && mv -f %s %s; }; }",
		dir, q(live), q(good), q(live), q(tmp), q(tmp), q(good))
}

// CleanStagedCommand removes what a change script wrote before it changed
// anything the host runs (after a failure there), and disarms.
func CleanStagedCommand(c Change) string {
	return removeCmd(append(stagedList(c), c.Host.TxnPath())...)
}

// stagedList is every file a change script writes before it changes
// anything the host runs.
func stagedList(c Change) []string {
	h := c.Host
	fs := []string{staged(h.Config), h.stateTmp()}
	if c.ManageKeepalived {
		fs = append(fs, staged(h.KeepalivedConfig))
	}
	if len(c.Files) > 0 {
		fs = append(fs, h.Config+checkSuffix)
	}
	for _, p := range auxPaths(c.Files) {
		fs = append(fs, staged(p))
	}
	return fs
}

// auxTouched are the paths of the auxiliary files the change writes or
// removes, sorted.
func (c Change) auxTouched() []string {
	ps := append(auxPaths(c.Files), c.FilesRemove...)
	sort.Strings(ps)
	return ps
}

// RollbackFile is the shell script that puts the host back as the lock
// holder found it; the change script arms it as <stateDir>/txn.sh. It is
// idempotent: running it twice leaves the same host.
func RollbackFile(c Change) (string, error) {
	h := c.Host
	var b strings.Builder
	b.WriteString("# lbc rollback: written by apply, run on failure or when the controller's session ends\nrc=0\n")
	fmt.Fprintf(&b, "%s\n", removeCmd(stagedList(c)...))
	restore := func(f File, live, good string) {
		if f.Exists {
			tmp := live + ".lbc-rb"
			fmt.Fprintf(&b, "cp %s %s && mv -f %s %s || rc=1\n", q(good), q(tmp), q(tmp), q(live))
		} else {
			fmt.Fprintf(&b, "rm -f %s || rc=1\n", q(live))
		}
	}
	restore(c.LiveConfig, h.Config, h.LastGood("haproxy.cfg"))
	for _, p := range c.auxTouched() {
		fmt.Fprintf(&b, "%s || rc=1\n", restoreAuxCmd(h, p))
	}
	switch {
	case c.ManageKeepalived && c.LiveKeepalived.Exists:
		restore(c.LiveKeepalived, h.KeepalivedConfig, h.LastGood("keepalived.conf"))
	case c.ManageKeepalived:
		// The first keepalived.conf. Once swap put it in place, the
		// apply's reload may have started (or reloaded) keepalived with
		// its instances; removing the file would not stop them
		// (keepalived keeps its config when a reload finds none). So
		// when the file is there, replace it with one without instances
		// and reload keepalived (below): the VIPs of the rolled-back
		// change are released. That file stays: the next plan shows it
		// as the live keepalived.conf, diffed against the rendered one,
		// with state.json as it was, so the whole change again; should
		// the device leave HA instead, the file (no instance) is left
		// alone. When swap did not run, there is no file and nothing
		// to reload.
		tmp := h.KeepalivedConfig + ".lbc-rb"
		fmt.Fprintf(&b, "if [ -e %s ]; then printf '%%s' %s > %s && mv -f %s %s || rc=1; fi\n",
			q(h.KeepalivedConfig), q(EmptyKeepalived(c.Device)), q(tmp), q(tmp), q(h.KeepalivedConfig))
	}
	if len(c.VIPsRemove) > 0 {
		cmd, err := addVIPCmd(h, c.VIPsRemove)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s || rc=1\n", cmd)
	}
	switch {
	case c.Runtime != nil:
		b.WriteString(runtimeUndo(h, c.Runtime))
	case c.LiveConfig.Exists:
		fmt.Fprintf(&b, "( %s ) || rc=1\n", h.Reload)
	}
	if c.ManageKeepalived && h.KeepalivedReload != "" {
		if c.LiveKeepalived.Exists {
			fmt.Fprintf(&b, "( %s ) || rc=1\n", h.KeepalivedReload)
		} else {
			fmt.Fprintf(&b, "if [ -e %s ]; then ( %s ) || rc=1; fi\n", q(h.KeepalivedConfig), h.KeepalivedReload)
		}
	}
	if len(c.VIPsAdd) > 0 {
		cmd, err := delVIPCmd(h, c.VIPsAdd)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s || rc=1\n", cmd)
		// Deleting a subnet's primary address deletes its secondaries:
		// put back every address lbc had before (only VIPs with a subnet's
		// prefix, added by an older lbc, can be one).
		var old []string
		isNew := map[string]bool{}
		for _, v := range c.VIPsAdd {
			isNew[v] = true
		}
		for _, v := range c.VIPs {
			if !isNew[v] {
				old = append(old, v)
			}
		}
		if old = append(old, c.VIPsRemove...); len(old) > 0 && subnetSized(c.VIPsAdd) {
			cmd, err := addVIPCmd(h, old)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s || rc=1\n", cmd)
		}
	}
	b.WriteString("exit $rc\n")
	return b.String(), nil
}

// RollbackScript runs the armed rollback script, waits for the old config
// to run again, and disarms, in one script (steps rollback and
// rollback-verify). It refuses to run (ExitNotArmed) when the lock holder
// has rolled back already.
func RollbackScript(c Change, v Verifier) (*Script, error) {
	h := c.Host
	s := newScript(true)
	s.step(StepRollback, v.Before(h)+"\n  sh "+q(h.TxnPath()))
	disarm := removeCmd(h.TxnPath())
	if c.LiveConfig.Exists {
		after, err := v.After(h, c.LiveConfig.Data)
		if err != nil {
			return nil, err
		}
		s.step(StepRollbackVerify, "{ "+after+"\n  } && "+disarm)
	} else {
		s.step(StepRollbackVerify, disarm)
	}
	return s, nil
}

// ReloadAgainScript reloads the restored config once more, verifies it
// and disarms: for a rollback whose reload signal was lost (a reload
// signalled while the one before it is still under way can be: HAProxy's
// master re-executes itself on each). Only for a change whose live config
// exists.
func ReloadAgainScript(c Change, v Verifier) (*Script, error) {
	h := c.Host
	after, err := v.After(h, c.LiveConfig.Data)
	if err != nil {
		return nil, err
	}
	s := newScript(true)
	s.step(StepRollback, v.Before(h)+"\n  ( "+h.Reload+" ) &&\n  { "+after+"\n  } && "+removeCmd(h.TxnPath()))
	return s, nil
}

// EmptyKeepalived is the keepalived.conf of a device that lbc gave HA
// balancers before and that carries none now: no VRRP instance.
func EmptyKeepalived(device string) string {
	return "# generated by lbc; do not edit (device " + device + "): no HA balancer on this device\n" +
		"global_defs {\n    script_user root\n    enable_script_security\n}\n"
}
