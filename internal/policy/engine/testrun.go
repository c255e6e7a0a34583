package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestTimeout bounds each test rule run by RunTests.
var TestTimeout = 30 * time.Second

// RunTests runs the Rego unit tests under dir like `opa test dir`: every
// rule whose name starts with test_ in every *.rego file (Rego v0 or v1,
// detected per file), with Gantry's built-ins (sanitized, and without the
// disabled ones) and, in packages spacelift and gantry, the PLAN helpers.
// A built-in's error fails the test that hits it, as it fails an
// evaluation (strict built-in errors, see regoOptions). It writes a report to out (every test when verbose, else the failures
// and a summary) and returns the number of tests passed and failed. Policy
// mistakes are returned as a *CompileError; a failing test is not an error.
func RunTests(ctx context.Context, dir string, out io.Writer, verbose bool) (passed, failed int, err error) {
	modules, err := loadTestModules(dir)
	if err != nil {
		return 0, 0, err
	}
	if len(modules) == 0 {
		return 0, 0, fmt.Errorf("no .rego files under %s", dir)
	}
	e := defaultEnv()
	// The runner applies each custom built-in's Func to every rego instance
	// it makes: the first entry only passes the capabilities, so the
	// evaluator enforces them as in Compile (its declaration is unused: the
	// runner has a compiler).
	custom := []*tester.Builtin{{Decl: &ast.Builtin{Name: "gantry.capabilities"}, Func: rego.Capabilities(e.caps)}}
	for _, cb := range e.custom {
		custom = append(custom, &tester.Builtin{Decl: cb.decl, Func: cb.impl})
	}
	runner := tester.NewRunner().
		SetCompiler(e.newCompiler()).
		SetTimeout(TestTimeout).
		RaiseBuiltinErrors(true). // a built-in's error is the test's, as it fails an evaluation (regoOptions)
		CapturePrintOutput(true).
		AddCustomBuiltins(custom)
	ch, err := runner.Run(ctx, modules)
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return 0, 0, compileErrors(dir, astErrs)
		}
		return 0, 0, fmt.Errorf("run tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		if r.Skip {
			continue
		}
		if r.Pass() {
			passed++
		} else {
			failed++
		}
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool {
		a, b := results[i].Location, results[j].Location
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Row < b.Row
	})
	resCh := make(chan *tester.Result, len(results))
	for _, r := range results {
		resCh <- r
	}
	close(resCh)
	if err := (tester.PrettyReporter{Output: out, Verbose: verbose, FailureLine: true}).Report(resCh); err != nil {
		return passed, failed, fmt.Errorf("report: %w", err)
	}
	return passed, failed, nil
}

// loadTestModules parses every *.rego file under dir, refusing disabled
// built-ins, and adds the PLAN helpers.
func loadTestModules(dir string) (map[string]*ast.Module, error) {
	modules := map[string]*ast.Module{}
	var diags []Diag
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mod, _, err := parse(Source{Name: path, Body: string(body)})
		if err != nil {
			var ce *CompileError
			if errors.As(err, &ce) {
				diags = append(diags, ce.Errors...)
				return nil
			}
			return err
		}
		diags = append(diags, disabledCalls(path, mod)...)
		if pkg := strings.TrimPrefix(mod.Package.Path.String(), "data."); pkg == packageSpacelift || pkg == packageGantry {
			addHelperImports(mod)
		}
		modules[path] = mod
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load tests: %w", err)
	}
	if len(diags) > 0 {
		return nil, &CompileError{Errors: diags}
	}
	if len(modules) > 0 {
		modules[helperFile] = helperModule()
	}
	return modules, nil
}
