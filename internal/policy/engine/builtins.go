package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// Built-ins are allowed by name: a policy may call only those of
// allowedBuiltins (and Gantry's own). A built-in a newer OPA adds is
// refused until it is reviewed and listed here, so an upgrade cannot
// silently give policies a way to reach outside the process.
//
// Each was reviewed for: no network, file or environment access; no clock
// or randomness (policies must be deterministic, so replays and
// simulations decide as the run did); no unbounded work inside one call
// that the evaluation timeout cannot stop.
var allowedBuiltins = namesOf(
	// Operators, aggregates, types, strings, numbers (OPA's unnamespaced ones).
	`abs all and any assign cast_array cast_boolean cast_null cast_object cast_set cast_string ceil concat
	contains count div endswith eq equal floor format_int gt gte indexof indexof_n intersection is_array
	is_boolean is_null is_number is_object is_set is_string lower lt lte max min minus mul neq or plus
	print product re_match rem replace round set_diff sort split sprintf startswith substring sum
	to_number trim trim_left trim_prefix trim_right trim_space trim_suffix type_name union upper walk`,
	`array.concat array.flatten array.reverse array.slice`,
	`base64.decode base64.encode base64.is_valid base64url.decode base64url.encode base64url.encode_no_pad`,
	`bits.and bits.lsh bits.negate bits.or bits.rsh bits.xor`,
	`crypto.hmac.equal crypto.hmac.md5 crypto.hmac.sha1 crypto.hmac.sha256 crypto.hmac.sha512 crypto.md5
	crypto.parse_private_keys crypto.sha1 crypto.sha256 crypto.x509.parse_certificate_request
	crypto.x509.parse_certificates crypto.x509.parse_keypair crypto.x509.parse_rsa_private_key`,
	`glob.match glob.quote_meta`,
	`graph.reachable graph.reachable_paths`,
	`graphql.is_valid graphql.parse graphql.parse_and_verify graphql.parse_query graphql.parse_schema
	graphql.schema_is_valid`,
	`hex.decode hex.encode`,
	// Used by the compiler for `in`, print, template strings and test cases.
	`internal.member_2 internal.member_3 internal.print internal.template_string internal.test_case`,
	`io.jwt.decode io.jwt.verify_eddsa io.jwt.verify_es256 io.jwt.verify_es384 io.jwt.verify_es512
	io.jwt.verify_hs256 io.jwt.verify_hs384 io.jwt.verify_hs512 io.jwt.verify_ps256 io.jwt.verify_ps384
	io.jwt.verify_ps512 io.jwt.verify_rs256 io.jwt.verify_rs384 io.jwt.verify_rs512`,
	`json.filter json.is_valid json.marshal json.marshal_with_options json.patch json.remove json.unmarshal`,
	`net.cidr_contains net.cidr_contains_matches net.cidr_intersects net.cidr_is_valid net.cidr_merge
	net.cidr_overlap`,
	`numbers.range numbers.range_step`,
	`object.filter object.get object.keys object.remove object.subset object.union object.union_n`,
	// Signs with the time and credentials given as arguments; sends nothing.
	`providers.aws.sign_req`,
	`regex.find_all_string_submatch_n regex.find_n regex.globs_match regex.is_valid regex.match
	regex.replace regex.split regex.template_match`,
	`rego.metadata.chain rego.metadata.rule`,
	`semver.compare semver.is_valid`,
	`strings.any_prefix_match strings.any_suffix_match strings.count strings.replace_n strings.reverse
	strings.split_n`,
	// Of the time given as an argument, never the clock.
	`time.add_date time.clock time.date time.diff time.format time.parse_duration_ns time.parse_ns
	time.parse_rfc3339_ns time.weekday`,
	`units.parse units.parse_bytes`,
	`uri.is_valid uri.parse`,
	`urlquery.decode urlquery.decode_object urlquery.encode urlquery.encode_object`,
	`uuid.parse`,
	`yaml.is_valid yaml.marshal yaml.unmarshal`,
)

func namesOf(groups ...string) map[string]bool {
	out := map[string]bool{}
	for _, g := range groups {
		for _, name := range strings.Fields(g) {
			out[name] = true
		}
	}
	return out
}

// disabledBuiltins are the built-ins of OPA policies may not call, with
// why. Spacelift disables http.send, opa.runtime, rego.parse_module,
// time.now_ns and trace so policies stay pure and fast; Gantry adds the
// other ones, which reach outside the process, are not deterministic or
// can run unbounded inside one call. Any other built-in of OPA not in
// allowedBuiltins is refused too (notListedReason).
var disabledBuiltins = map[string]string{
	"http.send":          "policies may not make network requests",
	"opa.runtime":        "policies may not read the runtime environment",
	"rego.parse_module":  "policies may not parse other modules",
	"time.now_ns":        "the clock makes policies impure; use input.spacelift.request.timestamp_ns or input.request.timestamp_ns",
	"trace":              "tracing is not available",
	"net.lookup_ip_addr": "policies may not make network requests",
	"rand.intn":          "policies must be deterministic",
	"uuid.rfc4122":       "policies must be deterministic",

	"json.match_schema":  "a schema's $ref can make network requests and read local files",
	"json.verify_schema": "a schema's $ref can make network requests and read local files",
	"io.jwt.decode_verify": "it reads the clock, so policies would not be deterministic; " +
		"verify the signature with io.jwt.verify_* and compare the claims with the input's timestamp",
	"io.jwt.encode_sign":     "signatures are random for some algorithms: policies must be deterministic",
	"io.jwt.encode_sign_raw": "signatures are random for some algorithms: policies must be deterministic",
	"crypto.x509.parse_and_verify_certificates": "it reads the clock, so policies would not be deterministic; " +
		"use crypto.x509.parse_certificates",
	"crypto.x509.parse_and_verify_certificates_with_options": "it reads the clock unless given CurrentTime, " +
		"so policies would not be deterministic; use crypto.x509.parse_certificates",
	"strings.render_template": "a template can run far past the evaluation timeout",
	"net.cidr_expand":         "expanding a large range exhausts memory; use net.cidr_contains or net.cidr_intersects",
}

// notListedReason explains refusing a built-in of OPA that is neither
// allowed nor disabled (one a newer OPA added).
const notListedReason = "it is not on Gantry's list of reviewed built-ins"

// refusedBuiltin says whether policies may not call name (a built-in of
// OPA, not allowed), and why.
func refusedBuiltin(name string) (string, bool) {
	if why, off := disabledBuiltins[name]; off {
		return why, true
	}
	if allowedBuiltins[name] {
		return "", false
	}
	if _, ok := ast.BuiltinMap[name]; ok {
		return notListedReason, true
	}
	return "", false
}

// sanitizedName is Gantry's (and Spacelift's) custom built-in.
const sanitizedName = "sanitized"

var sanitizedDecl = types.NewFunction(types.Args(types.Named("x", types.S)), types.Named("output", types.S))

// sanitizedFunc registers the implementation of sanitized(x) on a rego
// instance.
var sanitizedFunc = rego.Function1(
	&rego.Function{Name: sanitizedName, Decl: sanitizedDecl, Memoize: true},
	func(_ rego.BuiltinContext, x *ast.Term) (*ast.Term, error) {
		s, ok := x.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("sanitized: operand 1 must be string but got %s", ast.ValueName(x.Value))
		}
		return ast.StringTerm(Sanitized(string(s))), nil
	},
)

// Sanitized returns the last 8 hex characters of the sha256 of s: how
// Spacelift masks sensitive strings in plan input and what the
// sanitized(x) built-in returns.
func Sanitized(s string) string {
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])
	return h[len(h)-8:]
}

// customBuiltin is a built-in implemented by Gantry: its declaration (for
// the compiler) and its implementation (for a rego instance).
type customBuiltin struct {
	decl *ast.Builtin
	impl func(*rego.Rego)
}

// gantryBuiltins are the built-ins Gantry adds.
var gantryBuiltins = []customBuiltin{
	{&ast.Builtin{Name: sanitizedName, Decl: sanitizedDecl}, sanitizedFunc},
	{&ast.Builtin{Name: planResourcesName, Decl: planResourcesDecl}, planResourcesFunc},
}

// env is what policies are compiled and evaluated with: the capabilities
// (allowed built-ins, no network) and the custom built-ins.
type env struct {
	caps   *ast.Capabilities
	custom []customBuiltin
}

var (
	defaultEnvOnce sync.Once
	defaultEnvVal  *env
)

// defaultEnv is the env of Compile and RunTests.
func defaultEnv() *env {
	defaultEnvOnce.Do(func() { defaultEnvVal = newEnv(gantryBuiltins...) })
	return defaultEnvVal
}

// newEnv returns an env allowing OPA's built-ins of allowedBuiltins and
// custom, and no network access (allow_net empty: the evaluator refuses
// every host, should a built-in that can reach one ever be allowed).
func newEnv(custom ...customBuiltin) *env {
	c := ast.CapabilitiesForThisVersion()
	var kept []*ast.Builtin
	for _, b := range c.Builtins {
		if _, refused := refusedBuiltin(b.Name); !refused && allowedBuiltins[b.Name] {
			kept = append(kept, b)
		}
	}
	for _, cb := range custom {
		kept = append(kept, cb.decl)
	}
	c.Builtins = kept
	c.AllowNet = []string{}
	return &env{caps: c, custom: custom}
}

// capabilities are those of the default env.
func capabilities() *ast.Capabilities { return defaultEnv().caps }

// newCompiler returns a compiler with the env's capabilities.
func (e *env) newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(e.caps).
		WithDefaultRegoVersion(ast.RegoV1)
}

// regoOptions are the options of every rego instance of the env: its
// capabilities, so the evaluator enforces them (allow_net), strict
// built-in errors, and the implementations of its custom built-ins.
//
// Strict: OPA by default turns a built-in's error (a division by zero, an
// argument of the wrong type at run time, a malformed JSON string or
// pattern) into an undefined expression, so a deny rule that hits one
// silently does not fire and the run is allowed. Policies fail closed
// instead: such an error fails the evaluation, which denies. What is
// undefined stays undefined (a missing key, a reference into null, a
// comparison that does not hold): that is no error.
func (e *env) regoOptions() []func(*rego.Rego) {
	opts := []func(*rego.Rego){rego.Capabilities(e.caps), rego.StrictBuiltinErrors(true)}
	for _, cb := range e.custom {
		opts = append(opts, cb.impl)
	}
	return opts
}

// disabledCalls finds calls of refused built-ins in mod, so the author is
// told why rather than "undefined function".
func disabledCalls(file string, mod *ast.Module) []Diag {
	var diags []Diag
	seen := map[*ast.Location]bool{}
	report := func(name string, loc *ast.Location) {
		why, off := refusedBuiltin(name)
		if !off || seen[loc] {
			return
		}
		seen[loc] = true
		diags = append(diags, diagAt(file, loc, fmt.Sprintf("built-in %s is disabled in Gantry policies: %s", name, why)))
	}
	ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.Expr:
			if x.IsCall() {
				report(x.Operator().String(), x.Location)
			}
		case *ast.Term:
			if call, ok := x.Value.(ast.Call); ok && len(call) > 0 {
				report(call[0].String(), x.Location)
			}
		}
		return false
	}).Walk(mod)
	sortDiags(diags)
	return diags
}
