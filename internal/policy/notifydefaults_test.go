package policy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Spacelift's basic rules, as its notification policy page writes them:
// a slack rule with only an upper-case channel_id, one with mentions, and
// a webhook rule without payload.
const spaceliftDefaults = `package spacelift

slack contains {"channel_id": "C0000000000"} if input.run_updated.run.state == "FAILED"

slack contains {"channel_id": "C0000000000", "mention_users": ["U08MA4D50RY"], "mention_groups": ["S08MA51EW4S"]} if input.run_updated.run.state == "FAILED"

slack contains {"channel_id": "C0000000000", "mention_users": ["<!channel>"]} if input.run_updated.run.state == "FAILED"

slack contains {"channel_id": "C0000000000", "message": ""} if input.run_updated.run.state == "FAILED"

webhook contains {"endpoint_id": "hook"} if input.run_updated.run.state == "FAILED"
`

func TestNotificationDefaults(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policies.PublicURL = "https://gantry.example.com"
		st := f.stack(t, func(s *stack.Stack) {
			s.Name, s.Description, s.Labels, s.Branch = "Network <prod>", "the VPC", []string{"team:net"}, "main"
		})
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.policy(t, "defaults", "NOTIFICATION", spaceliftDefaults)
		for _, e := range []notify.Endpoint{
			{ID: "c0000000000", Kind: notify.KindSlack, URL: "http://127.0.0.1:1/slack", Enabled: true},
			{ID: "hook", Kind: notify.KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true},
		} {
			if _, err := f.notify.CreateEndpoint(f.ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		r := f.create(t, st.ID, run.Tracked)
		_, got := f.plan(t, st, bucketPlan("public-read", "private"))
		wantState(t, got, run.Failed)
		f.processEvents(t)
		ds, _, err := f.notify.ListDeliveries(f.ctx, notify.DeliveryFilter{RunID: r.ID})
		if err != nil || len(ds) != 5 {
			t.Fatalf("deliveries = %+v, %v; want 5", ds, err)
		}
		runLink := "<https://gantry.example.com/api/v1/runs/" + r.ID + "|" + r.ID + ">"
		var plain, mentioned, badMention, empty, hook bool
		for _, dl := range ds {
			if dl.Kind == notify.KindWebhook {
				hook = true
				var body struct {
					Account      string `json:"account"`
					State        string `json:"state"`
					StateVersion int    `json:"stateVersion"`
					Timestamp    int64  `json:"timestamp"`
					Run          struct {
						ID, Branch, TriggeredBy, Type string
						CreatedAt                     int64 `json:"createdAt"`
						Commit                        *struct {
							Hash, AuthorLogin, Message string
						} `json:"commit"`
						Delta *struct{ Added, Changed, Deleted, Resources int } `json:"delta"`
					} `json:"run"`
					Stack struct {
						ID, Name, Description string
						Labels                []string
					} `json:"stack"`
					RunUpdated any `json:"run_updated"`
				}
				if err := json.Unmarshal([]byte(dl.Body), &body); err != nil {
					t.Fatal(err)
				}
				ts, _ := f.runs.Transitions(f.ctx, r.ID)
				if body.Account != "gantry" || body.State != "FAILED" || body.StateVersion != len(ts) || body.Timestamp < r.CreatedAt.Unix() ||
					body.Run.ID != r.ID || body.Run.Branch != "main" || body.Run.Type != "TRACKED" || body.Run.CreatedAt != r.CreatedAt.Unix() ||
					body.Run.Commit == nil || body.Run.Commit.Hash != "0123456789012345678901234567890123456789" ||
					body.Run.Delta == nil || body.Run.Delta.Added != 2 || body.Run.Delta.Resources != 2 ||
					body.Stack.ID != st.ID || body.Stack.Name != "Network <prod>" || body.Stack.Description != "the VPC" ||
					len(body.Stack.Labels) != 1 || body.RunUpdated != nil {
					t.Errorf("default webhook payload = %s", dl.Body)
				}
				continue
			}
			var msg struct{ Text string }
			_ = json.Unmarshal([]byte(dl.Body), &msg)
			switch {
			case dl.Status == notify.StatusFailed && strings.Contains(dl.Error, `mention_users entry "<!channel>" is not a Slack id`):
				badMention = true
			case dl.Status == notify.StatusFailed && strings.Contains(dl.Error, "the slack message is empty"):
				empty = true
			case strings.HasPrefix(msg.Text, "<@U08MA4D50RY> <!subteam^S08MA51EW4S> :x: *Network &lt;prod&gt;*"):
				mentioned = true
			case strings.HasPrefix(msg.Text, ":x: *Network &lt;prod&gt;* ("+st.ID+"): tracked run "+runLink+" is *FAILED*\n"):
				plain = true
				if !strings.Contains(msg.Text, "commit `01234567` on main · +2 ~0 -0 · triggered by ") || !strings.Contains(msg.Text, "\n> ") {
					t.Errorf("default slack message %q", msg.Text)
				}
			default:
				t.Errorf("unexpected delivery %+v", dl)
			}
			if dl.Status == notify.StatusFailed && !strings.Contains(dl.Error, "mention") && !strings.Contains(dl.Error, "empty") {
				t.Errorf("slack delivery failed: %+v", dl)
			}
			if dl.EndpointID != "c0000000000" {
				t.Errorf("delivery to %q, want the endpoint c0000000000", dl.EndpointID)
			}
		}
		if !plain || !mentioned || !badMention || !empty || !hook {
			t.Errorf("plain %v mentioned %v bad mention %v empty %v hook %v: %+v", plain, mentioned, badMention, empty, hook, ds)
		}
	})
}
