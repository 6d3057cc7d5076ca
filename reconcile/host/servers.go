package host

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"lbc/reconcile/classify"
)

// ServersStateQuery is the query whose answer lists every server's
// address, port, admin state and weight (ParseServersState).
const ServersStateQuery = "show servers state"

// Answers of HAProxy 2.6 (checked against haproxy 2.6.12).
const (
	answerAdded        = "New server registered."
	answerExists       = "Already exists a server with the same name in backend."
	answerDeleted      = "Server deleted."
	answerNoSuchServer = "No such server."
	answerAddrChanged  = "changed from"
	answerAddrSame     = "no need to change"
)

// ServerRuntime turns classify's server operations into runtime commands
// and their undo, with `show servers state` to read back:
//
//   - weight, drain: set weight BACKEND/SERVER W (undo: the old weight);
//   - state: set server BACKEND/SERVER state maint|ready;
//   - addr: set server BACKEND/SERVER addr A port P;
//   - add: add server BACKEND/SERVER ARGS (HAProxy adds it in
//     maintenance, its checks off), enable health when it has check, and
//     state ready unless the file says disabled; undo: maint, shutdown
//     sessions, del server (a server already gone is fine);
//   - del: state maint, shutdown sessions, del server, once drained (see
//     Drain); undo: add it back as the old file had it (fine when it is
//     still there), its check, state and weight.
//
// Undo runs the undo of the last operation first. Every word comes from
// lbc's parsed file (classify) and is checked again (CheckRuntimeCmd).
func ServerRuntime(ops []classify.Op) (*Runtime, error) {
	r := &Runtime{ReadBack: []string{ServersStateQuery}}
	var undo [][]RuntimeCmd
	for _, o := range ops {
		id := o.Backend + "/" + o.Server
		cmd := func(line string, ok ...string) RuntimeCmd { return RuntimeCmd{Line: line, OK: ok} }
		var do, un []RuntimeCmd
		switch o.Kind {
		case classify.KindWeight, classify.KindDrain:
			do = []RuntimeCmd{cmd("set weight " + id + " " + o.To)}
			un = []RuntimeCmd{cmd("set weight " + id + " " + o.From)}
		case classify.KindState:
			do = []RuntimeCmd{cmd("set server " + id + " state " + o.To)}
			un = []RuntimeCmd{cmd("set server " + id + " state " + o.From)}
		case classify.KindAddr:
			to, err := addrPortWords(o.To)
			if err != nil {
				return nil, fmt.Errorf("runtime %s: %w", id, err)
			}
			from, err := addrPortWords(o.From)
			if err != nil {
				return nil, fmt.Errorf("runtime %s: %w", id, err)
			}
			do = []RuntimeCmd{cmd("set server "+id+" addr "+to, answerAddrChanged, answerAddrSame)}
			un = []RuntimeCmd{cmd("set server "+id+" addr "+from, answerAddrChanged, answerAddrSame)}
		case classify.KindAdd:
			do = append([]RuntimeCmd{cmd("add server "+id+" "+strings.Join(o.Args, " "), answerAdded)}, bringUp(id, o.Args, "")...)
			un = takeDown(id)
		case classify.KindDel:
			do = takeDown(id)
			do[len(do)-1].OK = []string{answerDeleted}
			un = append([]RuntimeCmd{cmd("add server "+id+" "+strings.Join(o.Args, " "), answerAdded, answerExists)}, bringUp(id, o.Args, o.From)...)
		default:
			return nil, fmt.Errorf("runtime %s: unknown operation %q", id, o.Kind)
		}
		r.Do = append(r.Do, do...)
		undo = append(undo, un)
	}
	for i := len(undo) - 1; i >= 0; i-- {
		r.Undo = append(r.Undo, undo[i]...)
	}
	return r, checkRuntime(r)
}

// bringUp is what follows an add server: its health checks when it has
// check, its state from the file, and weight when not "" (a server that
// already existed keeps its runtime weight).
func bringUp(id string, args []string, weight string) []RuntimeCmd {
	var cs []RuntimeCmd
	if slices.Contains(args, "check") {
		cs = append(cs, RuntimeCmd{Line: "enable health " + id})
	}
	state := "ready"
	if slices.Contains(args, "disabled") {
		state = "maint"
	}
	cs = append(cs, RuntimeCmd{Line: "set server " + id + " state " + state})
	if weight != "" {
		cs = append(cs, RuntimeCmd{Line: "set weight " + id + " " + weight})
	}
	return cs
}

// takeDown removes a server: maintenance, its sessions shut, deleted; a
// server that is not there is fine.
func takeDown(id string) []RuntimeCmd {
	return []RuntimeCmd{
		{Line: "set server " + id + " state maint", OK: []string{"", answerNoSuchServer}},
		{Line: "shutdown sessions server " + id, OK: []string{"", answerNoSuchServer}},
		{Line: "del server " + id, OK: []string{answerDeleted, answerNoSuchServer}},
	}
}

// addrPortWords writes "A:P" or "[A]:P" as "A port P".
func addrPortWords(s string) (string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return ap.Addr().String() + " port " + strconv.Itoa(int(ap.Port())), nil
}

// ServerState is one server as `show servers state` shows it, and as a
// file says it should run.
type ServerState struct {
	Backend, Server string
	Addr            netip.AddrPort
	Weight          int
	// State is "ready", "maint" (admin state forced, inherited or
	// resolver maintenance) or "drain" (forced or inherited drain).
	State string
}

func (s ServerState) String() string {
	return fmt.Sprintf("%s/%s %s weight %d %s", s.Backend, s.Server, s.Addr, s.Weight, s.State)
}

// Admin state bits of `show servers state` (HAProxy's SRV_ADMF_*): a
// server disabled in the file shows CMAINT|FMAINT (5), and CMAINT (4)
// alone once set ready at runtime.
const (
	admMaint = 0x01 | 0x02 | 0x20 // FMAINT, IMAINT, RMAINT
	admDrain = 0x08 | 0x10        // FDRAIN, IDRAIN
)

// ParseServersState reads the answer to `show servers state` (format 1):
// a version line, a header, one line a server. It is a host's answer:
// a line it cannot read is an error, quoted at most 80 bytes.
func ParseServersState(answer string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimRight(answer, "\n"), "\n")
	if len(lines) == 0 || lines[0] != "1" {
		return nil, fmt.Errorf("show servers state: want format 1, got %.80q", lines[0])
	}
	var out []ServerState
	for _, l := range lines[1:] {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 19 {
			return nil, fmt.Errorf("show servers state: short line %.80q", l)
		}
		adm, err1 := strconv.Atoi(f[6])
		w, err2 := strconv.Atoi(f[7])
		port, err3 := strconv.ParseUint(f[18], 10, 16)
		addr, err4 := netip.ParseAddr(f[4])
		if err := firstErr(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("show servers state: line %.80q: %v", l, err)
		}
		st := "ready"
		switch {
		case adm&admMaint != 0:
			st = "maint"
		case adm&admDrain != 0:
			st = "drain"
		}
		out = append(out, ServerState{Backend: f[1], Server: f[3], Addr: netip.AddrPortFrom(addr.Unmap(), uint16(port)), Weight: w, State: st})
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
