package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lbc/internal/shquote"
)

func (d *Device) keepalivedPidFile() string { return filepath.Join(d.StateDir, "keepalived.pid") }

// StartKeepalived starts keepalived in device dev's namespace with the
// config at Device.KeepalivedConfig (which must exist: lbc's apply writes
// it). The lab must have been started with Options.Keepalived.
//
// keepalived runs in the foreground (-n) of a detached shell, logging to
// <device dir>/keepalived.log (-l -D), with its three pid files in the state
// directory so that one instance runs per namespace.
func (l *Lab) StartKeepalived(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	if !l.keepalived {
		return fmt.Errorf("lab %s: start keepalived: lab started without Options.Keepalived", d.Name)
	}
	if _, err := os.Stat(d.KeepalivedConfig); err != nil {
		return fmt.Errorf("lab %s: start keepalived: %w", d.Name, err)
	}
	pid := d.keepalivedPidFile()
	os.Remove(pid)
	args := shquote.Join("keepalived", "-n", "-l", "-D",
		"-f", d.KeepalivedConfig,
		"-p", pid,
		"-r", filepath.Join(d.StateDir, "keepalived-vrrp.pid"),
		"-c", filepath.Join(d.StateDir, "keepalived-checkers.pid"),
		"-b", filepath.Join(d.StateDir, "keepalived-bfd.pid"))
	script := "exec " + args + " >>" + shquote.Quote(filepath.Join(d.Dir, "keepalived.log")) + " 2>&1 </dev/null &"
	if _, err := run(ctx, "", "ip", "netns", "exec", d.NS, "setsid", "sh", "-c", script); err != nil {
		return fmt.Errorf("lab %s: start keepalived: %w", d.Name, err)
	}
	err = poll(ctx, startTimeout, func() error {
		p, err := readPid(pid)
		if err != nil {
			return err
		}
		if len(livePids([]int{p})) == 0 {
			return errors.New("keepalived exited; see keepalived.log")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab %s: start keepalived: %w", d.Name, err)
	}
	return nil
}

// StopKeepalived stops device dev's keepalived (SIGTERM: it releases its
// VIPs; SIGKILL after 3 s).
func (l *Lab) StopKeepalived(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	pids := l.procsIn(d.NS, func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "keepalived ") && strings.Contains(cmdline, d.KeepalivedConfig)
	})
	if err := stopPids(ctx, pids); err != nil {
		return fmt.Errorf("lab %s: stop keepalived: %w", d.Name, err)
	}
	return nil
}
