package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"lbc/internal/cli"
)

// TestMain registers lbc as a command of the scripts (the test binary runs
// cli.Main when a script execs lbc). With LBC_TEST_MAIN=1 the binary is lbc
// itself: the watch tests start it that way as a real process.
func TestMain(m *testing.M) {
	if os.Getenv("LBC_TEST_MAIN") == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(testscript.RunMain(m, map[string]func() int{
		"lbc": func() int { return cli.Main(os.Args[1:], os.Stdout, os.Stderr) },
	}))
}

// TestScripts runs testdata/script/*.txtar: each is a session of lbc
// commands with their exit codes, stdout and stderr.
//
// Extra script commands and conditions:
//
//	exits CODE PROG ARGS  run PROG like exec and require exit code CODE
//	setenvfile VAR FILE   set VAR to FILE's content without surrounding blanks
//	need PROGRAM          fail unless PROGRAM is installed
//	[ci]                  the environment variable CI is set
//
// A script that needs a tool skips when it is absent, but fails under CI:
//
//	[!exec:git] [!ci] skip 'git is not installed'
//	need git
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// git needs an identity and a home; keep the user's config out.
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			env.Setenv("GIT_AUTHOR_NAME", "lbc test")
			env.Setenv("GIT_AUTHOR_EMAIL", "test@example.com")
			env.Setenv("GIT_COMMITTER_NAME", "lbc test")
			env.Setenv("GIT_COMMITTER_EMAIL", "test@example.com")
			env.Setenv("NO_COLOR", "1")
			if os.Getenv("CI") != "" {
				env.Setenv("CI", os.Getenv("CI"))
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "ci":
				return os.Getenv("CI") != "", nil
			}
			return false, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROG [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("%s: %v", args[1], err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
				}
			},
			"setenvfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: setenvfile VAR FILE")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
			},
			"need": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: need PROGRAM")
				}
				if _, err := exec.LookPath(args[0]); err != nil {
					ts.Fatalf("%s is not installed (CI is set: failing instead of skipping)", args[0])
				}
			},
		},
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
	})
}
