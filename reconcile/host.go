package reconcile

import (
	"context"

	"lbc/reconcile/host"
	"lbc/schema"
)

// The host protocol's types, as plan, apply and status hand them out (see
// package host).
type (
	// Host is a device's address, paths and commands, kept in a plan.
	Host = host.Host
	// Verifier confirms on the host that a reload took effect.
	Verifier = host.Verifier
	// HAProxyVerifier verifies through the stats socket.
	HAProxyVerifier = host.HAProxyVerifier
	// File is one file read from a host.
	File = host.File
	// Live is what a device runs now.
	Live = host.Live
	// State is state.json.
	State = host.State
	// HistoryEntry is one past apply in state.json.
	HistoryEntry = host.HistoryEntry
)

// StateFile is the name of lbc's state file in a device's state directory.
const StateFile = host.StateFile

// Step names, as reported to Progress and recorded in DeviceResult.Steps.
const (
	StepConnect         = host.StepConnect
	StepLock            = host.StepLock
	StepStaleCheck      = host.StepStaleCheck
	StepStage           = host.StepStage
	StepKeepLastGood    = host.StepKeepLastGood
	StepArm             = host.StepArm
	StepAddVIPs         = host.StepAddVIPs
	StepSaveServerState = host.StepSaveServerState
	StepSwap            = host.StepSwap
	StepReload          = host.StepReload
	StepVerify          = host.StepVerify
	StepRemoveVIPs      = host.StepRemoveVIPs
	StepCommit          = host.StepCommit
	StepRollback        = host.StepRollback
)

// StepPlan is reported to Progress as PlanApply starts reading a device
// (its dial, lock and read); it is no transaction step.
const StepPlan = "plan"

func hostOf(d *schema.Device, ipCmd string) Host {
	if ipCmd == "" {
		ipCmd = "ip"
	}
	return Host{
		Address: d.Address, User: d.SSH.User, Port: d.SSH.Port, Sudo: d.SSH.Sudo,
		StateDir: d.StateDir,
		Config:   d.HAProxy.Config, Reload: d.HAProxy.Reload, Check: d.HAProxy.Check,
		KeepalivedConfig: d.Keepalived.Config, KeepalivedReload: d.Keepalived.Reload,
		KeepalivedCheck: d.Keepalived.Check,
		IP:              ipCmd,
	}
}

// ReadLive reads the config, state.json, keepalived.conf (when keepalived
// is set) and the addresses of one device with a single remote command.
// It waits at most DefaultReadTimeout (see Limits).
func ReadLive(ctx context.Context, t Transport, h Host, keepalived bool) (*Live, error) {
	return readLive(ctx, t, h, keepalived, nil, Limits{})
}

// sha256Hex is the fingerprint of a file's bytes; "" stands for an absent file.
func sha256Hex(b []byte) string { return host.Fingerprint(b) }
