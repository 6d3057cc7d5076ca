package lab

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStartCleansLeftovers starts a lab over the leftovers of a "crashed"
// one of the same name and index (its locks released, nothing closed).
func TestStartCleansLeftovers(t *testing.T) {
	old := ForTest(t, Options{Name: "left", Devices: 2, Nodes: 1})
	defer os.RemoveAll(old.Dir)
	oldPid, err := readPid(old.Devices[0].haproxyPidFile())
	if err != nil {
		t.Fatal(err)
	}
	old.release() // the crash: the process is gone, its locks with it

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Start(ctx, Options{Name: "left", Index: old.Index, Devices: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(livePids([]int{oldPid})) > 0 {
		t.Errorf("haproxy %d of the crashed lab still runs", oldPid)
	}
	for _, ns := range []string{"left-d2", "left-n1"} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s of the crashed lab still there", ns)
		}
	}
	if _, err := l.Exec(ctx, 1, "test", "-S", l.Devices[0].StateDir+"/master.sock"); err != nil {
		t.Errorf("new lab's haproxy: %v", err)
	}

	// A second lab of the same name in this process is refused, and
	// leaves the running one alone.
	if _, err := Start(ctx, Options{Name: "left", Devices: 1}); err == nil {
		t.Error("a second lab named left started")
	}
	// A failed start (a directory the schema would refuse) leaves nothing.
	if _, err := Start(ctx, Options{Name: "bad", Devices: 1, Dir: filepath.Join(t.TempDir(), "a b")}); err == nil {
		t.Error("start with a bad dir succeeded")
	}
	if _, err := os.Stat(filepath.Join(netnsDir, "bad-d1")); err == nil {
		t.Error("namespace bad-d1 left after a failed start")
	}
	if _, err := l.Exec(ctx, 1, "true"); err != nil {
		t.Errorf("running lab harmed: %v", err)
	}
}
