package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// StateFile is the name of lbc's state file in a device's state directory.
const StateFile = "state.json"

// historyLen is how many applies state.json remembers.
const historyLen = 10

// State is what lbc keeps on a device (<stateDir>/state.json): what it
// applied last and which addresses it added.
type State struct {
	Revision         string         `json:"revision"`
	AppliedAt        time.Time      `json:"appliedAt"`
	LBCVersion       string         `json:"lbcVersion"`
	ConfigSHA256     string         `json:"configSHA256"`
	KeepalivedSHA256 string         `json:"keepalivedSHA256,omitempty"`
	VIPs             []string       `json:"vips"` // "addr/prefix dev iface", the ones lbc added
	History          []HistoryEntry `json:"history,omitempty"`
}

// HistoryEntry is one past apply, newest last.
type HistoryEntry struct {
	Revision   string    `json:"revision"`
	Time       time.Time `json:"time"`
	Result     string    `json:"result"`
	LBCVersion string    `json:"lbcVersion"`
}

// parseState decodes state.json.
func parseState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", StateFile, err)
	}
	return &s, nil
}

// next returns the state after a successful apply: prev (may be nil)
// with its history extended and cut to the last historyLen entries.
func (prev *State) next(rev, lbcVersion string, now time.Time, cfgSHA, kaSHA string, vips []string) *State {
	s := &State{
		Revision:         rev,
		AppliedAt:        now.UTC(),
		LBCVersion:       lbcVersion,
		ConfigSHA256:     cfgSHA,
		KeepalivedSHA256: kaSHA,
		VIPs:             append([]string{}, vips...),
	}
	if prev != nil {
		s.History = append(s.History, prev.History...)
	}
	s.History = append(s.History, HistoryEntry{Revision: rev, Time: now.UTC(), Result: "applied", LBCVersion: lbcVersion})
	if n := len(s.History); n > historyLen {
		s.History = s.History[n-historyLen:]
	}
	return s
}

func (s *State) encode() []byte {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // State has only marshalable fields
	}
	return append(b, '\n')
}

// sha256Hex is the fingerprint of a file's bytes; "" stands for an absent file.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
