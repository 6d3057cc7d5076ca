package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// tools maps each program the lab and lbc's hosts need to its Debian package.
var tools = map[string]string{
	"haproxy":    "haproxy",
	"sshd":       "openssh-server",
	"ssh":        "openssh-client",
	"ip":         "iproute2",
	"keepalived": "keepalived",
	"socat":      "socat",
	"nc.openbsd": "netcat-openbsd",
	"flock":      "util-linux",
	"setsid":     "util-linux",
	"xargs":      "findutils",
}

// MissingPackages returns the Debian packages of the lab's tools that are
// not installed, sorted.
func MissingPackages() []string {
	set := map[string]bool{}
	for prog, pkg := range tools {
		if !haveProgram(prog) {
			set[pkg] = true
		}
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func haveProgram(prog string) bool {
	if _, err := exec.LookPath(prog); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if st, err := os.Stat(dir + "/" + prog); err == nil && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

// EnsureTools installs, with apt-get, the packages of the tools the lab
// needs (haproxy openssh-server openssh-client iproute2 keepalived socat
// netcat-openbsd util-linux) when one is missing. It does nothing when all are present.
func EnsureTools(ctx context.Context) error {
	missing := MissingPackages()
	if len(missing) == 0 {
		return nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"-q", "-o", "DPkg::Lock::Timeout=300", "update"},
		append([]string{"-q", "-y", "-o", "DPkg::Lock::Timeout=300", "install"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("lab: install %s: apt-get %s: %w\n%s", strings.Join(missing, " "), args[len(args)-1], err, tail(out))
		}
	}
	if m := MissingPackages(); len(m) > 0 {
		return fmt.Errorf("lab: still missing after apt-get install: %s", strings.Join(m, " "))
	}
	return nil
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
