package compiler

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"

	"lbc/schema"
)

// vipPlan lists the VIP addresses dev must carry for the balancers placed
// on it: one entry per address and balancer (a balancer listening on two
// ports of one address gives one entry), sorted by address then balancer.
func vipPlan(dev *schema.Device, placed []*schema.Balancer, roles map[string]string) ([]VIP, error) {
	type key struct {
		addr string
		bal  string
	}
	seen := map[key]bool{}
	vips := []VIP{}
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
			k := key{v.Address.String(), b.Name}
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
	out := []byte("[\n")
	for i, v := range vips {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("render vips.json: %w", err)
		}
		out = append(out, "  "...)
		out = append(out, b...)
		if i < len(vips)-1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
	}
	return append(out, "]\n"...), nil
}
