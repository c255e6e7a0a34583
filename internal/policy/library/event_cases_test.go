package library

import (
	"strings"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func runUpdated(state, typ string, drift bool, changes int) m {
	ch := []any{}
	for i := 0; i < changes; i++ {
		ch = append(ch, m{"phase": "plan", "action": "changed", "moved": false, "entity": m{"address": "aws_instance.web"}})
	}
	return m{
		"account":           m{"name": "acme"},
		"webhook_endpoints": []any{m{"id": "deployments", "labels": []any{}}},
		"run_updated": m{
			"state": state,
			"note":  "",
			"run": m{"id": "run-01", "type": typ, "state": state, "drift_detection": drift, "changes": ch,
				"commit": m{"hash": "abc123", "author": "alice", "branch": "main"}, "flags": []any{}},
			"stack":    m{"id": "web", "name": "web"},
			"urls":     m{"run": "https://gantry.example/stack/web/run/run-01"},
			"username": "alice",
		},
	}
}

func slackTo(channel, text string) func(engine.Decision) bool {
	return func(d engine.Decision) bool {
		return len(d.Slack) == 1 && d.Slack[0]["channel_id"] == channel && strings.Contains(d.Slack[0]["message"].(string), text)
	}
}

func quiet(d engine.Decision) bool {
	return len(d.Slack) == 0 && len(d.Webhook) == 0 && len(d.Inbox) == 0
}

func notificationCases() []testCase {
	inbox := func(d engine.Decision) bool {
		return len(d.Inbox) == 1 && d.Inbox[0]["severity"] == "ERROR" && d.Inbox[0]["title"] == "Run run-01 failed"
	}
	webhook := func(d engine.Decision) bool {
		if len(d.Webhook) != 1 || d.Webhook[0]["endpoint_id"] != "deployments" {
			return false
		}
		payload, _ := d.Webhook[0]["payload"].(map[string]any)
		return payload["stack"] == "web" && payload["commit"] == "abc123"
	}
	return []testCase{
		{"notify-slack-on-failure", "failed", true, runUpdated("FAILED", "TRACKED", false, 0), slackTo("infra-alerts", "run-01 on stack web failed")},
		{"notify-slack-on-failure", "finished", false, runUpdated("FINISHED", "TRACKED", false, 0), quiet},
		{"notify-slack-on-drift", "drift with changes", true, runUpdated("FINISHED", "PROPOSED", true, 3), slackTo("infra-drift", "3 resource changes")},
		{"notify-slack-on-drift", "drift without changes", false, runUpdated("FINISHED", "PROPOSED", true, 0), quiet},
		{"notify-slack-on-drift", "ordinary run", false, runUpdated("FINISHED", "PROPOSED", false, 3), quiet},
		{"notify-inbox-on-failure", "failed", true, runUpdated("FAILED", "PROPOSED", false, 0), inbox},
		{"notify-inbox-on-failure", "planning", false, runUpdated("PLANNING", "PROPOSED", false, 0), quiet},
		{"notify-webhook-tracked-finished", "tracked finished", true, runUpdated("FINISHED", "TRACKED", false, 1), webhook},
		{"notify-webhook-tracked-finished", "proposed finished", false, runUpdated("FINISHED", "PROPOSED", false, 1), quiet},
		{"notify-webhook-tracked-finished", "tracked failed", false, runUpdated("FAILED", "TRACKED", false, 1), quiet},
	}
}

// pushInput: a push to branch touching files, on a stack rooted at root;
// pr (may be nil) is the pull request.
func pushInput(branch string, files []any, root string, pr m) m {
	in := m{
		"push": m{"branch": branch, "affected_files": files, "author": "alice", "hash": "abc123", "message": "change", "tag": ""},
		"stack": m{"id": "web", "branch": "main", "project_root": root, "labels": []any{},
			"additional_project_globs": []any{"modules/**/*.tf"}},
		"in_progress": []any{},
	}
	if pr != nil {
		in["pull_request"] = pr
	}
	return in
}

func action(want string) func(engine.Decision) bool {
	return func(d engine.Decision) bool { return d.PushAction() == want }
}

func pushCases() []testCase {
	tf := []any{"infra/web/main.tf"}
	openPR := m{"id": 42, "action": "opened", "closed": false, "draft": false, "head": m{"branch": "feature"}, "base": m{"branch": "main"}}
	draftPR := m{"id": 43, "action": "opened", "closed": false, "draft": true, "head": m{"branch": "wip"}, "base": m{"branch": "main"}}
	closedPR := m{"id": 44, "action": "closed", "closed": true, "draft": false, "head": m{"branch": "old"}, "base": m{"branch": "main"}}
	return []testCase{
		{"push-track-main-branch", "main", true, pushInput("main", tf, "infra/web", nil), action(engine.PushTrack)},
		{"push-track-main-branch", "feature branch", false, pushInput("feature", tf, "infra/web", nil), action(engine.PushIgnore)},
		{"push-track-main-branch", "pull request", false, pushInput("feature", tf, "infra/web", openPR), func(d engine.Decision) bool { return !d.Track && !d.Ignore }},
		{"push-ignore-outside-project-root", "outside", true, pushInput("main", []any{"docs/readme.md", "infra/webapp/x.tf"}, "infra/web", nil), action(engine.PushIgnore)},
		{"push-ignore-outside-project-root", "inside", false, pushInput("main", tf, "./infra/web/", nil), func(d engine.Decision) bool { return !d.Ignore }},
		{"push-ignore-outside-project-root", "additional glob", false, pushInput("main", []any{"modules/net/vpc.tf"}, "infra/web", nil), func(d engine.Decision) bool { return !d.Ignore }},
		{"push-ignore-outside-project-root", "repository root", false, pushInput("main", []any{"anything.txt"}, "", nil), func(d engine.Decision) bool { return !d.Ignore }},
		{"push-propose-pull-requests", "open", true, pushInput("feature", tf, "", openPR), action(engine.PushPropose)},
		{"push-propose-pull-requests", "draft", false, pushInput("wip", tf, "", draftPR), action(engine.PushIgnore)},
		{"push-propose-pull-requests", "closed", false, pushInput("old", tf, "", closedPR), func(d engine.Decision) bool { return !d.Propose }},
		{"push-propose-pull-requests", "plain push", false, pushInput("main", tf, "", nil), func(d engine.Decision) bool { return !d.Propose }},
	}
}

func loginInput(teams ...any) m {
	return m{
		"session": m{"login": "alice", "name": "Alice", "teams": teams, "admin": false, "member": true, "machine": false},
		"request": m{"remote_ip": "203.0.113.7", "timestamp_ns": 1700000000000000000},
		"spaces":  []any{}, "roles": []any{},
	}
}

func loginCases() []testCase {
	return []testCase{
		{"login-admin-team", "admin team", true, loginInput("acme/platform-admins"), func(d engine.Decision) bool { return d.Allow && d.Admin }},
		{"login-admin-team", "user team", true, loginInput("acme/engineering"), func(d engine.Decision) bool { return d.Allow && !d.Admin }},
		{"login-admin-team", "stranger", false, loginInput("other/team"), func(d engine.Decision) bool { return !d.Allow && !d.Admin }},
	}
}
