package host

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The drain step against a real HAProxy 2.6 with a request in flight to
// the server being drained: the step sets weight 0, reports the session
// in its progress markers, and ends at the timeout with "timeout" and the
// server still holding it (a warning for the controller, not a failure);
// once the request is done, the same step ends "drained".
func TestDrainRealHAProxy(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "slow\n")
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl)
	defer backend.Close()
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := fl.Addr().String()
	fl.Close()

	dir, err := os.MkdirTemp("", "lbcdr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := "global\n    stats socket " + dir + "/haproxy.sock mode 600 level admin\n" +
		"defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n" +
		"frontend fe\n    bind " + front + "\n    default_backend be_web\n" +
		"backend be_web\n    balance roundrobin\n    server n1 " + bl.Addr().String() + " weight 1\n"
	startHAProxy(t, dir, cfg)

	got := make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + front + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend")
	}

	h := Host{StateDir: dir}
	drain := func() (*Report, bool) {
		s := newScript(false)
		s.step(StepDrain, drainCmd(h, Drain{Servers: []string{"be_web/n1"}, Timeout: time.Second, Interval: 200 * time.Millisecond}))
		cmd := exec.Command("sh", "-c", stepFunc+s.String())
		out, err := cmd.Output()
		rep := s.NewReport()
		var progress []string
		for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if p, ok := ParseProgress(l); ok {
				progress = append(progress, p)
			}
			rep.Line(l)
		}
		if err == nil && len(progress) > 0 && progress[0] != "be_web/n1:1" {
			t.Errorf("progress %q, want be_web/n1:1 at each poll", progress)
		}
		return rep, err == nil
	}
	rep, ok := drain()
	if !ok {
		t.Fatal("the drain step failed")
	}
	dr, err := ParseDrain(rep.Output[StepDrain])
	if err != nil || dr.Drained || strings.Join(dr.Left, " ") != "be_web/n1:1" {
		t.Errorf("with a request in flight: %+v %v, want a timeout with be_web/n1:1", dr, err)
	}
	if st := cli(t, dir, "show servers state be_web"); !hasWeight0(st) {
		t.Errorf("weight not 0 after the drain:\n%s", st)
	}
	close(release)
	if b := <-got; b != "slow\n" {
		t.Errorf("the request in flight got %q, want it served", b)
	}
	rep, ok = drain()
	if dr, err := ParseDrain(rep.Output[StepDrain]); !ok || err != nil || !dr.Drained {
		t.Errorf("after the request: %+v %v", dr, err)
	}
}

// hasWeight0 reports whether n1's user weight (column 8 of show servers
// state) is 0.
func hasWeight0(state string) bool {
	for _, l := range strings.Split(state, "\n") {
		f := strings.Fields(l)
		if len(f) > 7 && f[3] == "n1" {
			w, err := strconv.Atoi(f[7])
			return err == nil && w == 0
		}
	}
	return false
}

// cli sends one command to the stats socket in dir.
func cli(t *testing.T, dir, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", dir+"/haproxy.sock", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, cmd+"\n")
	b, _ := io.ReadAll(c)
	return string(b)
}
