package compiler

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports are what a pure compiler must not use: no files, no
// processes, no network, no SSH, no context (it does no I/O to cancel).
var forbiddenImports = map[string]bool{
	"os": true, "os/exec": true, "os/signal": true, "net": true, "net/http": true,
	"syscall": true, "io/ioutil": true, "context": true, "unsafe": true,
	"golang.org/x/crypto/ssh": true, "golang.org/x/sys/unix": true,
}

func TestCompilerIsPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if forbiddenImports[p] || strings.HasPrefix(p, "golang.org/x/crypto/ssh") || strings.HasPrefix(p, "lbc/reconcile") || strings.HasPrefix(p, "lbc/internal") {
				t.Errorf("%s: imports %q: the compiler must do no I/O", fset.Position(imp.Pos()), p)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files: is the test running in the package directory?", checked)
	}
}
