package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"lbc/internal/cli"
)

// TestMain lets the recipes' scripts run lbc: with LBC_TEST_MAIN=1 this
// test binary is lbc itself (see lbcOnPath).
func TestMain(m *testing.M) {
	if os.Getenv("LBC_TEST_MAIN") == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// lbcOnPath returns a directory holding an `lbc` that runs this test
// binary as lbc, for PATH.
func lbcOnPath(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nLBC_TEST_MAIN=1 exec " + strconv.Quote(self) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "lbc"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// needTool skips when a program is missing, except under CI.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI=%s)", name, os.Getenv("CI"))
		}
		t.Skipf("%s is not installed", name)
	}
}

// specsRepo makes a Git repository whose specs/ is examples/fleet, with
// one commit, and returns its path and the commit's hash.
func specsRepo(t *testing.T) (string, string) {
	t.Helper()
	needTool(t, "git")
	repo := filepath.Join(t.TempDir(), "lb-specs")
	if err := os.CopyFS(filepath.Join(repo, "specs"), os.DirFS("fleet")); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "specs")
	git(t, repo, "commit", "-q", "-m", "fleet")
	return repo, git(t, repo, "rev-parse", "HEAD")
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=lbc test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=lbc test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// run runs prog in dir with env added, bounded in time, and returns its
// exit code and output.
func run(t *testing.T, dir string, env []string, prog string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return code, stdout.String(), stderr.String()
}

// shardsOf runs lbc shards --json and returns each shard's devices.
func shardsOf(t *testing.T, dir string, args ...string) [][]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	code := cli.Main(append([]string{"shards", "--json"}, args...), &stdout, &stderr)
	os.Chdir(old)
	if code != 0 {
		t.Fatalf("lbc shards %v: exit %d\n%s", args, code, stderr.String())
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !strings.HasPrefix(line, `{"type":"shard",`) {
			continue
		}
		var s struct {
			Devices []string `json:"devices"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.Devices)
	}
	return out
}

// dryRunRefusal is how a dry run of an apply or status ends: every flag
// parsed, the specs read from the commit and compiled, then the missing
// known_hosts stops it before any connection (no host is reached).
var dryRunRefusal = regexp.MustCompile(`lbc (apply|status): known_hosts: .*no such file or directory \(hosts are always checked; use --known-hosts FILE\)`)

// The subset of Kubernetes' batch/v1 Job API that the recipe uses, decoded
// strictly: a field the API does not have (a typo, a wrong level) is an
// error, as the API server's strict field validation makes it.
type (
	k8sJob struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   k8sMeta    `yaml:"metadata"`
		Spec       k8sJobSpec `yaml:"spec"`
	}
	k8sMeta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	k8sJobSpec struct {
		CompletionMode          string `yaml:"completionMode"`
		Completions             *int32 `yaml:"completions"`
		Parallelism             *int32 `yaml:"parallelism"`
		BackoffLimit            *int32 `yaml:"backoffLimit"`
		BackoffLimitPerIndex    *int32 `yaml:"backoffLimitPerIndex"`
		ActiveDeadlineSeconds   *int64 `yaml:"activeDeadlineSeconds"`
		TTLSecondsAfterFinished *int32 `yaml:"ttlSecondsAfterFinished"`
		Template                struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	k8sPodSpec struct {
		RestartPolicy                string         `yaml:"restartPolicy"`
		AutomountServiceAccountToken *bool          `yaml:"automountServiceAccountToken"`
		SecurityContext              *k8sPodSecCtx  `yaml:"securityContext"`
		InitContainers               []k8sContainer `yaml:"initContainers"`
		Containers                   []k8sContainer `yaml:"containers"`
		Volumes                      []k8sVolume    `yaml:"volumes"`
	}
	k8sPodSecCtx struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
		RunAsGroup   *int64 `yaml:"runAsGroup"`
		FSGroup      *int64 `yaml:"fsGroup"`
	}
	k8sContainer struct {
		Name      string   `yaml:"name"`
		Image     string   `yaml:"image"`
		Command   []string `yaml:"command"`
		Args      []string `yaml:"args"`
		Env       []k8sEnv `yaml:"env"`
		Resources *struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts    []k8sMount `yaml:"volumeMounts"`
		SecurityContext *struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			Capabilities             *struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
	}
	k8sEnv struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	}
	k8sMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	k8sVolume struct {
		Name     string    `yaml:"name"`
		EmptyDir *struct{} `yaml:"emptyDir"`
		Secret   *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int32 `yaml:"defaultMode"`
			Items       []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
	}
)

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	envName          = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	quantity         = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$`)
	varRef           = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
)

// checkJob applies the API server's validation rules for what the recipe
// uses (names, required fields, Indexed mode, restart policy, volumes and
// mounts, modes, quantities) and returns every violation.
func checkJob(j *k8sJob) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if j.APIVersion != "batch/v1" || j.Kind != "Job" {
		bad("apiVersion/kind %s/%s, want batch/v1 Job", j.APIVersion, j.Kind)
	}
	if !dns1123Subdomain.MatchString(j.Metadata.Name) {
		bad("metadata.name %q: not a DNS-1123 subdomain", j.Metadata.Name)
	}
	s := j.Spec
	switch s.CompletionMode {
	case "Indexed":
		if s.Completions == nil || *s.Completions < 1 {
			bad("spec.completions: required with completionMode Indexed")
		}
	case "", "NonIndexed":
		if s.BackoffLimitPerIndex != nil {
			bad("spec.backoffLimitPerIndex: only with completionMode Indexed")
		}
	default:
		bad("spec.completionMode %q: Indexed or NonIndexed", s.CompletionMode)
	}
	for name, p := range map[string]*int32{"completions": s.Completions, "parallelism": s.Parallelism, "backoffLimitPerIndex": s.BackoffLimitPerIndex, "ttlSecondsAfterFinished": s.TTLSecondsAfterFinished} {
		if p != nil && *p < 0 {
			bad("spec.%s: must be >= 0", name)
		}
	}
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		bad("spec.activeDeadlineSeconds: must be > 0")
	}
	ps := s.Template.Spec
	if ps.RestartPolicy != "Never" && ps.RestartPolicy != "OnFailure" {
		bad("spec.template.spec.restartPolicy %q: a Job's is Never or OnFailure", ps.RestartPolicy)
	}
	if s.BackoffLimitPerIndex != nil && ps.RestartPolicy != "Never" {
		bad("spec.backoffLimitPerIndex: needs restartPolicy Never")
	}
	vols := map[string]bool{}
	for i, v := range ps.Volumes {
		if !dns1123Label.MatchString(v.Name) || vols[v.Name] {
			bad("volumes[%d].name %q: not a DNS-1123 label, or not unique", i, v.Name)
		}
		vols[v.Name] = true
		if (v.EmptyDir != nil) == (v.Secret != nil) {
			bad("volumes[%d]: exactly one volume source", i)
		}
		if v.Secret != nil {
			if !dns1123Subdomain.MatchString(v.Secret.SecretName) {
				bad("volumes[%d].secret.secretName %q", i, v.Secret.SecretName)
			}
			if m := v.Secret.DefaultMode; m != nil && (*m < 0 || *m > 0o777) {
				bad("volumes[%d].secret.defaultMode %o: 0 to 0777", i, *m)
			}
			for k, it := range v.Secret.Items {
				if it.Key == "" || it.Path == "" || strings.HasPrefix(it.Path, "/") || strings.Contains(it.Path, "..") {
					bad("volumes[%d].secret.items[%d]: key and a relative path", i, k)
				}
			}
		}
	}
	if len(ps.Containers) == 0 {
		bad("spec.template.spec.containers: at least one")
	}
	names := map[string]bool{}
	for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
		if !dns1123Label.MatchString(c.Name) || names[c.Name] {
			bad("container name %q: not a DNS-1123 label, or not unique", c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			bad("container %s: image required", c.Name)
		}
		for _, e := range c.Env {
			if !envName.MatchString(e.Name) {
				bad("container %s: env name %q", c.Name, e.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				bad("container %s: volumeMount %q names no volume", c.Name, m.Name)
			}
			if !strings.HasPrefix(m.MountPath, "/") {
				bad("container %s: mountPath %q is not absolute", c.Name, m.MountPath)
			}
		}
		if c.Resources != nil {
			for _, q := range []map[string]string{c.Resources.Requests, c.Resources.Limits} {
				for k, v := range q {
					if !quantity.MatchString(v) {
						bad("container %s: resources %s %q is not a quantity", c.Name, k, v)
					}
				}
			}
		}
	}
	return errs
}

// expand replaces $(VAR) references as the kubelet does, from env; it
// fails on a reference env does not define.
func expand(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := varRef.FindStringSubmatch(ref)[1]
		v, ok := env[name]
		if !ok {
			t.Errorf("%q refers to $(%s), which the container does not define", s, name)
		}
		return v
	})
}

// TestKubernetesJob validates examples/kubernetes/lbc-apply-job.yaml
// offline (no validator such as kubeconform, nor the API's schema, can be
// had on this machine: the Job API subset it uses is decoded strictly and
// checked by the API server's rules for it) and dry-runs what its pods
// run: the init container's git clone, then each index's lbc apply, up to
// the connection to the hosts. The shards' devices cover examples/fleet
// once.
func TestKubernetesJob(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("kubernetes", "lbc-apply-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var job k8sJob
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("lbc-apply-job.yaml: %v", err)
	}
	for _, e := range checkJob(&job) {
		t.Errorf("lbc-apply-job.yaml: %s", e)
	}
	s := job.Spec
	if s.CompletionMode != "Indexed" || s.Completions == nil || s.Parallelism == nil || *s.Parallelism != *s.Completions {
		t.Fatalf("want an Indexed Job running every shard at once (parallelism = completions)")
	}
	n := int(*s.Completions)
	ps := s.Template.Spec
	var apply *k8sContainer
	for i := range ps.Containers {
		if ps.Containers[i].Name == "apply" {
			apply = &ps.Containers[i]
		}
	}
	if apply == nil || len(ps.InitContainers) != 1 {
		t.Fatal("want an init container that clones and a container named apply")
	}
	// The key and known_hosts come from Secrets, the key readable by its owner only.
	mounts := map[string]string{}
	for _, m := range apply.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	secretFile := map[string]string{} // file path in the container → secret
	for _, v := range ps.Volumes {
		if v.Secret == nil {
			continue
		}
		for _, it := range v.Secret.Items {
			secretFile[mounts[v.Name]+"/"+it.Path] = v.Secret.SecretName
		}
		if v.Secret.SecretName == "lbc-ssh-key" && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400) {
			t.Errorf("the SSH key's secret volume: defaultMode want 0400")
		}
	}
	env := map[string]string{"JOB_COMPLETION_INDEX": ""} // the Job controller sets it
	for _, e := range apply.Env {
		env[e.Name] = e.Value
	}
	args := strings.Join(apply.Args, " ")
	for _, want := range []string{"--git-rev=$(LBC_SHA)", fmt.Sprintf("--shard=$(JOB_COMPLETION_INDEX)/%d", n), "--json", "--locked"} {
		if !strings.Contains(args, want) {
			t.Errorf("apply args %q lack %q", args, want)
		}
	}
	var keyFile, khFile, repoPath string
	for _, a := range apply.Args {
		if v, ok := strings.CutPrefix(a, "--ssh-key="); ok {
			keyFile = v
		}
		if v, ok := strings.CutPrefix(a, "--known-hosts="); ok {
			khFile = v
		}
		if v, ok := strings.CutPrefix(a, "--repo="); ok {
			repoPath = v
		}
	}
	if secretFile[keyFile] != "lbc-ssh-key" || secretFile[khFile] != "lbc-known-hosts" {
		t.Errorf("--ssh-key %s and --known-hosts %s: want files of the secrets lbc-ssh-key and lbc-known-hosts (%v)", keyFile, khFile, secretFile)
	}

	// The dry run: the pod's paths under a scratch root.
	repo, sha := specsRepo(t)
	root := t.TempDir()
	path := func(p string) string { return filepath.Join(root, p) }
	init := ps.InitContainers[0]
	initEnv := map[string]string{}
	for _, e := range init.Env {
		initEnv[e.Name] = e.Value
	}
	initEnv["LBC_REPO_URL"] = repo
	if len(init.Args) == 0 || init.Args[0] != "clone" {
		t.Fatalf("init container args %v: want a git clone", init.Args)
	}
	var cloneArgs []string
	for _, a := range init.Args {
		if strings.HasPrefix(a, "/") {
			a = path(a) // the pod's paths; not those a variable brings in
		}
		cloneArgs = append(cloneArgs, expand(t, a, initEnv))
	}
	git(t, root, cloneArgs...)
	env["LBC_SHA"] = sha
	var all []string
	for i := range n {
		env["JOB_COMPLETION_INDEX"] = strconv.Itoa(i)
		var argv []string
		for _, a := range apply.Args {
			a = expand(t, a, env)
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, "/") {
				a = k + "=" + path(v)
			}
			argv = append(argv, a)
		}
		var stdout, stderr bytes.Buffer
		old, _ := os.Getwd()
		os.Chdir(root)
		code := cli.Main(argv, &stdout, &stderr)
		os.Chdir(old)
		if code != 1 || !dryRunRefusal.MatchString(stderr.String()) {
			t.Errorf("index %d: lbc %s: exit %d, want 1 at the missing known_hosts\nstdout:\n%s\nstderr:\n%s", i, strings.Join(argv, " "), code, stdout.String(), stderr.String())
		}
		devs := shardsOf(t, root, "--git-rev", sha, "--repo", path(repoPath), "--count", strconv.Itoa(n), "specs")
		if len(devs) != n {
			t.Fatalf("lbc shards: %d shards, want %d", len(devs), n)
		}
		all = append(all, devs[i]...)
	}
	slices.Sort(all)
	if want := load(t, "fleet").DeviceNames(); !slices.Equal(all, want) {
		t.Errorf("the %d shards hold %v, want each of %v once", n, all, want)
	}
}

// TestCIShards checks the sharded apply of examples/ci/github-actions.yml
// and dry-runs it: each matrix entry's Apply step runs, by bash, as the
// runner would, with lbc on PATH, in a checkout of a specs repository, up
// to the connection to the hosts (no credentials step: no known_hosts);
// then the fleet-status job's step, over the results the shards kept.
func TestCIShards(t *testing.T) {
	needTool(t, "bash")
	data, err := os.ReadFile(filepath.Join("ci", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			If       string            `yaml:"if"`
			Needs    any               `yaml:"needs"`
			Env      map[string]string `yaml:"env"`
			Strategy struct {
				FailFast *bool `yaml:"fail-fast"`
				Matrix   struct {
					Shard []int `yaml:"shard"`
				} `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Name string `yaml:"name"`
				Run  string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatalf("github-actions.yml: %v", err)
	}
	job, ok := wf.Jobs["apply-shards"]
	if !ok {
		t.Fatal("no job apply-shards")
	}
	n := len(job.Strategy.Matrix.Shard)
	for i, s := range job.Strategy.Matrix.Shard {
		if s != i {
			t.Errorf("matrix.shard %v: want 0 .. n-1", job.Strategy.Matrix.Shard)
			break
		}
	}
	if job.Env["SHARDS"] != strconv.Itoa(n) {
		t.Errorf("SHARDS %q, want the matrix's length %d", job.Env["SHARDS"], n)
	}
	if ff := job.Strategy.FailFast; ff == nil || *ff {
		t.Error("fail-fast: want false (every shard runs to its end)")
	}
	if !strings.Contains(job.If, "vars.LBC_SHARDED == 'true'") || !strings.Contains(wf.Jobs["apply"].If, "vars.LBC_SHARDED != 'true'") {
		t.Errorf("apply and apply-shards must exclude each other: %q, %q", wf.Jobs["apply"].If, job.If)
	}
	step := func(job, name string) string {
		for _, s := range wf.Jobs[job].Steps {
			if strings.HasPrefix(s.Name, name) {
				return s.Run
			}
		}
		t.Fatalf("job %s: no step %q", job, name)
		return ""
	}
	applyRun := step("apply-shards", "Apply shard")
	if !strings.Contains(applyRun, `--shard "${{ matrix.shard }}/$SHARDS"`) || !strings.Contains(applyRun, `--git-rev "$GITHUB_SHA"`) {
		t.Errorf("the Apply step does not apply --git-rev $GITHUB_SHA --shard matrix.shard/SHARDS:\n%s", applyRun)
	}

	repo, sha := specsRepo(t)
	temp := t.TempDir()
	env := []string{"PATH=" + lbcOnPath(t) + ":" + os.Getenv("PATH"), "GITHUB_SHA=" + sha, "RUNNER_TEMP=" + temp,
		"SPECS=" + wf.Env["SPECS"], "SHARDS=" + job.Env["SHARDS"]}
	if err := os.MkdirAll(filepath.Join(temp, "results"), 0o755); err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range n {
		script := strings.ReplaceAll(applyRun, "${{ matrix.shard }}", strconv.Itoa(i))
		code, stdout, stderr := run(t, repo, env, "bash", "-e", "-c", script)
		if code != 1 || !dryRunRefusal.MatchString(stderr) {
			t.Errorf("shard %d: exit %d, want 1 at the missing known_hosts\n%s\nstdout:\n%s\nstderr:\n%s", i, code, script, stdout, stderr)
		}
		kept := filepath.Join(temp, fmt.Sprintf("apply-%d.json", i))
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("shard %d kept no result: %v", i, err)
		}
		os.Rename(kept, filepath.Join(temp, "results", filepath.Base(kept))) // what upload/download-artifact do
		all = append(all, shardsOf(t, repo, "--git-rev", sha, "--count", strconv.Itoa(n), wf.Env["SPECS"])[i]...)
	}
	slices.Sort(all)
	if want := load(t, "fleet").DeviceNames(); !slices.Equal(all, want) {
		t.Errorf("the %d shards hold %v, want each of %v once", n, all, want)
	}
	if !strings.Contains(fmt.Sprint(wf.Jobs["fleet-status"].Needs), "apply-shards") {
		t.Errorf("fleet-status needs %v, want apply-shards", wf.Jobs["fleet-status"].Needs)
	}
	statusRun := step("fleet-status", "Fleet status")
	code, stdout, stderr := run(t, repo, env, "bash", "-e", "-c", statusRun)
	if code != 1 || !dryRunRefusal.MatchString(stderr) || strings.Contains(statusRun, "--shard") {
		t.Errorf("fleet status: exit %d, want 1 at the missing known_hosts, over the whole fleet\n%s\nstdout:\n%s\nstderr:\n%s", code, statusRun, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(temp, "apply.json")); err != nil {
		t.Errorf("fleet status collected no apply.json: %v", err)
	}
}
