package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"lbc/reconcile"
)

// dialer returns the SSH dialer for the connection flags. Host keys are
// always checked against known_hosts; there is no way around it.
func (e *env) dialer() (reconcile.Dialer, error) {
	kh := e.args.SSH.KnownHosts
	if kh == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("find known_hosts: %w (use --known-hosts)", err)
		}
		kh = filepath.Join(home, ".ssh", "known_hosts")
	}
	if _, err := os.Stat(kh); err != nil {
		return nil, fmt.Errorf("known_hosts: %w (hosts are always checked; use --known-hosts FILE)", err)
	}
	// known_hosts and the key are read once, for every device.
	d, err := reconcile.NewSSHDialer(reconcile.SSHConfig{KnownHosts: kh, KeyFile: e.args.SSH.KeyFile, ConnectTimeout: e.args.SSH.ConnectTimeout, MaxOutput: e.args.SSH.MaxRead})
	if err != nil {
		return nil, err
	}
	return d.Dial, nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(w any) bool {
	if t, ok := w.(termWriter); ok {
		w = t.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// color reports whether human output to w may use colour.
func color(w any) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

// limits are the bounds on what a host returns and how long lbc waits
// (--max-read, --read-timeout, --start-timeout, --script-timeout).
func (e *env) limits() reconcile.Limits {
	return reconcile.Limits{MaxRead: e.args.SSH.MaxRead, ReadTimeout: e.args.SSH.ReadTimeout, StartTimeout: e.args.SSH.StartTimeout,
		ScriptTimeout: e.args.SSH.ScriptTimeout}
}
