package compiler

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"lbc/schema"
)

// vipPlan lists the VIP addresses dev must carry for the balancers placed
// on it: one entry per address and balancer (a balancer listening on two
// ports of one address gives one entry), sorted by address then balancer.
func vipPlan(dev *schema.Device, placed []*schema.Balancer, roles map[string]string) ([]VIP, error) {
	type key struct {
		addr netip.Addr
		bal  string
	}
	n := 0
	for _, b := range placed {
		n += len(b.VIPs)
	}
	seen := make(map[key]bool, n)
	vips := make([]VIP, 0, n)
	if err := checkWord(dev.VIPInterface, true); err != nil {
		return nil, fmt.Errorf("vipInterface: %w", err)
	}
	for _, b := range placed {
		role := roles[b.Name]
		if role == "" {
			role = VIPRoleSingle
		}
		for _, v := range b.VIPs {
			if !v.Address.IsValid() || v.Address.Zone() != "" {
				return nil, fmt.Errorf("balancer %s: invalid VIP %s", b.Name, v.Address)
			}
			k := key{v.Address, b.Name}
			if seen[k] {
				continue
			}
			seen[k] = true
			vips = append(vips, VIP{
				Address:   v.Address,
				Prefix:    vipPrefix(v.Address),
				Interface: dev.VIPInterface,
				Balancer:  b.Name,
				Role:      role,
			})
		}
	}
	sort.Slice(vips, func(i, j int) bool {
		if c := vips[i].Address.Compare(vips[j].Address); c != 0 {
			return c < 0
		}
		return vips[i].Balancer < vips[j].Balancer
	})
	return vips, nil
}

// vipPrefix is the prefix length of a VIP on its interface: always the
// full length (/32, /128). Each VIP is then its own primary address:
// with the prefix of a vipNetwork, the first VIP of a subnet became its
// primary, and deleting it made Linux delete every other address of the
// subnet with it (its secondaries), VIPs and the host's own addresses alike.
func vipPrefix(a netip.Addr) int { return a.BitLen() }

// marshalVIPs renders vips.json: a JSON array, one VIP a line, "[]" when
// empty, ending in a newline.
func marshalVIPs(vips []VIP) ([]byte, error) {
	if len(vips) == 0 {
		return []byte("[]\n"), nil
	}
	out := make([]byte, 0, 4+len(vips)*(len(`  {"address":"","prefix":128,"interface":"","balancer":"","role":"standby"},`)+80))
	out = append(out, "[\n"...)
	for i, v := range vips {
		var err error
		if out, err = appendVIPJSON(out, v); err != nil {
			return nil, fmt.Errorf("render vips.json: %w", err)
		}
		if i < len(vips)-1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
	}
	return append(out, "]\n"...), nil
}

// appendVIPJSON appends "  " and what json.Marshal(v) returns, byte for
// byte, without its reflection for the common case.
func appendVIPJSON(out []byte, v VIP) ([]byte, error) {
	if !plainJSON(v.Interface) || !plainJSON(v.Balancer) || !plainJSON(v.Role) {
		b, err := json.Marshal(v)
		return append(append(out, "  "...), b...), err
	}
	out = append(out, `  {"address":"`...)
	out = v.Address.AppendTo(out)
	out = append(out, `","prefix":`...)
	out = strconv.AppendInt(out, int64(v.Prefix), 10)
	out = append(out, `,"interface":"`...)
	out = append(out, v.Interface...)
	out = append(out, `","balancer":"`...)
	out = append(out, v.Balancer...)
	out = append(out, `","role":"`...)
	out = append(out, v.Role...)
	return append(out, `"}`...), nil
}

// plainJSON reports whether json.Marshal writes s as is between quotes:
// printable ASCII without '"', '\\' and the characters it escapes for
// HTML ('<', '>', '&').
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
