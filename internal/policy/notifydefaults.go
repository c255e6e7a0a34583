package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// What a notification rule sends when it does not say: the default body of
// a webhook rule without `payload` and the default message of a slack rule
// without `message`, as Spacelift sends them.

// notificationDefaults are the default bodies of one run update.
type notificationDefaults struct {
	webhook []byte // Spacelift's default webhook payload of a run event
	slack   string // the default Slack message, without mentions
}

// accountName is the account of notification input (account.name) and of
// default webhook payloads: one Gantry server is one account.
const accountName = "gantry"

// defaultWebhookPayload is Spacelift's default webhook payload of a run
// event (its webhooks page, "Default webhook payloads"): account, state,
// stateVersion (the change's number in the run's timeline: 1 for QUEUED,
// then one more per change), timestamp (Unix seconds of the change), the
// run with its commit and delta (null until planned) and the stack.
func defaultWebhookPayload(r run.Run, v stackView, state string, seq int, at time.Time, plan map[string]any) []byte {
	var commit any
	if r.CommitSHA != "" {
		c := runCommit(r, v.Branch)
		commit = obj{"authorLogin": c.author, "authorName": c.author, "hash": c.sha, "message": c.message,
			"timestamp": unixOrZero(c.at), "url": ""}
	}
	var delta any
	if r.HasDelta {
		delta = obj{"added": r.Delta.Add, "changed": r.Delta.Change, "deleted": r.Delta.Destroy, "resources": planResources(plan)}
	}
	branch := r.CommitBranch
	if branch == "" {
		branch = v.Branch
	}
	doc := obj{
		"account": accountName, "state": state, "stateVersion": seq, "timestamp": unixOrZero(at),
		"run": obj{"id": r.ID, "branch": branch, "commit": commit, "createdAt": unixOrZero(r.CreatedAt), "delta": delta,
			"triggeredBy": r.TriggeredBy, "type": r.Type},
		"stack": obj{"id": v.ID, "name": v.Name, "description": v.Description, "labels": strs(v.Labels)},
	}
	b, _ := json.Marshal(doc)
	return b
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// planResources is how many resources the configuration manages once the
// plan is applied: those of the plan's resource changes that are not
// deleted (0 without a plan).
func planResources(plan map[string]any) int {
	rcs, _ := plan["resource_changes"].([]any)
	n := 0
	for _, x := range rcs {
		rc, _ := x.(map[string]any)
		if mode, _ := rc["mode"].(string); mode != "" && mode != "managed" {
			continue
		}
		ch, _ := rc["change"].(map[string]any)
		if acts, _ := ch["actions"].([]any); changeAction(acts) == "deleted" {
			continue
		}
		n++
	}
	return n
}

// stateEmoji marks a Slack message by how the run is doing.
func stateEmoji(state string) string {
	switch state {
	case run.Finished:
		return ":white_check_mark:"
	case run.Failed:
		return ":x:"
	case run.Unconfirmed, run.PendingReview:
		return ":raised_hand:"
	case run.Stopped, run.Canceled, run.Discarded:
		return ":no_entry_sign:"
	}
	return ":arrows_counterclockwise:"
}

// defaultSlackMessage is the message of a slack rule without `message`:
// the stack, the run (a link to it when the server's URL is absolute), its
// type and state, the commit and, once planned, the changes; the note of
// the change (why it failed, who confirmed) when there is one.
func defaultSlackMessage(r run.Run, v stackView, state, note, runURL string) string {
	stackName := v.Name
	if stackName == "" {
		stackName = v.ID
	}
	runRef := slackEscape(r.ID)
	if strings.HasPrefix(runURL, "http://") || strings.HasPrefix(runURL, "https://") {
		runRef = "<" + slackEscape(runURL) + "|" + slackEscape(r.ID) + ">"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s* (%s): %s run %s is *%s*", stateEmoji(state), slackEscape(stackName), slackEscape(v.ID),
		strings.ToLower(r.Type), runRef, slackEscape(state))
	var details []string
	if r.CommitSHA != "" {
		sha := r.CommitSHA
		if len(sha) > 8 {
			sha = sha[:8]
		}
		c := "commit `" + slackEscape(sha) + "`"
		if r.CommitBranch != "" {
			c += " on " + slackEscape(r.CommitBranch)
		}
		details = append(details, c)
	}
	if r.HasDelta {
		details = append(details, fmt.Sprintf("+%d ~%d -%d", r.Delta.Add, r.Delta.Change, r.Delta.Destroy))
	}
	if r.TriggeredBy != "" {
		details = append(details, "triggered by "+slackEscape(r.TriggeredBy))
	}
	if len(details) > 0 {
		b.WriteString("\n" + strings.Join(details, " · "))
	}
	if note = strings.TrimSpace(note); note != "" {
		if len(note) > 500 {
			note = truncate.String(note, 500) + "..."
		}
		b.WriteString("\n> " + strings.ReplaceAll(slackEscape(note), "\n", "\n> "))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's message formatting
// gives a meaning to (links, mentions).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackIDRE is a Slack user (U..., W...) or user group (S...) id.
var slackIDRE = regexp.MustCompile(`^[A-Za-z0-9]{1,40}$`)

// mentions reads a slack rule's mention_users or mention_groups (lists of
// Slack ids) as Slack mentions: <@U123> for users, <!subteam^S123> for
// groups.
func (r *rule) mentions(name, format string) []string {
	v, ok := r.m[name]
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		r.fail("%s must be a list of Slack ids, got %s", name, jsonText(v))
		return nil
	}
	var out []string
	for _, e := range l {
		s, ok := e.(string)
		if !ok || !slackIDRE.MatchString(s) {
			what := jsonText(e)
			if ok {
				what = strconv.Quote(truncate.String(s, 100))
			}
			r.fail("%s entry %s is not a Slack id (letters and digits, like U0123ABCD)", name, what)
			return nil
		}
		out = append(out, fmt.Sprintf(format, s))
	}
	return out
}

// slackText is the text of a slack rule: its `message`, or (absent or
// null) the default message with the rule's mentions first.
func (r *rule) slackText(def string) string {
	if v, ok := r.m["message"]; ok && v != nil {
		return r.str("message")
	}
	m := append(r.mentions("mention_users", "<@%s>"), r.mentions("mention_groups", "<!subteam^%s>")...)
	if len(m) > 0 {
		return strings.Join(m, " ") + " " + def
	}
	return def
}
