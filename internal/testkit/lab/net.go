package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const netnsDir = "/run/netns"

// run runs a command and returns its output; the error carries stderr.
func run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

func (l *Lab) makeBridge(ctx context.Context) error {
	bits := l.Prefix.Bits()
	_, err := run(ctx, fmt.Sprintf("link add %s type bridge\naddr add %s/%d dev %s\nlink set %s up\n",
		l.Bridge, l.Gateway, bits, l.Bridge, l.Bridge), "ip", "-batch", "-")
	if err != nil {
		return err
	}
	// Let keepalived's gratuitous ARP move a VIP in the root namespace's
	// neighbour table at once after a failover.
	os.WriteFile("/proc/sys/net/ipv4/conf/"+l.Bridge+"/arp_accept", []byte("1\n"), 0o644)
	return nil
}

// makeNamespace creates ns with a veth to the bridge named eth0 inside,
// addr on it, and lo up.
func (l *Lab) makeNamespace(ctx context.Context, ns, veth string, addr netip.Addr) error {
	_, err := run(ctx, fmt.Sprintf("netns add %s\nlink add %s type veth peer name eth0 netns %s\nlink set %s master %s up\n",
		ns, veth, ns, veth, l.Bridge), "ip", "-batch", "-")
	if err != nil {
		return err
	}
	_, err = run(ctx, fmt.Sprintf("addr add %s/%d dev eth0\nlink set eth0 up\nlink set lo up\n",
		addr, l.Prefix.Bits()), "ip", "-n", ns, "-batch", "-")
	return err
}

// Cleanup removes what a lab named name left behind: it stops every process
// in the namespaces <name>-d<i> and <name>-n<i>, deletes them, the bridge
// lbc<name> and its veths. It leaves the work directory alone (Close removes
// it). Start calls it first.
func Cleanup(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lab: cleanup: bad name %q", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nsRE := regexp.MustCompile(`^` + name + `-[dn][0-9]+$`)
	ents, _ := os.ReadDir(netnsDir)
	var nss []string
	for _, e := range ents {
		if nsRE.MatchString(e.Name()) {
			nss = append(nss, e.Name())
		}
	}
	var errs []string
	if len(nss) > 0 {
		killInNamespaces(nss)
		var b strings.Builder
		for _, ns := range nss {
			fmt.Fprintf(&b, "netns del %s\n", ns)
		}
		if _, err := run(ctx, b.String(), "ip", "-force", "-batch", "-"); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Deleting a namespace deletes its end of each veth, and so the pair;
	// delete what is left (a crash between "link add" and "netns add").
	linkRE := regexp.MustCompile(`^lbc` + name + `(-[dn][0-9]+)?$`)
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("lab %s: cleanup: %w", name, err)
	}
	for _, ifc := range ifs {
		if !linkRE.MatchString(ifc.Name) {
			continue
		}
		// A veth may vanish meanwhile, with its namespace.
		if _, err := run(ctx, "", "ip", "link", "del", ifc.Name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %s: cleanup: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// nsInode returns the inode of a named network namespace.
func nsInode(ns string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, ns), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsIn returns the processes whose network namespace is one of nss (what
// `ip netns pids` does, for many namespaces in one scan of /proc).
func pidsIn(nss []string) []int {
	inos := map[uint64]bool{}
	for _, ns := range nss {
		if ino, err := nsInode(ns); err == nil {
			inos[ino] = true
		}
	}
	if len(inos) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		if inos[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killInNamespaces sends SIGTERM to every process in nss, waits up to 3 s
// for them to go, then sends SIGKILL and waits up to 2 s more.
func killInNamespaces(nss []string) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids := pidsIn(nss)
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			syscall.Kill(p, sig)
		}
		wait := 3 * time.Second
		if sig == syscall.SIGKILL {
			wait = 2 * time.Second
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) && len(livePids(pidsIn(nss))) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// livePids drops zombies (a zombie keeps no namespace busy).
func livePids(pids []int) []int {
	var live []int
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) S ...: the state follows the last ')'.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue
		}
		live = append(live, p)
	}
	return live
}

// killPidFiles kills the processes named by *.pid files under dir whose
// command line mentions dir (so a reused pid is left alone): processes of a
// lab that somehow left its namespaces.
func killPidFiles(dir string) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pid") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return nil
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	})
}

// subnetFree fails when an interface of the root namespace has an address
// in p: another lab (or something else) uses the subnet.
func subnetFree(p netip.Prefix) error {
	if user := subnetUser(p); user != "" {
		return fmt.Errorf("subnet %s in use by interface %s", p, user)
	}
	return nil
}

// subnetUser returns the name of a root-namespace interface with an address
// in p, or "".
func subnetUser(p netip.Prefix) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && p.Contains(ip.Unmap()) {
				return ifc.Name
			}
		}
	}
	return ""
}

const lockDir = "/run/lbc-lab"

// lockIndex takes the process-wide locks on the lab's name and index (flock,
// released when the process dies), picking a free index when index is 0.
func lockIndex(name string, index int) (release func(), idx int, nm string, err error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, 0, "", fmt.Errorf("lab %s: %w", name, err)
	}
	first, last := index, index
	if index == 0 {
		// Automatic indices start at 100, leaving the low ones to explicit use.
		first, last = 100, 255
	}
	for i := first; i <= last; i++ {
		nm := name
		if nm == "" {
			nm = fmt.Sprintf("t%d", i)
		}
		if index == 0 {
			// Skip a subnet someone else uses; leftovers of a crashed lab
			// of this very name are fine (Start cleans them up).
			prefix, _, _ := addressing(i)
			if user := subnetUser(prefix); user != "" && user != "lbc"+nm {
				continue
			}
		}
		il, err := tryLock(filepath.Join(lockDir, fmt.Sprintf("index-%d.lock", i)))
		if err != nil {
			if index != 0 {
				return nil, 0, "", fmt.Errorf("lab %s: index %d in use by another running lab: %w", nm, i, err)
			}
			continue
		}
		nl, err := tryLock(filepath.Join(lockDir, "name-"+nm+".lock"))
		if err != nil {
			il.Close()
			if name != "" {
				return nil, 0, "", fmt.Errorf("lab %s: name in use by another running lab: %w", nm, err)
			}
			continue
		}
		return func() { nl.Close(); il.Close() }, i, nm, nil
	}
	return nil, 0, "", fmt.Errorf("lab %s: no free index in %d..%d", name, first, last)
}
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
