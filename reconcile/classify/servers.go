package classify

import (
	"fmt"
	"net/netip"
	"strings"
)

// Server is one server line of lbc's haproxy.cfg, as the running HAProxy
// must show it (`show servers state`) when it runs the file.
type Server struct {
	Backend, Name string
	Addr          netip.AddrPort
	Weight        int
	Maint         bool // "disabled": state maint
}

// Servers lists the servers of cfg, an unedited lbc rendering (see
// Change), in file order.
func Servers(cfg []byte) ([]Server, error) {
	c, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range c.sections {
		be, ok := strings.CutPrefix(s.head, "backend ")
		if !ok {
			continue
		}
		for _, sv := range s.servers {
			ap, err := netip.ParseAddrPort(sv.addr)
			if err != nil {
				return nil, fmt.Errorf("backend %s: server %s: %w", be, sv.name, err)
			}
			out = append(out, Server{Backend: be, Name: sv.name, Addr: ap, Weight: sv.weight, Maint: sv.disabled})
		}
	}
	return out, nil
}
