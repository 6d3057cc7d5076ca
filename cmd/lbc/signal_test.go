package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowTree is a spec tree whose one instance CUE takes many seconds to
// evaluate: a comprehension of 30,000 balancers.
func slowTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "specs/devices/devices.cue"), watchDevices)
	writeFile(t, filepath.Join(dir, "specs/balancers/many.cue"), `package spec

import "list"

balancers: {for i in list.Range(0, 30000, 1) {
	"b\(i)": {vips: [{address: "203.0.113.10", port: 1 + i}], nodes: [{address: "198.51.100.11", port: 8080}]}
}}
`)
	return dir
}

// TestLoadStopsOnSignal: SIGINT and SIGTERM stop lbc within a second while
// CUE evaluates the specs (which it cannot interrupt), for a one-shot
// command (exit 1, "load specs: context canceled") and for watch (exit 0,
// "watch: stopped").
func TestLoadStopsOnSignal(t *testing.T) {
	for _, c := range []struct {
		args []string
		sig  os.Signal
	}{
		{[]string{"validate", "specs"}, os.Interrupt},
		{[]string{"compile", "specs", "-o", "out"}, syscall.SIGTERM},
		{[]string{"watch", "specs"}, os.Interrupt},
		{[]string{"watch", "specs", "-o", "out"}, syscall.SIGTERM},
	} {
		t.Run(strings.Join(c.args, "_")+"_"+c.sig.String(), func(t *testing.T) {
			dir := slowTree(t)
			p := startWatch(t, dir, c.args...)
			time.Sleep(700 * time.Millisecond) // into CUE's evaluation
			start := time.Now()
			err := p.Stop(c.sig)
			took := time.Since(start)
			if took > time.Second {
				t.Errorf("lbc %s ended %v after %v, want within a second", strings.Join(c.args, " "), took.Round(time.Millisecond), c.sig)
			}
			if c.args[0] == "watch" {
				if err != nil || !strings.Contains(p.Stderr(), "watch: stopped\n") {
					t.Errorf("lbc watch after %v: %v, want exit 0 and \"watch: stopped\"; stderr:\n%s", c.sig, err, p.Stderr())
				}
				if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
					t.Error("out written")
				}
				return
			}
			if err == nil || !strings.Contains(p.Stderr(), "load specs: context canceled") {
				t.Errorf("lbc %s after %v: %v, want an error \"load specs: context canceled\"; stderr:\n%s", c.args[0], c.sig, err, p.Stderr())
			}
		})
	}
}
