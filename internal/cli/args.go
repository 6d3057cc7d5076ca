package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"lbc/internal/shard"
	"lbc/internal/specfs"
	"lbc/reconcile"
	"lbc/schema"
)

// errUsage marks a command line that could not be parsed; the message has
// already been printed.
var errUsage = errors.New("usage")

// Source says where specs come from: a directory, or a directory at a Git revision.
type Source struct {
	Dir    string // spec tree (default ".")
	GitRev string // --git-rev: read the tree from this revision, no worktree
	Repo   string // --repo: the repository (default: the one holding Dir)

	NoCache bool // --no-cache: evaluate every instance, neither read nor write the cache
}

// SSHArgs are the connection flags of plan, apply and status.
type SSHArgs struct {
	KnownHosts     string
	KeyFile        string
	ConnectTimeout time.Duration
	// The bounds on what a host returns and how long lbc waits for it
	// (reconcile.Limits).
	MaxRead      int64 // bytes
	ReadTimeout  time.Duration
	StartTimeout time.Duration
	// ScriptTimeout bounds one script of a transaction (apply's policy).
	ScriptTimeout time.Duration
}

// Args is a parsed command line. Only the fields of the command are set.
type Args struct {
	Command string
	Source  Source
	SSH     SSHArgs
	Limits  schema.Limits // what loading the specs may take

	JSON     bool
	Markdown bool

	// plan, apply, status, watch: only this shard's devices (Count 0: all)
	Shard shard.Shard

	// validate, plan, apply, status: the certificate source and how soon
	// an expiry is warned about
	CertDir  string
	CertWarn time.Duration

	// shards
	Count int

	// compile
	Out          string
	NoLockUpdate bool
	Locked       bool
	Timings      bool

	// explain
	Balancer string

	// plan
	DetailedExitcode bool
	PlanOut          string

	// apply
	PlanFile       string
	Parallelism    int
	MaxFailures    int
	LockTimeout    time.Duration
	AllowDowngrade bool
	Force          bool
	Adopt          bool // also watch --apply
	Reload         bool // also watch --apply

	// watch
	WatchPlan  bool
	WatchApply bool
	Interval   time.Duration
	Debounce   time.Duration
}

// parseArgs parses the arguments that follow the command name. Flags may
// come before or after positional arguments. It prints usage errors to stderr.
func parseArgs(cmd string, argv []string, stderr io.Writer) (*Args, error) {
	a := &Args{Command: cmd, Source: Source{Dir: "."}, Parallelism: reconcile.DefaultParallelism, Limits: schema.DefaultLimits}
	fs := flag.NewFlagSet("lbc "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	limits := func() {
		fs.Var((*byteSize)(&a.Limits.MaxFileBytes), "max-file-size", "largest spec file read, in bytes (suffixes K, M, G: KiB, MiB, GiB; 0: no limit)")
		fs.IntVar(&a.Limits.MaxBalancers, "max-balancers", a.Limits.MaxBalancers, "most balancers a spec tree may define (0: no limit)")
		fs.IntVar(&a.Limits.MaxDevices, "max-devices", a.Limits.MaxDevices, "most devices a spec tree may define (0: no limit)")
	}
	source := func() {
		fs.StringVar(&a.Source.GitRev, "git-rev", "", "read the specs from this Git revision (no checkout)")
		fs.StringVar(&a.Source.Repo, "repo", "", "Git repository for --git-rev (default: the one holding DIR)")
		fs.BoolVar(&a.Source.NoCache, "no-cache", false, "evaluate every instance; neither read nor write the cache ($LBC_CACHE, default the user's cache directory)")
		limits()
	}
	ssh := func() {
		fs.StringVar(&a.SSH.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
		fs.StringVar(&a.SSH.KeyFile, "ssh-key", "", "private key file (default: the ssh-agent)")
		fs.DurationVar(&a.SSH.ConnectTimeout, "connect-timeout", 10*time.Second, "SSH connect timeout")
		a.SSH.MaxRead = reconcile.DefaultMaxRead
		fs.Var((*byteSize)(&a.SSH.MaxRead), "max-read", "most bytes one read of a host may return: its config, state.json, keepalived.conf and addresses (suffixes K, M, G)")
		fs.DurationVar(&a.SSH.ReadTimeout, "read-timeout", reconcile.DefaultReadTimeout, "longest one read of a host may take")
		fs.DurationVar(&a.SSH.StartTimeout, "start-timeout", reconcile.DefaultStartTimeout, "longest a host's lock holder may take to start (login, shell), beyond --lock-timeout")
		fs.IntVar(&a.Parallelism, "parallelism", reconcile.DefaultParallelism, "devices worked on at once: SSH connections open at once, changes in flight when --max-failures stops an apply (the default: fastest measured at 300 and 1,000 simulated hosts, README Performance)")
	}
	// applyPolicy: the flags of every command that applies, with one meaning.
	applyPolicy := func() {
		fs.DurationVar(&a.LockTimeout, "lock-timeout", 0, "wait this long for a device lock (0: fail at once)")
		fs.BoolVar(&a.AllowDowngrade, "allow-downgrade", false, "apply a revision older than the one a host runs")
		fs.BoolVar(&a.Force, "force", false, "apply even when a host runs a revision unknown to the repository")
		fs.DurationVar(&a.SSH.ScriptTimeout, "script-timeout", reconcile.DefaultScriptTimeout, "longest one script of a transaction may run on a host (then lbc lets go of it: the host commits or rolls back by itself)")
		fs.BoolVar(&a.Adopt, "adopt", false, "replace config files that lbc did not write (shown by plan as \"not managed by lbc\")")
		fs.BoolVar(&a.Reload, "reload", false, "apply every change by reload, also those HAProxy's runtime API could carry (server weights, states, servers added or removed)")
	}
	certs := func() {
		fs.StringVar(&a.CertDir, "cert-dir", "", "certificate source: a directory outside the spec tree holding NAME.pem (certificate, chain), NAME.key and, optionally, NAME.ca.pem (the CA its chain must be complete to)")
		fs.DurationVar(&a.CertWarn, "cert-warn", 30*24*time.Hour, "warn about a certificate that expires within this time")
	}
	shardFlag := func() {
		fs.Func("shard", "work on shard `i/n` only: its devices, shard i (from 0) of n (see lbc shards)", func(v string) error {
			sh, err := shard.Parse(v)
			a.Shard = sh
			return err
		})
	}
	npos := 1 // positional arguments allowed
	switch cmd {
	case "validate":
		source()
		certs()
		fs.BoolVar(&a.JSON, "json", false, "print diagnostics as JSON, one object a line")
	case "compile":
		source()
		fs.StringVar(&a.Out, "o", "out", "output directory")
		fs.BoolVar(&a.NoLockUpdate, "no-lock-update", false, "do not update the lock file")
		fs.BoolVar(&a.Locked, "locked", false, "fail when the placement would change")
		fs.BoolVar(&a.Timings, "timings", false, "print the time of each phase (load, schedule, render, write) to stderr")
	case "explain":
		source()
		npos = 2
	case "plan":
		source()
		certs()
		ssh()
		shardFlag()
		fs.BoolVar(&a.JSON, "json", false, "print the plan as JSON, one object a line")
		fs.BoolVar(&a.Markdown, "markdown", false, "print the plan as markdown (pull-request comment)")
		fs.BoolVar(&a.DetailedExitcode, "detailed-exitcode", false, "exit 0 when no changes, 2 when changes, 1 on error")
		fs.StringVar(&a.PlanOut, "out", "", "save the plan to this file")
		fs.BoolVar(&a.Locked, "locked", false, "fail when the placement would change")
	case "apply":
		source()
		certs()
		ssh()
		shardFlag()
		fs.BoolVar(&a.JSON, "json", false, "print results as JSON, one object a line")
		fs.IntVar(&a.MaxFailures, "max-failures", 0, "stop starting devices after this many failures (0: no limit)")
		applyPolicy()
		fs.BoolVar(&a.Locked, "locked", false, "fail when the placement would change")
	case "status":
		source()
		certs()
		ssh()
		shardFlag()
		fs.BoolVar(&a.JSON, "json", false, "print status as JSON, one object a line")
	case "watch":
		certs()
		ssh()
		limits()
		shardFlag()
		fs.BoolVar(&a.WatchPlan, "plan", false, "diff against the live hosts instead of the previous compile")
		fs.BoolVar(&a.WatchApply, "apply", false, "apply every new good result")
		applyPolicy()
		fs.DurationVar(&a.Interval, "interval", 0, "also re-plan this often (catches drift)")
		fs.DurationVar(&a.Debounce, "debounce", 100*time.Millisecond, "wait this long for a burst of edits to settle")
		fs.StringVar(&a.Out, "o", "", "with no --plan: compare against and keep the compiled output here")
		fs.BoolVar(&a.Source.NoCache, "no-cache", false, "evaluate every instance; neither read nor write the cache ($LBC_CACHE, default the user's cache directory)")
	case "shards":
		source()
		fs.IntVar(&a.Count, "count", 0, "how many shards (required)")
		fs.BoolVar(&a.JSON, "json", false, "print one JSON object a shard, one a line")
	case "schema", "version", "help":
		npos = 1
	default:
		return nil, fmt.Errorf("unknown command %q", cmd)
	}
	var pos []string
	rest := argv
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, errUsage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if len(pos) > npos {
		fmt.Fprintf(stderr, "lbc %s: too many arguments: %s\n", cmd, strings.Join(pos, " "))
		return nil, errUsage
	}
	switch cmd {
	case "explain":
		if len(pos) == 0 {
			fmt.Fprintln(stderr, "lbc explain: missing BALANCER")
			return nil, errUsage
		}
		a.Balancer = pos[0]
		if len(pos) > 1 {
			a.Source.Dir = pos[1]
		}
	case "apply":
		if len(pos) == 1 {
			a.Source.Dir = pos[0] // may be a plan file; resolved by the command
		}
	case "help":
		if len(pos) == 1 {
			a.Balancer = pos[0] // the topic
		}
	default:
		if len(pos) == 1 {
			a.Source.Dir = pos[0]
		}
	}
	if a.JSON && a.Markdown {
		fmt.Fprintf(stderr, "lbc %s: --json and --markdown exclude each other\n", cmd)
		return nil, errUsage
	}
	if cmd == "watch" && !a.WatchApply && (a.LockTimeout != 0 || a.AllowDowngrade || a.Force || a.Adopt || a.Reload) {
		fmt.Fprintln(stderr, "lbc watch: --lock-timeout, --allow-downgrade, --force, --adopt and --reload need --apply")
		return nil, errUsage
	}
	if cmd == "shards" && (a.Count < 1 || a.Count > shard.MaxCount) {
		fmt.Fprintf(stderr, "lbc shards: --count must be between 1 and %d\n", shard.MaxCount)
		return nil, errUsage
	}
	if cmd == "watch" && a.Shard.Count > 0 && !a.WatchPlan && !a.WatchApply {
		fmt.Fprintln(stderr, "lbc watch: --shard needs --plan or --apply (it selects hosts)")
		return nil, errUsage
	}
	if a.SSH.MaxRead < 0 || a.SSH.ReadTimeout < 0 || a.SSH.StartTimeout < 0 || a.SSH.ScriptTimeout < 0 {
		fmt.Fprintf(stderr, "lbc %s: --max-read, --read-timeout, --start-timeout and --script-timeout must not be negative (0: the default)\n", cmd)
		return nil, errUsage
	}
	if a.Parallelism < 1 {
		fmt.Fprintf(stderr, "lbc %s: --parallelism must be at least 1\n", cmd)
		return nil, errUsage
	}
	return a, nil
}

// byteSize is a flag of a byte count: 1048576, 512K, 64M, 1G (powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return specfs.Bytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	t := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	if t != "" {
		switch t[len(t)-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("invalid size %q: want a number of bytes, with an optional K, M or G", s)
	}
	*b = byteSize(n * mult)
	return nil
}
