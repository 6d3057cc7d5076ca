// Package examples_test loads every example spec tree with lbc's schema
// loader, so an example that drifts from the schema fails the build.
package examples_test

import (
	"context"
	"net/netip"
	"sort"
	"testing"

	"lbc/schema"
)

func load(t *testing.T, dir string) *schema.Spec {
	t.Helper()
	spec, err := schema.LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return spec
}

func TestBasic(t *testing.T) {
	spec := load(t, "basic")
	if got := spec.DeviceNames(); len(got) != 2 {
		t.Errorf("devices %v, want 2", got)
	}
	if got := spec.BalancerNames(); len(got) != 3 {
		t.Errorf("balancers %v, want 3", got)
	}
	// Defaults a newcomer reads about in the comments.
	b := spec.Devices["lb-b1"]
	if b == nil || b.SSH.User != "root" || b.SSH.Port != 22 || b.HAProxy.Config != "/etc/haproxy/haproxy.cfg" || b.StateDir != "/var/lib/lbc" {
		t.Errorf("lb-b1 defaults: %+v", b)
	}
	if w := spec.Balancers["web"]; w == nil || w.Nodes[0].Weight != 10 || !w.Nodes[2].Backup || w.Persistence == nil || w.Persistence.Cookie != "SRV" {
		t.Errorf("web: %+v", w)
	}
	if p := spec.Balancers["portal"]; p == nil || !p.Placement.HA || !p.Failback {
		t.Errorf("portal is not an HA balancer with failback: %+v", p)
	}
}

func TestFleet(t *testing.T) {
	spec := load(t, "fleet")
	if got := spec.DeviceNames(); len(got) != 6 {
		t.Errorf("devices %v, want 6", got)
	}
	if got := spec.BalancerNames(); len(got) < 12 {
		t.Errorf("balancers %v, want at least 12", got)
	}
	zones := map[string]int{}
	for _, d := range spec.Devices {
		zones[d.Zone]++
	}
	if zones["az-a"] != 2 || zones["az-b"] != 2 || zones["az-c"] != 2 {
		t.Errorf("devices per zone %v, want 2 in each of az-a, az-b, az-c", zones)
	}

	// The fleet is meant to show every feature of the format at least once.
	seen := map[string]bool{}
	tenants := map[string]bool{}
	ha := 0
	for name, b := range spec.Balancers {
		tenants[b.Tenant] = true
		seen["protocol "+b.Protocol] = true
		seen["algorithm "+b.Algorithm] = true
		seen["health "+b.HealthMonitor.Type] = true
		if b.HealthMonitor.Type == "http" && b.HealthMonitor.Path != "/" && b.HealthMonitor.Expect != 0 {
			seen["http path+expect"] = true
		}
		if b.Persistence != nil {
			seen["persistence "+b.Persistence.Type] = true
		}
		if b.Timeouts != nil {
			seen["timeouts"] = true
		}
		if b.Maxconn > 0 {
			seen["maxconn"] = true
		}
		for _, n := range b.Nodes {
			if n.Backup {
				seen["backup"] = true
			}
		}
		for _, v := range b.VIPs {
			if v.Address.Is6() {
				seen["ipv6 vip"] = true
				if !netip.MustParsePrefix("2001:db8::/32").Contains(v.Address) {
					t.Errorf("%s: VIP %s outside 2001:db8::/32", name, v.Address)
				}
			}
		}
		if len(b.Placement.Zones) > 0 && !b.Placement.HA {
			seen["placement zones"] = true
		}
		if len(b.Placement.Tags) > 0 {
			seen["placement tags"] = true
		}
		if b.Placement.Device != "" {
			seen["placement device"] = true
		}
		if b.Placement.HA {
			ha++
			if len(b.Placement.Zones) != 2 || b.Placement.Zones[0] != "az-a" || b.Placement.Zones[1] != "az-b" || !b.Failback {
				t.Errorf("%s: HA placement %+v failback %v, want zones [az-a az-b] and failback", name, b.Placement, b.Failback)
			}
		}
	}
	if ha != 1 {
		t.Errorf("%d HA balancers, want 1", ha)
	}
	for _, want := range []string{
		"protocol http", "protocol tcp",
		"algorithm roundrobin", "algorithm leastconn", "algorithm source", "algorithm uri", "algorithm static-rr", "algorithm first",
		"health http", "health tcp", "health none", "http path+expect",
		"persistence cookie", "persistence source", "timeouts", "maxconn", "backup", "ipv6 vip",
		"placement zones", "placement tags", "placement device",
	} {
		if !seen[want] {
			t.Errorf("no balancer shows %s", want)
		}
	}
	var ts []string
	for t := range tenants {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	if len(ts) != 3 || ts[0] != "blog" || ts[1] != "payments" || ts[2] != "shop" {
		t.Errorf("tenants %v, want blog, payments, shop", ts)
	}
}
