package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// ForTest starts a lab for a test and closes it in t.Cleanup. Without root,
// or with a tool missing, it skips the test, unless the environment variable
// CI is set: then it installs missing tools (EnsureTools) and fails the test
// when it cannot run a lab. An empty opts.Name and a zero opts.Index pick a
// free index and the name t<index>, so test packages run in parallel.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	ci := os.Getenv("CI") != ""
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("lab: needs root (CI is set, so this is a failure, not a skip)")
		}
		t.Skip("lab: needs root")
	}
	if missing := MissingPackages(); len(missing) > 0 {
		if !ci {
			t.Skipf("lab: missing packages %s (install them, or set CI=1 to have the test install them)", strings.Join(missing, " "))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err := EnsureTools(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s: %d devices, %d nodes in %s, started in %v (dir %s)",
		l.Name, len(l.Devices), len(l.Nodes), l.Prefix, time.Since(start).Round(time.Millisecond), l.Dir)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab %s: close: %v", l.Name, err)
		}
	})
	return l
}
