package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// nodeConfig makes a node's haproxy answer every HTTP request with 200 and
// the node's name as the whole body; a request for SlowPath gets the same
// answer after SlowFor (HAProxy's tarpit, answering 200), to hold a
// session open on the node (a drain waits for it).
const nodeConfig = `# lbc lab backend node %[1]s
global
	maxconn 2048

defaults
	mode http
	timeout connect 2s
	timeout client 10s
	timeout server 10s
	timeout tarpit %[4]dms

frontend node
	bind %[2]s:%[3]d
	http-request tarpit deny_status 200 content-type text/plain string %[1]s if { path_beg %[5]s }
	http-request return status 200 content-type text/plain string %[1]s
`

// SlowPath is the path a lab node answers after SlowFor.
const SlowPath = "/slow"

// SlowFor is how long a lab node takes to answer SlowPath.
const SlowFor = 3 * time.Second

func (l *Lab) startNode(ctx context.Context, i int) error {
	n := &l.Nodes[i-1]
	if err := l.makeNamespace(ctx, n.NS, fmt.Sprintf("%s-n%d", l.Bridge, i), n.Address); err != nil {
		return fmt.Errorf("lab %s: node %s: namespace: %w", l.Name, n.Name, err)
	}
	dir := filepath.Join(l.Dir, n.NS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(nodeConfig, n.Name, n.Address, n.Port, SlowFor.Milliseconds(), SlowPath)), 0o644); err != nil {
		return err
	}
	if _, err := run(ctx, "", "ip", "netns", "exec", n.NS, "/usr/sbin/haproxy",
		"-D", "-p", filepath.Join(dir, "haproxy.pid"), "-f", cfg); err != nil {
		return fmt.Errorf("lab %s: node %s: %w", l.Name, n.Name, err)
	}
	url := n.URL()
	return poll(ctx, startTimeout, func() error {
		body, err := l.Get(ctx, url)
		if err == nil && body != n.Name {
			err = fmt.Errorf("node %s answers %q", n.Name, body)
		}
		if err != nil {
			return fmt.Errorf("lab %s: node %s: %w", l.Name, n.Name, err)
		}
		return nil
	})
}

// URL is the node's http://address:port/.
func (n Node) URL() string { return fmt.Sprintf("http://%s:%d/", n.Address, n.Port) }

func execCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.WaitDelay = time.Second
	return cmd
}
