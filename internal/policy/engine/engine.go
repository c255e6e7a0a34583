// Package engine compiles and evaluates Rego policies written for Spacelift,
// unchanged, on OPA.
//
// A policy is one Rego module in `package spacelift` (or `package gantry`)
// of one of six types (PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION,
// LOGIN). Compile parses it (detecting Rego v0 or v1 syntax), refuses
// syntax and type errors, disabled built-ins and rules Gantry reads
// declared with the wrong shape for the type, and prepares the query once.
// Eval runs it against an Input converted once to OPA's value form, under
// the type's timeout, and decodes the rules Gantry reads into a Decision;
// Combine merges the decisions of every policy of one type attached to the
// same subject as Spacelift does.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Policy types, as Spacelift names them.
const (
	TypePlan         = "PLAN"
	TypeApproval     = "APPROVAL"
	TypeTrigger      = "TRIGGER"
	TypePush         = "GIT_PUSH"
	TypeNotification = "NOTIFICATION"
	TypeLogin        = "LOGIN"
)

// Rego syntax versions a policy is written in.
const (
	EngineV0 = "rego_v0"
	EngineV1 = "rego_v1"
)

// Packages a policy may declare. Rules are read from that package.
const (
	packageSpacelift = "spacelift"
	packageGantry    = "gantry"
)

// ValidType reports whether t is one of the Type constants.
func ValidType(t string) bool {
	switch t {
	case TypePlan, TypeApproval, TypeTrigger, TypePush, TypeNotification, TypeLogin:
		return true
	}
	return false
}

// Source is a policy as users write it.
type Source struct {
	Name   string // file name shown in errors, e.g. "policy/deny-public.rego"
	Type   string // one of the Type constants
	Body   string // Rego source; `package spacelift` (or `package gantry`)
	Engine string // EngineV0, EngineV1, or "" to detect (Policy.Engine says which)
}

// Diag is one problem found in a policy.
type Diag struct {
	File      string
	Line, Col int
	Message   string
}

func (d Diag) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Message)
}

// CompileError lists every problem found in a policy: a user mistake, to be
// shown to the author.
type CompileError struct{ Errors []Diag }

// Error returns "file:line:col: message; file:line:col: message...".
func (e *CompileError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, d := range e.Errors {
		parts[i] = d.String()
	}
	return strings.Join(parts, "; ")
}

// Policy is a compiled policy, ready to evaluate. It is safe for
// concurrent use.
type Policy struct {
	Name    string // Source.Name
	Type    string // one of the Type constants
	Engine  string // the syntax used: EngineV0 or EngineV1 (detected when Source.Engine was "")
	Hash    string // SourceHash of the source
	Package string // "spacelift" or "gantry"

	query *rego.PreparedEvalQuery // shared by the copies the Cache returns
}

// SourceHash is the hex sha256 of the source's type, engine (as given, so
// "" when detected) and body: the identity of a compiled policy. The name
// is not part of it.
func SourceHash(src Source) string {
	h := sha256.New()
	for _, s := range []string{src.Type, src.Engine, src.Body} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Compile parses, checks and prepares src. Mistakes in the policy are
// returned as a *CompileError.
func Compile(src Source) (*Policy, error) {
	return defaultEnv().compile(src)
}

// compile is Compile with the built-ins of e.
func (e *env) compile(src Source) (*Policy, error) {
	if !ValidType(src.Type) {
		return nil, fmt.Errorf("policy %s: unknown policy type %q", src.Name, src.Type)
	}
	mod, engine, err := parse(src)
	if err != nil {
		return nil, err
	}
	pkg, diag := packageOf(src.Name, mod)
	if diag != nil {
		return nil, &CompileError{Errors: []Diag{*diag}}
	}
	var diags []Diag
	diags = append(diags, disabledCalls(src.Name, mod)...)
	diags = append(diags, checkRuleShapes(src.Name, src.Type, mod)...)
	modules := map[string]*ast.Module{src.Name: mod}
	if src.Type == TypePlan {
		addHelperImports(mod)
		modules[helperFile] = helperModule()
	}
	compiler := e.newCompiler()
	if compiler.Compile(modules); compiler.Failed() {
		diags = append(diags, compilerDiags(src.Name, compiler.Errors)...)
	}
	if len(diags) > 0 {
		sortDiags(diags)
		return nil, &CompileError{Errors: diags}
	}
	opts := append(e.regoOptions(), rego.Compiler(compiler), rego.Query("data."+pkg))
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, compileErrors(src.Name, astErrs)
		}
		return nil, fmt.Errorf("policy %s: prepare: %w", src.Name, err)
	}
	return &Policy{Name: src.Name, Type: src.Type, Engine: engine, Hash: SourceHash(src), Package: pkg, query: &pq}, nil
}

// parse parses src.Body in the syntax src.Engine names, or detects it: Rego
// v1 first, then v0.
func parse(src Source) (*ast.Module, string, error) {
	switch src.Engine {
	case EngineV0, EngineV1:
		m, err := parseAs(src.Name, src.Body, src.Engine)
		if err != nil {
			return nil, "", compileErrors(src.Name, err)
		}
		return m, src.Engine, nil
	case "":
	default:
		return nil, "", fmt.Errorf("policy %s: unknown engine %q (want %q, %q or empty to detect)", src.Name, src.Engine, EngineV0, EngineV1)
	}
	m, errV1 := parseAs(src.Name, src.Body, EngineV1)
	if errV1 == nil {
		return m, EngineV1, nil
	}
	m, errV0 := parseAs(src.Name, src.Body, EngineV0)
	if errV0 == nil {
		return m, EngineV0, nil
	}
	// Neither parses: report the errors of the syntax the policy seems to
	// be written in. Rego v1 complaining about missing keywords means v0.
	if strings.Contains(errV1.Error(), "keyword is required") {
		return nil, "", compileErrors(src.Name, errV0)
	}
	return nil, "", compileErrors(src.Name, errV1)
}

func parseAs(name, body, engine string) (*ast.Module, error) {
	v := ast.RegoV1
	if engine == EngineV0 {
		v = ast.RegoV0
	}
	return ast.ParseModuleWithOpts(name, body, ast.ParserOptions{RegoVersion: v, ProcessAnnotation: false})
}

// packageOf returns the package name of mod, or a Diag refusing it.
func packageOf(file string, mod *ast.Module) (string, *Diag) {
	path := mod.Package.Path
	name := strings.TrimPrefix(path.String(), "data.")
	if name == packageSpacelift || name == packageGantry {
		return name, nil
	}
	d := diagAt(file, mod.Package.Location,
		fmt.Sprintf("policy must be in `package spacelift` (or `package gantry`), not `package %s`", name))
	return "", &d
}

// compileErrors turns OPA's errors into a *CompileError.
func compileErrors(file string, err error) *CompileError {
	var astErrs ast.Errors
	if !errors.As(err, &astErrs) {
		return &CompileError{Errors: []Diag{{File: file, Line: 1, Col: 1, Message: err.Error()}}}
	}
	out := &CompileError{}
	for _, e := range astErrs {
		out.Errors = append(out.Errors, diagAt(file, e.Location, e.Message))
	}
	return out
}

// compilerDiags converts the compiler's errors, leaving out those about
// refused built-ins (reported with a clearer message by disabledCalls).
func compilerDiags(file string, errs ast.Errors) []Diag {
	var out []Diag
	for _, e := range errs {
		if name, ok := strings.CutPrefix(e.Message, "undefined function "); ok {
			if _, off := refusedBuiltin(name); off {
				continue
			}
		}
		out = append(out, diagAt(file, e.Location, e.Message))
	}
	return out
}

func sortDiags(diags []Diag) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i], diags[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

func diagAt(file string, loc *ast.Location, msg string) Diag {
	d := Diag{File: file, Line: 1, Col: 1, Message: msg}
	if loc != nil {
		if loc.File != "" {
			d.File = loc.File
		}
		d.Line, d.Col = loc.Row, loc.Col
	}
	return d
}
