package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbc/internal/shard"
	"lbc/reconcile"
	"lbc/schema"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		argv []string
		want Args
	}{
		{"validate", nil, Args{Command: "validate", Source: Source{Dir: "."}, Parallelism: reconcile.DefaultParallelism}},
		{"validate", []string{"specs", "--json"}, Args{Command: "validate", Source: Source{Dir: "specs"}, JSON: true, Parallelism: reconcile.DefaultParallelism}},
		{"compile", []string{"-o", "build", "specs", "--locked"}, Args{Command: "compile", Source: Source{Dir: "specs"}, Out: "build", Locked: true, Parallelism: reconcile.DefaultParallelism}},
		{"explain", []string{"shop-web", "specs", "--git-rev", "HEAD~1"}, Args{Command: "explain", Balancer: "shop-web", Source: Source{Dir: "specs", GitRev: "HEAD~1"}, Parallelism: reconcile.DefaultParallelism}},
		{"plan", []string{"--detailed-exitcode", "--markdown", "-out", "p.json", "d"}, Args{Command: "plan", Source: Source{Dir: "d"}, Markdown: true, DetailedExitcode: true, PlanOut: "p.json",
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second}, Parallelism: reconcile.DefaultParallelism}},
		{"apply", []string{"plan.json", "--parallelism", "3", "--lock-timeout", "5s", "--known-hosts", "kh", "--ssh-key", "k"}, Args{Command: "apply", Source: Source{Dir: "plan.json"}, Parallelism: 3, LockTimeout: 5 * time.Second,
			SSH: SSHArgs{KnownHosts: "kh", KeyFile: "k", ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second, ScriptTimeout: 10 * time.Minute}}},
		{"apply", []string{"specs", "--adopt"}, Args{Command: "apply", Source: Source{Dir: "specs"}, Parallelism: reconcile.DefaultParallelism, Adopt: true, SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second, ScriptTimeout: 10 * time.Minute}}},
		{"watch", []string{"specs", "--apply", "--adopt"}, Args{Command: "watch", Source: Source{Dir: "specs"}, Parallelism: reconcile.DefaultParallelism, WatchApply: true, Adopt: true,
			Debounce: 100 * time.Millisecond, SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second, ScriptTimeout: 10 * time.Minute}}},
		// watch --apply takes apply's policy flags, with the same meaning.
		{"watch", []string{"specs", "--apply", "--lock-timeout", "3s", "--allow-downgrade", "--force"}, Args{Command: "watch", Source: Source{Dir: "specs"},
			WatchApply: true, LockTimeout: 3 * time.Second, AllowDowngrade: true, Force: true, Debounce: 100 * time.Millisecond,
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second, ScriptTimeout: 10 * time.Minute}, Parallelism: reconcile.DefaultParallelism}},
		{"status", []string{"--shard", "2/5", "d"}, Args{Command: "status", Source: Source{Dir: "d"}, Shard: shard.Shard{Index: 2, Count: 5},
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second}, Parallelism: reconcile.DefaultParallelism}},
		{"shards", []string{"--count", "4", "--json"}, Args{Command: "shards", Source: Source{Dir: "."}, Count: 4, JSON: true, Parallelism: reconcile.DefaultParallelism}},
		{"status", []string{"--max-read", "8M", "--read-timeout", "5s", "--start-timeout", "1m", "d"}, Args{Command: "status", Source: Source{Dir: "d"}, Parallelism: reconcile.DefaultParallelism,
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 8 << 20, ReadTimeout: 5 * time.Second, StartTimeout: time.Minute}}},
		{"compile", []string{"--max-file-size", "2M", "--max-balancers", "200000", "--max-devices", "5"}, Args{Command: "compile", Source: Source{Dir: "."}, Out: "out", Parallelism: reconcile.DefaultParallelism,
			Limits: schema.Limits{MaxFileBytes: 2 << 20, MaxBalancers: 200000, MaxDevices: 5}}},
		{"watch", []string{"d", "--max-file-size", "1G"}, Args{Command: "watch", Source: Source{Dir: "d"}, Debounce: 100 * time.Millisecond,
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second, ScriptTimeout: 10 * time.Minute}, Parallelism: reconcile.DefaultParallelism,
			Limits: schema.Limits{MaxFileBytes: 1 << 30, MaxBalancers: schema.DefaultLimits.MaxBalancers, MaxDevices: schema.DefaultLimits.MaxDevices}}},
		{"plan", []string{"--cert-dir", "/etc/lbc/certs", "--cert-warn", "240h", "d"}, Args{Command: "plan", Source: Source{Dir: "d"}, Parallelism: reconcile.DefaultParallelism, CertDir: "/etc/lbc/certs", CertWarn: 240 * time.Hour,
			SSH: SSHArgs{ConnectTimeout: 10 * time.Second, MaxRead: 64 << 20, ReadTimeout: 2 * time.Minute, StartTimeout: 30 * time.Second}}},
	} {
		if tc.want.Limits == (schema.Limits{}) {
			tc.want.Limits = schema.DefaultLimits // every command that loads specs
		}
		switch tc.cmd {
		case "validate", "plan", "apply", "status", "watch":
			if tc.want.CertWarn == 0 {
				tc.want.CertWarn = 30 * 24 * time.Hour // the certificate source's flags
			}
		}
		got, err := parseArgs(tc.cmd, tc.argv, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%s %q: %v", tc.cmd, tc.argv, err)
			continue
		}
		if diff := cmp.Diff(tc.want, *got); diff != "" {
			t.Errorf("%s %q (-want +got):\n%s", tc.cmd, tc.argv, diff)
		}
	}
}

func TestParseArgsRejects(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		argv []string
		want string
	}{
		{"validate", []string{"a", "b"}, "too many arguments"},
		{"validate", []string{"--max-file-size", "64X"}, `invalid size "64X"`},
		{"validate", []string{"--max-file-size", "-1"}, `invalid size "-1"`},
		{"explain", nil, "missing BALANCER"},
		{"plan", []string{"--json", "--markdown"}, "exclude each other"},
		{"apply", []string{"--parallelism", "0"}, "at least 1"},
		{"apply", []string{"--insecure"}, "flag provided but not defined: -insecure"},
		{"watch", []string{"--adopt"}, "need --apply"},
		{"plan", []string{"--read-timeout", "-1s"}, "must not be negative"},
		{"watch", []string{"--allow-downgrade"}, "need --apply"},
		{"watch", []string{"--plan", "--lock-timeout", "1s"}, "need --apply"},
		{"apply", []string{"--shard", "4/4"}, "i must be between 0 and n-1"},
		{"shards", []string{"--count", "0"}, "--count must be between 1"},
	} {
		var stderr bytes.Buffer
		if _, err := parseArgs(tc.cmd, tc.argv, &stderr); err == nil {
			t.Errorf("%s %q: accepted", tc.cmd, tc.argv)
		} else if !bytes.Contains(stderr.Bytes(), []byte(tc.want)) {
			t.Errorf("%s %q: stderr %q, want it to say %q", tc.cmd, tc.argv, stderr.String(), tc.want)
		}
	}
}
