package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// writeKeys writes the client key (id_ed25519, id_ed25519.pub), the
// authorized_keys every device's sshd reads, each device's host key, and
// known_hosts listing every device's address with its host key.
func (l *Lab) writeKeys() error {
	l.KeyFile = filepath.Join(l.Dir, "id_ed25519")
	l.KnownHosts = filepath.Join(l.Dir, "known_hosts")
	pub, err := writeKey(l.KeyFile, "lbc-lab-"+l.Name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		return err
	}
	var kh strings.Builder
	for _, d := range l.Devices {
		if err := os.MkdirAll(d.StateDir, 0o755); err != nil {
			return err
		}
		hpub, err := writeKey(filepath.Join(d.Dir, "ssh_host_ed25519_key"), "root@"+d.Name)
		if err != nil {
			return err
		}
		kh.WriteString(knownhosts.Line([]string{d.Address.String()}, hpub) + "\n")
	}
	return os.WriteFile(l.KnownHosts, []byte(kh.String()), 0o644)
}

// writeKey writes a new ed25519 private key in OpenSSH format to path (mode
// 0600) and its public key to path.pub.
func writeKey(path, comment string) (ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment + "\n"
	return pub, os.WriteFile(path+".pub", []byte(line), 0o644)
}
