package host

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
	Revision         string    `json:"revision"`
	AppliedAt        time.Time `json:"appliedAt"`
	LBCVersion       string    `json:"lbcVersion"`
	ConfigSHA256     string    `json:"configSHA256"`
	KeepalivedSHA256 string    `json:"keepalivedSHA256,omitempty"`
	VIPs             []string  `json:"vips"` // "addr/prefix dev iface", the ones lbc added
	// Files maps the path of each auxiliary file lbc wrote (certificates,
	// maps) to its sha256: lbc removes only files listed here.
	Files   map[string]string `json:"files,omitempty"`
	History []HistoryEntry    `json:"history,omitempty"`
}

// HistoryEntry is one past apply, newest last.
type HistoryEntry struct {
	Revision   string    `json:"revision"`
	Time       time.Time `json:"time"`
	Result     string    `json:"result"`
	LBCVersion string    `json:"lbcVersion"`
}

// ParseState decodes state.json.
func ParseState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", StateFile, err)
	}
	return &s, nil
}

// Next returns the state after a successful apply: prev (may be nil)
// with its history extended and cut to the last historyLen entries.
func (prev *State) Next(rev, lbcVersion string, now time.Time, cfgSHA, kaSHA string, vips []string) *State {
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

// Encode is state.json's bytes.
func (s *State) Encode() []byte {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // State has only marshalable fields
	}
	return append(b, '\n')
}

// Fingerprint is the sha256 of a file's bytes, in hex.
func Fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
