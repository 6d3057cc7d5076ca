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

// keepalivedScript is the path of device d's keepalived control script; its
// reload command is "sh <script>".
func (d *Device) keepalivedScript() string { return filepath.Join(d.Dir, "keepalived-ctl.sh") }

// keepalivedScriptText is the device's keepalived control script, which
// lbc runs over SSH as the device's keepalived reload command (the schema
// allows no '$' or quotes in a command, so the logic lives in a file):
//
//   - keepalived of this device runs: SIGHUP (reload its config);
//   - it does not run and the config exists: start it, as a host's init
//     system would (the first apply of an HA balancer writes the first
//     keepalived.conf, then "reloads"), and wait up to 10 s for its pid file;
//   - no config: stop it if it runs (a rolled-back first apply), else
//     nothing.
//
// keepalived runs in the foreground (-n) of its own session (setsid),
// logging to <device dir>/keepalived.log (-l -D), with its pid files in the
// state directory so that one instance runs per namespace.
func keepalivedScriptText(d *Device) string {
	start := shquote.Join("keepalived", "-n", "-l", "-D",
		"-f", d.KeepalivedConfig,
		"-p", d.keepalivedPidFile(),
		"-r", filepath.Join(d.StateDir, "keepalived-vrrp.pid"),
		"-c", filepath.Join(d.StateDir, "keepalived-checkers.pid"),
		"-b", filepath.Join(d.StateDir, "keepalived-bfd.pid"))
	return fmt.Sprintf(`#!/bin/sh
# lbc lab device %[1]s: reload keepalived, start it when it does not run,
# stop it when its config is gone. Written by the lab (internal/lab).
pidfile=%[2]s
conf=%[3]s
pid=
if [ -s "$pidfile" ]; then
	pid=$(cat "$pidfile")
	if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$conf"; then
		pid=
	fi
fi
if [ ! -f "$conf" ]; then
	[ -n "$pid" ] && kill -TERM "$pid"
	exit 0
fi
if [ -n "$pid" ]; then
	exec kill -HUP "$pid"
fi
rm -f "$pidfile"
setsid %[4]s >>%[5]s 2>&1 </dev/null &
i=0
while [ $i -lt 100 ]; do
	if [ -s "$pidfile" ]; then
		exit 0
	fi
	sleep 0.1
	i=$((i+1))
done
echo "keepalived did not start within 10s; see %[5]s" >&2
exit 1
`, d.Name, shquote.Quote(d.keepalivedPidFile()), shquote.Quote(d.KeepalivedConfig), start,
		shquote.Quote(filepath.Join(d.Dir, "keepalived.log")))
}

func writeKeepalivedScript(d *Device) error {
	return os.WriteFile(d.keepalivedScript(), []byte(keepalivedScriptText(d)), 0o755)
}

// StartKeepalived starts keepalived in device dev's namespace with the
// config at Device.KeepalivedConfig (which must exist: lbc's apply writes
// it) through the device's control script (see Device.KeepalivedReload),
// and waits until it runs. The lab must have been started with
// Options.Keepalived. When keepalived already runs, it reloads it.
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
	if _, err := run(ctx, "", "ip", "netns", "exec", d.NS, "sh", d.keepalivedScript()); err != nil {
		return fmt.Errorf("lab %s: start keepalived: %w", d.Name, err)
	}
	err = poll(ctx, startTimeout, func() error {
		if len(l.keepalivedPids(d)) == 0 {
			return errors.New("keepalived exited; see keepalived.log")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab %s: start keepalived: %w", d.Name, err)
	}
	return nil
}

// KeepalivedRunning reports whether device dev's keepalived runs.
func (l *Lab) KeepalivedRunning(dev int) bool {
	d, err := l.device(dev)
	return err == nil && len(l.keepalivedPids(d)) > 0
}

func (l *Lab) keepalivedPids(d *Device) []int {
	return l.procsIn(d.NS, func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "keepalived ") && strings.Contains(cmdline, " "+d.KeepalivedConfig+" ")
	})
}

// StopKeepalived stops device dev's keepalived (SIGTERM: it releases its
// VIPs; SIGKILL after 3 s).
func (l *Lab) StopKeepalived(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	if err := stopPids(ctx, l.keepalivedPids(d)); err != nil {
		return fmt.Errorf("lab %s: stop keepalived: %w", d.Name, err)
	}
	return nil
}
