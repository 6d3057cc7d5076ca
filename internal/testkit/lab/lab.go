// Package lab runs real HAProxy hosts on one machine for end-to-end tests,
// benchmarks and the demo: each device is a network namespace on a bridge
// with its own sshd and master-worker haproxy, each backend node a namespace
// with a tiny HTTP server. It needs root; it leaves placement, rendering and
// applying configs to lbc itself.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"lbc/internal/par"
)

// Options say what lab to build.
type Options struct {
	// Name is a short prefix (1-5 characters, [a-z0-9], starting with a
	// letter): namespaces are <Name>-d1.., <Name>-n1.., the bridge lbc<Name>.
	// Empty means "t<Index>".
	Name string
	// Index (1..255) picks the subnet 198.18.0.0/15's Index-th /23, so
	// labs started in parallel do not collide. 0 picks a free one.
	Index int
	// Devices (1..89) and Nodes (0..99) to start.
	Devices, Nodes int
	// Zones are assigned to devices round-robin; default az-a, az-b, az-c.
	Zones []string
	// Dir is the work directory; default a new temporary directory. A given
	// Dir must be empty, absent, or a lab directory of an earlier run: Close
	// removes it.
	Dir string
	// Keepalived allows StartKeepalived (the HA tests); the devices' spec
	// always names a keepalived config, reload and check, and the reload
	// command starts keepalived once lbc has written a config, with or
	// without this option.
	Keepalived bool
	// StepLog makes every device log the steps of lbc's transactions on
	// the host and able to pause at one (see Device.StepLog, PauseAt).
	StepLog bool
}

// Lab is a running lab. Its fields are read-only.
type Lab struct {
	Name       string
	Index      int
	Dir        string       // work directory, removed by Close
	Prefix     netip.Prefix // the lab's /23: devices, nodes and the bridge
	VIPNetwork netip.Prefix // the upper /24 of Prefix: VIP(1..254)
	Gateway    netip.Addr   // the bridge's address in the root namespace
	Bridge     string
	KeyFile    string // the client's private key (OpenSSH format)
	KnownHosts string // known_hosts with every device's host key
	Devices    []Device
	Nodes      []Node

	keepalived bool
	stepLog    bool
	release    func() // releases the index and name locks
	closeOnce  sync.Once
	closeErr   error
}

// Device is one lab HAProxy host.
type Device struct {
	Name     string     // spec name, <lab>-d<i>
	NS       string     // network namespace, same as Name
	Address  netip.Addr // eth0 in the namespace; sshd listens on port 22
	Zone     string
	Dir      string // the device's own directory
	Config   string // haproxy.cfg path
	StateDir string // haproxy sockets and pid file, lbc's state
	Reload   string // haproxy reload command (sh -c)
	Check    string // haproxy check command; the file path is appended

	KeepalivedConfig string
	KeepalivedReload string
	KeepalivedCheck  string
}

// Node is one backend: an HTTP server answering every request with 200 and
// its Name as the body.
type Node struct {
	Name    string // n<i>
	NS      string // <lab>-n<i>
	Address netip.Addr
	Port    int
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,4}$`)
	// pathRE is the schema's #Path: the lab's paths must pass it.
	pathRE  = regexp.MustCompile(`^/[A-Za-z0-9._/-]{0,900}$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$`)
)

const (
	maxDevices = 89
	maxNodes   = 99
	maxVIPs    = 254
	// markerFile marks a directory as a lab's, so Close may remove it.
	markerFile = ".lbc-lab"
)

// Start builds a lab: it removes leftovers of a crashed run of the same
// name, creates the bridge, the namespaces, keys, sshd and haproxy on every
// device and the HTTP server on every node, and waits until all of them
// answer. On failure it tears down what it built.
func Start(ctx context.Context, opts Options) (l *Lab, err error) {
	if err := validate(&opts); err != nil {
		return nil, err
	}
	release, index, name, err := lockIndex(opts.Name, opts.Index)
	if err != nil {
		return nil, err
	}
	opts.Name = name
	l = &Lab{Name: name, Index: index, keepalived: opts.Keepalived, stepLog: opts.StepLog, release: release}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	l.Prefix, l.VIPNetwork, l.Gateway = addressing(index)
	l.Bridge = "lbc" + opts.Name

	if err := Cleanup(opts.Name); err != nil {
		return l, fmt.Errorf("lab %s: clean up leftovers: %w", opts.Name, err)
	}
	if err := l.makeDir(opts.Dir); err != nil {
		return l, err
	}
	if err := subnetFree(l.Prefix); err != nil {
		return l, fmt.Errorf("lab %s: %w", opts.Name, err)
	}
	for i := 1; i <= opts.Devices; i++ {
		l.Devices = append(l.Devices, l.newDevice(i, opts.Zones[(i-1)%len(opts.Zones)]))
	}
	for i := 1; i <= opts.Nodes; i++ {
		l.Nodes = append(l.Nodes, Node{
			Name:    fmt.Sprintf("n%d", i),
			NS:      fmt.Sprintf("%s-n%d", opts.Name, i),
			Address: nth(l.Prefix.Addr(), 100+i),
			Port:    8080,
		})
	}
	if err := l.writeKeys(); err != nil {
		return l, fmt.Errorf("lab %s: keys: %w", opts.Name, err)
	}
	if err := l.makeBridge(ctx); err != nil {
		return l, fmt.Errorf("lab %s: bridge: %w", opts.Name, err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return l, fmt.Errorf("lab %s: %w", opts.Name, err)
	}
	if err := parallel(ctx, len(l.Devices), func(ctx context.Context, i int) error {
		return l.startDevice(ctx, i+1)
	}); err != nil {
		return l, err
	}
	if err := parallel(ctx, len(l.Nodes), func(ctx context.Context, i int) error {
		return l.startNode(ctx, i+1)
	}); err != nil {
		return l, err
	}
	return l, nil
}

func validate(o *Options) error {
	if o.Name != "" && !nameRE.MatchString(o.Name) {
		return fmt.Errorf("lab: name %q: want 1-5 characters [a-z0-9], starting with a letter", o.Name)
	}
	if o.Index < 0 || o.Index > 255 {
		return fmt.Errorf("lab %s: index %d: want 1..255, or 0 for any free one", o.Name, o.Index)
	}
	if o.Devices < 1 || o.Devices > maxDevices {
		return fmt.Errorf("lab %s: %d devices: want 1..%d", o.Name, o.Devices, maxDevices)
	}
	if o.Nodes < 0 || o.Nodes > maxNodes {
		return fmt.Errorf("lab %s: %d nodes: want 0..%d", o.Name, o.Nodes, maxNodes)
	}
	if len(o.Zones) == 0 {
		o.Zones = []string{"az-a", "az-b", "az-c"}
	}
	for _, z := range o.Zones {
		if !labelRE.MatchString(z) {
			return fmt.Errorf("lab %s: zone %q: not a valid label", o.Name, z)
		}
	}
	return nil
}

// addressing returns the index-th /23 of 198.18.0.0/15 (RFC 2544), its
// upper /24 for VIPs, and the bridge's address (.1). In the /23 (base B):
// B.1 the bridge in the root namespace, B.(10+i) device i (1..89), B.(100+i)
// node i (1..99, port 8080); VIP(i) is (B+256).i, i in 1..254.
func addressing(index int) (prefix, vips netip.Prefix, gw netip.Addr) {
	base := netip.AddrFrom4([4]byte{198, 18, 0, 0})
	a := nth(base, index*512).As4()
	prefix = netip.PrefixFrom(netip.AddrFrom4(a), 23)
	a[2]++
	vips = netip.PrefixFrom(netip.AddrFrom4(a), 24)
	return prefix, vips, nth(prefix.Addr(), 1)
}

// nth returns a + n for IPv4 a.
func nth(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// VIP returns the i-th VIP address (1..254) of the lab: <VIPNetwork>.i.
// Every device's vipNetworks is VIPNetwork, and the root namespace reaches
// a VIP by ARP over the bridge. It panics when i is out of range.
func (l *Lab) VIP(i int) netip.Addr {
	if i < 1 || i > maxVIPs {
		panic(fmt.Sprintf("lab %s: VIP(%d): want 1..%d", l.Name, i, maxVIPs))
	}
	return nth(l.VIPNetwork.Addr(), i)
}

func (l *Lab) makeDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "lbc-lab-"+l.Name+"-")
		if err != nil {
			return fmt.Errorf("lab %s: %w", l.Name, err)
		}
		dir = d
	} else {
		d, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("lab %s: %w", l.Name, err)
		}
		dir = d
		ents, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("lab %s: %w", l.Name, err)
		case len(ents) > 0:
			if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
				return fmt.Errorf("lab %s: dir %s is not empty and not a lab's", l.Name, dir)
			}
			killPidFiles(dir)
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("lab %s: %w", l.Name, err)
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("lab %s: %w", l.Name, err)
		}
	}
	if !pathRE.MatchString(dir) {
		os.Remove(dir)
		return fmt.Errorf("lab %s: dir %q: the spec schema does not accept this path", l.Name, dir)
	}
	// Unix socket paths (state/haproxy.sock) must stay under 108 bytes.
	if len(dir) > 70 {
		os.Remove(dir)
		return fmt.Errorf("lab %s: dir %q: longer than 70 bytes (unix socket paths below it would be too long)", l.Name, dir)
	}
	l.Dir = dir
	// sshd refuses keys below a group- or world-writable directory unless
	// StrictModes is off; it is off, but keep the tree private anyway.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, markerFile), []byte(l.Name+"\n"), 0o644)
}

func (l *Lab) newDevice(i int, zone string) Device {
	name := fmt.Sprintf("%s-d%d", l.Name, i)
	dir := filepath.Join(l.Dir, name)
	state := filepath.Join(dir, "state")
	return Device{
		Name:     name,
		NS:       name,
		Address:  nth(l.Prefix.Addr(), 10+i),
		Zone:     zone,
		Dir:      dir,
		Config:   filepath.Join(dir, "haproxy.cfg"),
		StateDir: state,
		// The schema allows no '$' or quotes in a command: xargs reads
		// the pid file instead of $(cat ...).
		Reload: "xargs kill -USR2 < " + filepath.Join(state, "haproxy.pid"),
		Check:  "haproxy -c -f",

		KeepalivedConfig: filepath.Join(dir, "keepalived.conf"),
		// sh runs the device's keepalived control script: reload, or
		// start keepalived when the first apply wrote its first config
		// (see keepalivedScriptText).
		KeepalivedReload: "sh " + filepath.Join(dir, "keepalived-ctl.sh"),
		KeepalivedCheck:  "keepalived -t -f",
	}
}

// Close stops every process of the lab, deletes its namespaces, bridge and
// veths, and removes its directory. It is safe to call more than once.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.Name != "" {
			if l.Dir != "" {
				killPidFiles(l.Dir)
			}
			errs = append(errs, Cleanup(l.Name))
		}
		if l.Dir != "" {
			if _, err := os.Stat(filepath.Join(l.Dir, markerFile)); err == nil {
				errs = append(errs, os.RemoveAll(l.Dir))
			}
		}
		if l.release != nil {
			l.release()
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// parallel runs f for 0..n-1 with at most 8 at a time and returns the
// first error; on error it cancels the others (their "context canceled" is
// not the error returned).
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cause error
	var once sync.Once
	err := par.Do(ctx, n, 8, func(i int) error {
		err := f(ctx, i)
		if err != nil {
			once.Do(func() { cause = err })
			cancel()
		}
		return err
	})
	if cause != nil {
		return cause
	}
	return err
}

// poll calls f every 20ms until it returns nil or the timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-t.C:
		}
	}
}

// Down stops a lab that Start left running in another process (labctl up):
// it cleans up the namespaces, bridge and veths of name, and removes dir
// when dir is a lab directory.
func Down(name, dir string) error {
	if dir != "" {
		killPidFiles(dir)
	}
	err := Cleanup(name)
	if dir != "" {
		if _, serr := os.Stat(filepath.Join(dir, markerFile)); serr == nil {
			err = errors.Join(err, os.RemoveAll(dir))
		} else if !errors.Is(serr, os.ErrNotExist) {
			err = errors.Join(err, serr)
		} else if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			err = errors.Join(err, fmt.Errorf("lab %s: %s is not a lab directory: left alone", name, dir))
		}
	}
	return err
}
