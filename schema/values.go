package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing/fstest"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// Values that reach a host without coming from a spec tree (those a saved
// plan carries) are checked here with the rules a spec is checked with:
// the schema's own definitions and the Go checks that follow it. There is
// no second copy of the rules: a rule changed in schema.cue or check.go
// applies to both.

// CheckDevices checks devices as the loader checks the devices of a spec
// tree: each is written as a spec (the fields that are set; defaults fill
// the others, as in a spec) and loaded. The error lists every problem as
// "devices.NAME.field: message".
func CheckDevices(ctx context.Context, devs []*Device) error {
	if len(devs) == 0 {
		return nil
	}
	all := map[string]any{}
	for _, d := range devs {
		if _, dup := all[d.Name]; dup {
			return fmt.Errorf("devices.%s: defined twice", label(d.Name))
		}
		all[d.Name] = deviceData(d)
	}
	text, err := json.MarshalIndent(map[string]any{"devices": all}, "", " ")
	if err != nil {
		return err
	}
	fsys := fstest.MapFS{"devices.cue": &fstest.MapFile{Data: text, Mode: 0o644}}
	_, err = Load(ctx, fs.FS(fsys))
	var ds Diagnostics
	if !errors.As(err, &ds) {
		return err
	}
	// The positions are in the text made here: leave them out.
	msgs := make([]string, 0, len(ds))
	for _, d := range ds {
		if d.Path != "" {
			msgs = append(msgs, d.Path+": "+d.Message)
		} else {
			msgs = append(msgs, d.Message)
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// deviceData is d as spec data, without the fields that are not set.
func deviceData(d *Device) map[string]any {
	m := map[string]any{"address": d.Address}
	set := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	ssh := map[string]any{"sudo": d.SSH.Sudo}
	set(ssh, "user", d.SSH.User)
	if d.SSH.Port != 0 {
		ssh["port"] = d.SSH.Port
	}
	m["ssh"] = ssh
	set(m, "stateDir", d.StateDir)
	set(m, "vipInterface", d.VIPInterface)
	hp := map[string]any{}
	set(hp, "config", d.HAProxy.Config)
	set(hp, "reload", d.HAProxy.Reload)
	set(hp, "check", d.HAProxy.Check)
	m["haproxy"] = hp
	ka := map[string]any{}
	set(ka, "config", d.Keepalived.Config)
	set(ka, "reload", d.Keepalived.Reload)
	set(ka, "check", d.Keepalived.Check)
	m["keepalived"] = ka
	return m
}

// Definitions values can be checked against with CheckValue.
const (
	DefName      = "#Name"
	DefPath      = "#Path"
	DefInterface = "#Interface"
	DefCommand   = "#Command"
)

var defs struct {
	once sync.Once
	mu   sync.Mutex // cue.Values are not safe for concurrent use
	root cue.Value
	err  error
}

// CheckValue checks s against the schema's definition def (DefName,
// DefPath, ...), as a spec value of that type is checked.
func CheckValue(def, s string) error {
	defs.once.Do(func() {
		defs.root = cuecontext.New().CompileString(schemaSource, cue.Filename(schemaFile))
		defs.err = defs.root.Err()
	})
	if defs.err != nil {
		return fmt.Errorf("compile embedded schema: %w", defs.err)
	}
	defs.mu.Lock()
	defer defs.mu.Unlock()
	d := defs.root.LookupPath(cue.ParsePath(def))
	if !d.Exists() {
		return fmt.Errorf("schema has no %s", def)
	}
	if err := d.Unify(d.Context().Encode(s)).Validate(cue.Concrete(true)); err != nil {
		if desc, ok := regexNames[def]; ok {
			return fmt.Errorf("invalid value %q: %s", s, desc)
		}
		return fmt.Errorf("invalid value %q: not a %s", s, strings.TrimPrefix(def, "#"))
	}
	return nil
}
