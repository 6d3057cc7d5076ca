package host

import (
	"path"

	"lbc/internal/shquote"
)

// Host is what plan and apply need to reach and change one device, copied
// from the spec into the plan so that a saved plan can be applied exactly.
// It holds no secret: SSH keys and agents are the transport's.
type Host struct {
	Address  string `json:"address"`
	User     string `json:"user,omitempty"`
	Port     int    `json:"port,omitempty"`
	Sudo     bool   `json:"sudo,omitempty"`
	StateDir string `json:"stateDir"`

	Config string `json:"config"`
	Reload string `json:"reload"`
	Check  string `json:"check"`

	KeepalivedConfig string `json:"keepalivedConfig,omitempty"`
	KeepalivedReload string `json:"keepalivedReload,omitempty"`
	KeepalivedCheck  string `json:"keepalivedCheck,omitempty"`

	// IP is the ip(8) command; "ip" unless a test or host says otherwise.
	IP string `json:"ip,omitempty"`
}

func (h Host) ip() string {
	if h.IP == "" {
		return "ip"
	}
	return h.IP
}

// Paths on the host. Staged files sit beside the live one so that the swap
// is a rename within one directory.

// StatePath is state.json.
func (h Host) StatePath() string { return path.Join(h.StateDir, StateFile) }

// LockPath is the device lock.
func (h Host) LockPath() string { return path.Join(h.StateDir, "lock") }

// OwnerPath names who holds the lock.
func (h Host) OwnerPath() string { return path.Join(h.StateDir, "lock.owner") }

// TxnPath is the armed rollback script (armed when not empty).
func (h Host) TxnPath() string { return path.Join(h.StateDir, "txn.sh") }

// TxnLog is what the lock holder's run of TxnPath printed.
func (h Host) TxnLog() string { return path.Join(h.StateDir, "txn.log") }

// LastGood is the last-known-good copy of the live file named f.
func (h Host) LastGood(f string) string { return path.Join(h.StateDir, "last-good", f) }

// SocketPath is the stats socket the rendered config declares.
func (h Host) SocketPath() string { return path.Join(h.StateDir, "haproxy.sock") }

// ServerStatePath is HAProxy's server-state file.
func (h Host) ServerStatePath() string { return path.Join(h.StateDir, "server-state") }

func staged(p string) string { return p + ".lbc-new" }

// stateTmp is where stage puts the next state.json until write-state.
func (h Host) stateTmp() string { return h.StatePath() + ".lbc-tmp" }

// NeedsSudo reports whether commands run through sudo: the device asks
// for it and logs in as a user other than root.
func (h Host) NeedsSudo() bool { return h.Sudo && h.User != "root" }

// Sudo is cmd run as root through `sudo -n` (never prompting): one shell
// word, so the whole command runs under sudo. The transport sends every
// command of a device that NeedsSudo this way.
func Sudo(cmd string) string { return "sudo -n sh -c " + shquote.Quote(cmd) }
