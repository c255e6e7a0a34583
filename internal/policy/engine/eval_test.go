package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func mustInput(t *testing.T, v any) engine.Input {
	t.Helper()
	in, err := engine.NewInput(v)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func eval(t *testing.T, typ, body string, in engine.Input) engine.Result {
	t.Helper()
	p, err := engine.Compile(engine.Source{Name: "p.rego", Type: typ, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Eval(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecisionPerType(t *testing.T) {
	in := mustInput(t, json.RawMessage(`{"stack": {"id": "s1"}, "run": {"id": "r1"}}`))
	tests := []struct {
		name, typ, body string
		want            engine.Decision
	}{
		{"plan", engine.TypePlan, `package spacelift
deny contains "b" if { true }
deny contains "a" if { true }
warn contains "w" if { true }
flag contains "f" if { true }
sample := true`, engine.Decision{Deny: []string{"a", "b"}, Warn: []string{"w"}, Flags: []string{"f"}, Sample: true}},
		{"approval", engine.TypeApproval, `package spacelift
approve if { true }
reject := false
approve_with_note contains "ok by policy" if { true }
reset_flag contains "x" if { true }`, engine.Decision{Approve: true, ApproveNotes: []string{"ok by policy"}, ResetFlags: []string{"x"}}},
		{"trigger", engine.TypeTrigger, `package spacelift
trigger[id] { id := ["s2", "s3"][_] }`, engine.Decision{Trigger: []string{"s2", "s3"}}},
		{"push", engine.TypePush, `package spacelift
track { true }
propose { true }
ignore_track { true }
notrigger { true }
fail { true }
cancel[input.run.id] { true }
message["I love bacon"] { true }`, engine.Decision{Track: true, Propose: true, IgnoreTrack: true, NoTrigger: true, Fail: true, Cancel: []string{"r1"}, Message: "I love bacon"}},
		{"push message string", engine.TypePush, `package spacelift
message := "hello"`, engine.Decision{Message: "hello"}},
		{"notification", engine.TypeNotification, `package spacelift
webhook[{"endpoint_id": "hook", "method": "PUT"}] { true }
slack[{"channel_id": "C1"}] { true }
teams[{"channel_id": "ops-teams", "title": "t", "message": "m"}] { true }
email[{"endpoint_id": "ops-mail", "subject": "s", "body": "b", "to": ["a@example.com"]}] { true }
inbox[{"title": "t", "severity": "INFO"}] { true }`, engine.Decision{
			Webhook: []map[string]any{{"endpoint_id": "hook", "method": "PUT"}},
			Slack:   []map[string]any{{"channel_id": "C1"}},
			Teams:   []map[string]any{{"channel_id": "ops-teams", "title": "t", "message": "m"}},
			Email:   []map[string]any{{"endpoint_id": "ops-mail", "subject": "s", "body": "b", "to": []any{"a@example.com"}}},
			Inbox:   []map[string]any{{"title": "t", "severity": "INFO"}}}},
		{"login", engine.TypeLogin, `package spacelift
allow { true }
admin { false }
deny_admin { true }
team["Superwriter"] { true }
roles["space-a"]["writer"] { true }
roles["space-a"]["reader"] { true }
roles[s]["admin"] { s := "root" }
space_read["s1"] { true }`, engine.Decision{Allow: true, DenyAdmin: true, Team: []string{"Superwriter"},
			Roles: map[string][]string{"space-a": {"reader", "writer"}, "root": {"admin"}}, SpaceRead: []string{"s1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := eval(t, tt.typ, tt.body, in)
			if !reflect.DeepEqual(r.Decision, tt.want) {
				t.Errorf("Decision =\n%+v\nwant\n%+v", r.Decision, tt.want)
			}
		})
	}
}

func TestEvalWrongValueType(t *testing.T) {
	tests := []struct{ name, typ, body, want string }{
		{"deny not strings", engine.TypePlan, "package spacelift\nx := {1, 2}\ndeny := x\n", "rule deny must be a set of strings, but it holds number"},
		{"deny boolean via var", engine.TypePlan, "package spacelift\nx := true\ndeny := x\n", "rule deny must be a set of strings, but its value is boolean"},
		{"approve string via var", engine.TypeApproval, "package spacelift\nx := \"yes\"\napprove := x\n", "rule approve must be a boolean"},
		{"webhook strings", engine.TypeNotification, "package spacelift\nx := {\"a\"}\nwebhook := x\n", "set of objects"},
		{"teams strings", engine.TypeNotification, "package spacelift\nx := {\"a\"}\nteams := x\n", "rule teams must be a set of objects"},
		{"email boolean", engine.TypeNotification, "package spacelift\nx := true\nemail := x\n", "rule email must be a set of objects"},
	}
	in := mustInput(t, map[string]any{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := engine.Compile(engine.Source{Name: "p.rego", Type: tt.typ, Body: tt.body})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Eval(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValuesAndSanitized(t *testing.T) {
	r := eval(t, engine.TypePlan, `package spacelift
import rego.v1
endpoint := sanitized("forbidden.endpoint/webhook")
deny contains "forbidden" if { input.after.endpoint == sanitized("forbidden.endpoint/webhook") }
nums := {3, 1, 2}
`, mustInput(t, map[string]any{"after": map[string]any{"endpoint": engine.Sanitized("forbidden.endpoint/webhook")}}))
	if r.Values["endpoint"] != engine.Sanitized("forbidden.endpoint/webhook") || len(r.Values["endpoint"].(string)) != 8 {
		t.Errorf("endpoint = %v", r.Values["endpoint"])
	}
	if got := r.Values["nums"]; !reflect.DeepEqual(got, []any{json.Number("1"), json.Number("2"), json.Number("3")}) {
		t.Errorf("nums = %#v", got)
	}
	if !reflect.DeepEqual(r.Decision.Deny, []string{"forbidden"}) {
		t.Errorf("Deny = %v", r.Decision.Deny)
	}
	if engine.Sanitized("abc") != "f20015ad" { // sha256("abc") ends in ...f20015ad
		t.Errorf("Sanitized(abc) = %s", engine.Sanitized("abc"))
	}
}

func TestPlanHelpers(t *testing.T) {
	in := mustInput(t, json.RawMessage(`{"terraform": {"resource_changes": [
		{"address": "a.new", "change": {"actions": ["create"]}},
		{"address": "a.gone", "change": {"actions": ["delete"]}},
		{"address": "a.changed", "change": {"actions": ["update"]}},
		{"address": "a.replaced", "change": {"actions": ["delete", "create"]}},
		{"address": "a.same", "change": {"actions": ["no-op"]}}
	]}}`))
	body := `package spacelift
addrs(s) := sort([r.address | some r in s])
created := addrs(created_resources)
deleted := addrs(deleted_resources)
updated := addrs(updated_resources)
recreated := addrs(recreated_resources)
affected := addrs(affected_resources)
`
	r := eval(t, engine.TypePlan, body, in)
	want := map[string][]any{
		"created": {"a.new"}, "deleted": {"a.gone"}, "updated": {"a.changed"}, "recreated": {"a.replaced"},
		"affected": {"a.changed", "a.gone", "a.new", "a.replaced"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(r.Values[k], w) {
			t.Errorf("%s = %v, want %v", k, r.Values[k], w)
		}
	}
	if _, ok := r.Values["created_resources"]; ok {
		t.Error("helpers show in Values")
	}
	// A v0 policy using the helpers as Spacelift documents it.
	r = eval(t, engine.TypePlan, "package spacelift\ndeny[sprintf(\"no %s\", [r.address])] { created_resources[r] }\n", in)
	if !reflect.DeepEqual(r.Decision.Deny, []string{"no a.new"}) {
		t.Errorf("Deny = %v", r.Decision.Deny)
	}
	// A policy defining its own rule of a helper's name keeps it.
	r = eval(t, engine.TypePlan, "package spacelift\ncreated_resources := {\"mine\"}\ndeny contains x if { some x in created_resources }\n", in)
	if !reflect.DeepEqual(r.Decision.Deny, []string{"mine"}) {
		t.Errorf("Deny = %v", r.Decision.Deny)
	}
	// Without resource changes the helpers are empty sets.
	r = eval(t, engine.TypePlan, "package spacelift\nn := count(affected_resources)\n", mustInput(t, map[string]any{}))
	if r.Values["n"] != json.Number("0") {
		t.Errorf("n = %v", r.Values["n"])
	}
}

func TestTimeout(t *testing.T) {
	old := engine.Timeouts[engine.TypeTrigger]
	engine.Timeouts[engine.TypeTrigger] = 50 * time.Millisecond
	t.Cleanup(func() { engine.Timeouts[engine.TypeTrigger] = old })
	p, err := engine.Compile(engine.Source{Name: "p.rego", Type: engine.TypeTrigger, Body: `package spacelift
xs := numbers.range(1, 100000)

trigger contains "x" if {
	n := count([x | some x in xs; some y in xs; x * y < 0])
	n > 0
}`})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.Eval(context.Background(), mustInput(t, map[string]any{}))
	if !errors.Is(err, engine.ErrTimeout) || !strings.Contains(err.Error(), "policy evaluation timed out after 50ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestInput(t *testing.T) {
	for _, v := range []any{
		map[string]any{"a": 1.5, "b": []any{"x", true, nil}},
		json.RawMessage(`{"a": 1.5, "b": ["x", true, null]}`),
		[]byte(`{"a": 1.5, "b": ["x", true, null]}`),
	} {
		in := mustInput(t, v)
		b, err := in.JSON()
		if err != nil || string(b) != `{"a":1.5,"b":["x",true,null]}` {
			t.Errorf("JSON() = %s, %v", b, err)
		}
	}
	for _, bad := range []any{json.RawMessage(`[1]`), json.RawMessage(`{"a":`), []byte(`{} x`), json.RawMessage(`{"a": 01}`)} {
		if _, err := engine.NewInput(bad); err == nil {
			t.Errorf("NewInput(%s) accepted", bad)
		}
	}
	in := mustInput(t, json.RawMessage(`{"s": "caf\u00e9 \"q\"", "n": -1.5e3}`))
	b, _ := in.JSON()
	if string(b) != `{"n":-1.5e3,"s":"café \"q\""}` {
		t.Errorf("JSON() = %s", b)
	}
}

func TestInputRefusesHugeNumbers(t *testing.T) {
	long := "1" + strings.Repeat("0", 100)
	for _, v := range []any{
		json.RawMessage(`{"n": 1e30000000}`),
		json.RawMessage(`{"a": [{"n": -2.5E-401}]}`),
		json.RawMessage(`{"n": 1e00000000000000000000000401}`),
		json.RawMessage(`{"n": ` + long + `}`),
		[]byte(`{"n": 1e+401}`),
		map[string]any{"a": []any{json.Number("1e30000000")}},
		map[string]any{"n": json.Number(long)},
	} {
		_, err := engine.NewInput(v)
		if err == nil || !strings.HasPrefix(err.Error(), "policy input: number ") || !strings.Contains(err.Error(), " too large") {
			t.Errorf("NewInput(%.60v) = %v, want a number too large", v, err)
		}
	}
	for _, v := range []any{
		json.RawMessage(`{"n": 1e400, "m": -1.5e-400, "o": 1e0000400, "p": 123456789012345678901234567890}`),
		json.RawMessage(`{"n": ` + long[:100] + `}`),
		map[string]any{"n": json.Number("1e400"), "f": 1.7976931348623157e308, "i": 42},
	} {
		if _, err := engine.NewInput(v); err != nil {
			t.Errorf("NewInput(%v) = %v", v, err)
		}
	}
}

func TestInputDuplicateKeysKeepLast(t *testing.T) {
	many := `"k0": 0`
	for i := 1; i < 40; i++ {
		many += `, "k` + string(rune('0'+i%10)) + string(rune('a'+i/10)) + `": ` + string(rune('0'+i%10))
	}
	in := mustInput(t, json.RawMessage(`{"a": 1, "b": {"x": 1, "y": 2, "x": 3}, "a": 2, "big": {`+many+`, "k0": 9}}`))
	var want map[string]any
	json.Unmarshal([]byte(`{"a": 2, "b": {"x": 3, "y": 2}, "big": {`+many+`, "k0": 9}}`), &want)
	b, _ := in.JSON()
	var got map[string]any
	json.Unmarshal(b, &got)
	if !reflect.DeepEqual(got, want) || !strings.HasPrefix(string(b), `{"a":2,"b":{"x":3,"y":2},`) {
		t.Errorf("JSON() = %s", b)
	}
	// Policies see one value per key.
	r := eval(t, engine.TypePlan, `package spacelift
a := input.a
keys := count(object.keys(input.b))
xs := [v | some k, v in input.b; k == "x"]
`, in)
	if r.Values["a"] != json.Number("2") || r.Values["keys"] != json.Number("2") || !reflect.DeepEqual(r.Values["xs"], []any{json.Number("3")}) {
		t.Errorf("Values = %v", r.Values)
	}
}

func TestInputNestingLimit(t *testing.T) {
	doc := func(depth int) json.RawMessage {
		return json.RawMessage(`{"a":` + strings.Repeat(`[`, depth-2) + `{}` + strings.Repeat(`]`, depth-2) + `}`)
	}
	if _, err := engine.NewInput(doc(10000)); err != nil {
		t.Errorf("depth 10000: %v", err)
	}
	_, err := engine.NewInput(doc(10001))
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 10000 levels") {
		t.Errorf("depth 10001: err = %v", err)
	}
	_, err = engine.NewInput(json.RawMessage(strings.Repeat(`{"a":`, 1_000_000)))
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 10000 levels") {
		t.Errorf("depth 1e6: err = %v", err)
	}
}

func TestRunTests(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"policy.rego": `package spacelift
deny[sprintf("no %s", [r.address])] { created_resources[r] }
`,
		"policy_test.rego": `package spacelift
test_denies_create {
	deny["no a"] with input as {"terraform": {"resource_changes": [{"address": "a", "change": {"actions": ["create"]}}]}}
}
test_sanitized { sanitized("abc") == "f20015ad" }
test_fails { count(deny) == 1 with input as {} }
# A built-in's error fails the test, as it fails an evaluation.
test_builtin_error { not too_big with input as {"n": 1} }
too_big { input.n / 0 > 1 }
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	passed, failed, err := engine.RunTests(context.Background(), dir, &out, true)
	if err != nil {
		t.Fatal(err)
	}
	if passed != 2 || failed != 2 {
		t.Errorf("passed %d, failed %d, want 2, 2\n%s", passed, failed, out.String())
	}
	if !strings.Contains(out.String(), "test_fails") || !strings.Contains(out.String(), "FAIL") ||
		!strings.Contains(out.String(), "test_builtin_error") || !strings.Contains(out.String(), "divide by zero") {
		t.Errorf("report:\n%s", out.String())
	}
	os.WriteFile(filepath.Join(dir, "bad_test.rego"), []byte("package spacelift\ntest_now if { time.now_ns() > 0 }\n"), 0o644)
	if _, _, err := engine.RunTests(context.Background(), dir, &out, false); err == nil || !strings.Contains(err.Error(), "time.now_ns is disabled") {
		t.Errorf("err = %v", err)
	}
}
