// Package compiler places the balancers of a validated spec on devices and renders each device's files (haproxy.cfg, vips.json, keepalived.conf); it does no I/O.
//
// Compile is a pure function of the spec, the previous placement (the lock
// file) and Options: the same inputs give the same bytes. Writing the files,
// diffing them against hosts and applying them is left to the CLI and to
// package reconcile. The package imports neither os, os/exec, net nor ssh
// (imports_test.go proves it).
//
// # Files per device
//
// Compile returns, for every device of the spec (even one with nothing
// placed on it), the bytes of:
//
//   - haproxy.cfg: see RenderHAProxy. Its first line is a header
//     "# lbc <version> revision <revision|none> content sha256:<hex>", where
//     hex is the SHA-256 of every byte after that first line (see
//     ParseHeader). The global section declares a stats socket
//     <stateDir>/haproxy.sock (mode 600, level admin, expose-fd listeners),
//     a server-state-file <stateDir>/server-state and a description
//     "lbc:<ConfigID>", which `show info` on that socket reports, so the
//     reconciler can confirm that the running HAProxy loaded this file.
//   - vips.json: the VIP plan, a JSON array of VIP sorted by address then
//     balancer, "[]" when empty, ending in a newline. A VIP's prefix is
//     always /32 (IPv4) or /128 (IPv6), whatever the device's vipNetworks
//     (which only say which VIPs a device may carry): each VIP is then its
//     own primary address on the interface, so removing one never makes
//     Linux delete others (deleting a subnet's primary address deletes its
//     secondaries). keepalived.conf's virtual_ipaddress uses the same
//     prefix. Role "single" VIPs are added by the reconciler with ip(8);
//     "primary" and "standby" VIPs belong to keepalived and must never be
//     added by hand.
//   - keepalived.conf: only on a device that carries an HA balancer (nil
//     otherwise); see below.
//
// # HA pairs
//
// Both devices of an HA pair render the balancer's frontends. An HA VIP is
// bound with HAProxy's "transparent" bind option (IP_TRANSPARENT), so the
// standby's HAProxy starts and reloads while keepalived has not given it the
// address yet, and takes traffic the moment VRRP moves the address over; a
// single VIP is bound plainly, since the reconciler adds it before reloading.
//
// keepalived.conf has one vrrp_instance per HA VIP address: state BACKUP on
// both devices, priority 150 on the primary and 100 on the standby,
// nopreempt when a balancer sets failback: false, and a track_script
// chk_haproxy that connects to the device's own HAProxy stats socket with
// /usr/bin/socat (so socat is required on HA devices; keepalived -t rejects
// the file when it is missing). A socket check is used rather than
// "killall -0 haproxy" or track_process because those see every HAProxy of
// the machine, not the one of this device (network namespaces, several
// instances). The instances talk unicast VRRP from the device's address to
// the peer's when both device addresses are IPs of the VIP's family;
// otherwise (a DNS name, or an IPv6 VIP between IPv4-addressed devices) the
// instance falls back to multicast VRRP on the VIP interface, because
// keepalived requires the unicast addresses and the VIPs of an instance to
// be of one family.
//
// virtual_router_id: the HA VIP addresses of the spec are taken in address
// order; each starts at 1 + FNV-1a(address) mod 255 and probes upward
// (wrapping) to the first id free on both its devices (and, for a multicast
// instance, free among all multicast instances of that family). Compile
// fails when no id is free: a device holds at most 255 HA VIP addresses.
//
// # Safety
//
// Every value that reaches a rendered file comes from validated, typed
// spec values; the renderers still refuse (with an error, never a panic)
// any word that is empty or holds whitespace, control characters, quotes,
// backslash, '#', '$' (and '{', '}', '!' in keepalived.conf), so that no
// spec value can add a line or a directive to a file.
package compiler
