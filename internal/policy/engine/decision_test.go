package engine_test

import (
	"reflect"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func TestCombine(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		ds   []engine.Decision
		want engine.Decision
	}{
		{"plan unions", engine.TypePlan,
			[]engine.Decision{{Deny: []string{"b", "a"}, Warn: []string{"w"}}, {Deny: []string{"a"}, Flags: []string{"f"}}},
			engine.Decision{Deny: []string{"a", "b"}, Warn: []string{"w"}, Flags: []string{"f"}}},
		{"approval needs every policy", engine.TypeApproval,
			[]engine.Decision{{Approve: true}, {}},
			engine.Decision{}},
		{"approval all approve", engine.TypeApproval,
			[]engine.Decision{{Approve: true}, {ApproveNotes: []string{"n"}}},
			engine.Decision{Approve: true, ApproveNotes: []string{"n"}}},
		{"approval reject wins", engine.TypeApproval,
			[]engine.Decision{{Approve: true}, {Approve: true, RejectNotes: []string{"no"}}},
			engine.Decision{Reject: true, RejectNotes: []string{"no"}}},
		{"approval none", engine.TypeApproval, nil, engine.Decision{}},
		{"push ignore wins", engine.TypePush,
			[]engine.Decision{{Track: true, Propose: true, Cancel: []string{"r1"}}, {Ignore: true, Message: "m"}},
			engine.Decision{Ignore: true, Cancel: []string{"r1"}, Message: "m"}},
		{"login deny wins", engine.TypeLogin,
			[]engine.Decision{{Allow: true, Admin: true}, {DenyLogin: true}},
			engine.Decision{DenyLogin: true}},
		{"login deny_admin", engine.TypeLogin,
			[]engine.Decision{{Admin: true, Roles: map[string][]string{"a": {"x"}}}, {DenyAdmin: true, Roles: map[string][]string{"a": {"y", "x"}}}},
			engine.Decision{Allow: true, DenyAdmin: true, Roles: map[string][]string{"a": {"x", "y"}}}},
		{"notification dedup", engine.TypeNotification,
			[]engine.Decision{{Slack: []map[string]any{{"channel_id": "C"}}}, {Slack: []map[string]any{{"channel_id": "C"}}, Sample: true}},
			engine.Decision{Slack: []map[string]any{{"channel_id": "C"}}, Sample: true}},
		{"trigger unions", engine.TypeTrigger,
			[]engine.Decision{{Trigger: []string{"s2"}}, {Trigger: []string{"s1", "s2"}}},
			engine.Decision{Trigger: []string{"s1", "s2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := engine.Combine(tt.typ, tt.ds); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Combine =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestPushAction(t *testing.T) {
	tests := []struct {
		d    engine.Decision
		want string
	}{
		{engine.Decision{}, engine.PushIgnore},
		{engine.Decision{Track: true}, engine.PushTrack},
		{engine.Decision{Track: true, IgnoreTrack: true}, engine.PushPropose},
		{engine.Decision{Propose: true}, engine.PushPropose},
		{engine.Decision{Track: true, Ignore: true}, engine.PushIgnore},
	}
	for _, tt := range tests {
		if got := tt.d.PushAction(); got != tt.want {
			t.Errorf("%+v: PushAction = %s, want %s", tt.d, got, tt.want)
		}
	}
}

func TestSanitizeStrings(t *testing.T) {
	in := map[string]any{"name": "abc", "n": 3.0, "ok": true, "nil": nil, "list": []any{"abc", 1.0, map[string]any{"k": "abc"}}}
	got := engine.SanitizeStrings(in)
	want := map[string]any{"name": "f20015ad", "n": 3.0, "ok": true, "nil": nil, "list": []any{"f20015ad", 1.0, map[string]any{"k": "f20015ad"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if in["name"] != "abc" {
		t.Error("input modified")
	}
}

func TestSanitizePlan(t *testing.T) {
	plan := map[string]any{"terraform": map[string]any{"resource_changes": []any{map[string]any{
		"address": "aws_db_instance.db",
		"change": map[string]any{
			"before":           nil,
			"after":            map[string]any{"password": "abc", "username": "admin", "tags": map[string]any{"secret": "abc", "team": "x"}},
			"after_sensitive":  map[string]any{"password": true, "tags": map[string]any{"secret": true}},
			"before_sensitive": false,
		},
	}}}}
	got := engine.SanitizePlan(plan)
	after := got["terraform"].(map[string]any)["resource_changes"].([]any)[0].(map[string]any)["change"].(map[string]any)["after"].(map[string]any)
	if after["password"] != "f20015ad" || after["username"] != "admin" || after["tags"].(map[string]any)["secret"] != "f20015ad" || after["tags"].(map[string]any)["team"] != "x" {
		t.Errorf("after = %v", after)
	}
	orig := plan["terraform"].(map[string]any)["resource_changes"].([]any)[0].(map[string]any)["change"].(map[string]any)["after"].(map[string]any)
	if orig["password"] != "abc" {
		t.Error("input modified")
	}
}
