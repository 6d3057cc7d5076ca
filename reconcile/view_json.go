package reconcile

import (
	"encoding/json"
	"io"
)

// jsonDevice is one line of the JSON view: the device plan without the
// files it would write.
type jsonDevice struct {
	Type           string            `json:"type"` // "device"
	Device         string            `json:"device"`
	Address        string            `json:"address"`
	Status         Status            `json:"status"`
	ConfigDiff     string            `json:"configDiff,omitempty"`
	KeepalivedDiff string            `json:"keepalivedDiff,omitempty"`
	VIPsAdd        []string          `json:"vipsAdd,omitempty"`
	VIPsRemove     []string          `json:"vipsRemove,omitempty"`
	Notes          []string          `json:"notes,omitempty"`
	LiveRevision   string            `json:"liveRevision,omitempty"`
	Fingerprints   map[string]string `json:"fingerprints,omitempty"`
	Error          string            `json:"error,omitempty"`
}

type jsonSummary struct {
	Type        string `json:"type"` // "summary"
	Revision    string `json:"revision"`
	Changes     int    `json:"changes"`
	Unchanged   int    `json:"unchanged"`
	Unreachable int    `json:"unreachable"`
	Failed      int    `json:"failed"`
	// Notes are the plan's own notes (devices that left the spec).
	Notes []string `json:"notes,omitempty"`
}

// WriteJSON writes one JSON object a line: one per device (type "device"),
// then one summary (type "summary").
func WriteJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	for _, d := range p.Devices {
		if err := enc.Encode(jsonDevice{
			Type: "device", Device: d.Device, Address: d.Address, Status: d.Status,
			ConfigDiff: d.ConfigDiff, KeepalivedDiff: d.KeepalivedDiff,
			VIPsAdd: d.VIPsAdd, VIPsRemove: d.VIPsRemove, Notes: d.Notes,
			LiveRevision: d.LiveRevision, Fingerprints: d.Fingerprints, Error: d.Error,
		}); err != nil {
			return err
		}
	}
	c, u, un, f := p.Counts()
	return enc.Encode(jsonSummary{Type: "summary", Revision: p.Revision, Changes: c, Unchanged: u, Unreachable: un, Failed: f, Notes: p.Notes})
}
