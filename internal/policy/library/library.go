// Package library holds the built-in policies shipped in the gantry binary:
// Rego sources in Spacelift's dialect (package spacelift, rego v1) with a
// name, a type, a description and labels. docs/policy-library.md documents
// each of them and what to edit.
package library

import (
	"embed"
	"sort"
	"strings"
)

//go:embed policies/*.rego
var files embed.FS

// Entry is one built-in policy.
type Entry struct {
	Name        string
	Type        string // PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION or LOGIN
	Description string
	Labels      []string
	Body        string // Rego source
}

// meta describes every policy; its Body is read from policies/<Name>.rego.
var meta = []Entry{
	{Name: "plan-no-public-storage", Type: "PLAN", Labels: []string{"multicloud", "storage", "security"},
		Description: "Denies storage buckets (S3, Azure storage accounts and containers, Cloud Storage) readable or writable by anyone."},
	{Name: "plan-no-open-admin-ports", Type: "PLAN", Labels: []string{"multicloud", "network", "security"},
		Description: "Denies network rules that open administration ports (SSH, RDP, WinRM) to the whole internet."},
	{Name: "plan-no-admin-grants", Type: "PLAN", Labels: []string{"multicloud", "iam", "security"},
		Description: "Denies identity grants with wildcard permissions or owner-level roles."},
	{Name: "plan-no-static-credentials", Type: "PLAN", Labels: []string{"multicloud", "iam", "security"},
		Description: "Denies static cloud credentials: IAM access keys, service account keys, application passwords."},
	{Name: "plan-private-encrypted-databases", Type: "PLAN", Labels: []string{"multicloud", "database", "security"},
		Description: "Denies databases reachable from the internet or unencrypted; warns about databases without backups."},
	{Name: "plan-allowed-instance-sizes", Type: "PLAN", Labels: []string{"multicloud", "compute", "cost"},
		Description: "Denies compute instances whose size is not on the allowed list of their cloud."},
	{Name: "plan-allowed-regions", Type: "PLAN", Labels: []string{"multicloud", "compliance"},
		Description: "Denies resources outside the regions allowed for their cloud."},
	{Name: "plan-required-tags", Type: "PLAN", Labels: []string{"multicloud", "compliance", "cost"},
		Description: "Denies taggable resources missing a required tag (AWS, Azure) or label (Google)."},
	{Name: "plan-protect-resources", Type: "PLAN", Labels: []string{"multicloud", "safety"},
		Description: "Denies destroying resources tagged protected=true or listed as protected."},
	{Name: "plan-blast-radius", Type: "PLAN", Labels: []string{"multicloud", "safety"},
		Description: "Warns when a plan destroys more resources than a threshold."},
	{Name: "plan-warn-public-instances", Type: "PLAN", Labels: []string{"multicloud", "compute", "security"},
		Description: "Warns about compute instances that get a public IP address."},
	{Name: "approval-destroy-runs", Type: "APPROVAL", Labels: []string{"safety"},
		Description: "Destroy runs need one approval; a rejection fails them."},
	{Name: "approval-production-two-approvals", Type: "APPROVAL", Labels: []string{"production"},
		Description: "Runs on stacks or spaces labelled production need two approvals from different people."},
	{Name: "approval-drift-review", Type: "APPROVAL", Labels: []string{"drift"},
		Description: "Runs started by drift detection need one approval."},
	{Name: "approval-reject-on-rejection", Type: "APPROVAL", Labels: []string{"review"},
		Description: "One approval approves a run; any rejection rejects it."},
	{Name: "trigger-dependents", Type: "TRIGGER", Labels: []string{"dependencies"},
		Description: "After a tracked run finishes, triggers stacks labelled depends-on:<stack id>."},
	{Name: "trigger-retry-failed-once", Type: "TRIGGER", Labels: []string{"reliability"},
		Description: "Retries a failed tracked run once, flagging it so the retry is not retried."},
	{Name: "notify-slack-on-failure", Type: "NOTIFICATION", Labels: []string{"slack"},
		Description: "Posts to a Slack channel when a run fails."},
	{Name: "notify-slack-on-drift", Type: "NOTIFICATION", Labels: []string{"slack", "drift"},
		Description: "Posts to a Slack channel when drift detection finds changes."},
	{Name: "notify-inbox-on-failure", Type: "NOTIFICATION", Labels: []string{"inbox"},
		Description: "Puts an error message in the Gantry inbox when a run fails."},
	{Name: "notify-webhook-tracked-finished", Type: "NOTIFICATION", Labels: []string{"webhook"},
		Description: "Calls a webhook endpoint when a tracked run finishes."},
	{Name: "push-track-main-branch", Type: "GIT_PUSH", Labels: []string{"git"},
		Description: "Deploys pushes to the main branch; ignores pushes to other branches outside pull requests."},
	{Name: "push-ignore-outside-project-root", Type: "GIT_PUSH", Labels: []string{"git", "monorepo"},
		Description: "Ignores pushes that change no file under the stack's project root."},
	{Name: "push-propose-pull-requests", Type: "GIT_PUSH", Labels: []string{"git"},
		Description: "Starts a proposed run for open, non-draft pull requests; ignores drafts."},
	{Name: "login-admin-team", Type: "LOGIN", Labels: []string{"access"},
		Description: "Lets admin team members log in as administrators and listed teams as users."},
}

var entries = load()

func load() map[string]Entry {
	out := make(map[string]Entry, len(meta))
	for _, e := range meta {
		body, err := files.ReadFile("policies/" + e.Name + ".rego")
		if err != nil {
			panic("policy library: " + err.Error()) // a build mistake, caught by the tests
		}
		e.Body = string(body)
		out[e.Name] = e
	}
	return out
}

// List returns every built-in policy, sorted by name.
func List() []Entry {
	out := make([]Entry, 0, len(entries))
	for _, e := range entries {
		out = append(out, clone(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns the built-in policy of that name.
func Get(name string) (Entry, bool) {
	e, ok := entries[strings.TrimSpace(name)]
	if !ok {
		return Entry{}, false
	}
	return clone(e), true
}

func clone(e Entry) Entry {
	e.Labels = append([]string(nil), e.Labels...)
	return e
}
