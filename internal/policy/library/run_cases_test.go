package library

import (
	"slices"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func reviews(approvers, rejecters []string) m {
	entries := func(authors []string, state string) []any {
		out := []any{}
		for _, a := range authors {
			out = append(out, m{"author": a, "state": state, "request": m{}, "session": m{"login": a}, "state_version": 1})
		}
		return out
	}
	return m{"current": m{"approvals": entries(approvers, "APPROVED"), "rejections": entries(rejecters, "REJECTED")},
		"older": m{"approvals": []any{}, "rejections": []any{}}}
}

// approvalInput: a run of type typ on a stack with labels, in a space with
// spaceLabels, reviewed by approvers and rejecters.
func approvalInput(typ string, drift bool, labels, spaceLabels []any, approvers, rejecters []string) m {
	return m{
		"run":     m{"id": "run-01", "type": typ, "state": "UNCONFIRMED", "drift_detection": drift, "flags": []any{}},
		"stack":   m{"id": "web", "labels": labels, "space": m{"id": "prod", "name": "prod", "labels": spaceLabels}},
		"reviews": reviews(approvers, rejecters),
	}
}

func approvalCases() []testCase {
	none := []any{}
	prod := []any{"production"}
	return []testCase{
		{"approval-destroy-runs", "destroy approved", true, approvalInput("DESTROY", false, none, none, []string{"alice"}, nil), approves},
		{"approval-destroy-runs", "destroy rejected", true, approvalInput("DESTROY", false, none, none, []string{"alice"}, []string{"bob"}), rejects},
		{"approval-destroy-runs", "destroy waits", false, approvalInput("DESTROY", false, none, none, nil, nil), undecided},
		{"approval-destroy-runs", "tracked passes", true, approvalInput("TRACKED", false, none, none, nil, nil), approves},
		{"approval-production-two-approvals", "two approvers", true, approvalInput("TRACKED", false, prod, none, []string{"alice", "bob"}, nil), approves},
		{"approval-production-two-approvals", "space label", true, approvalInput("TRACKED", false, none, prod, []string{"alice", "bob"}, nil), approves},
		{"approval-production-two-approvals", "one approver", false, approvalInput("TRACKED", false, prod, none, []string{"alice"}, nil), undecided},
		{"approval-production-two-approvals", "same approver twice", false, approvalInput("TRACKED", false, none, prod, []string{"alice", "alice"}, nil), undecided},
		{"approval-production-two-approvals", "rejected", true, approvalInput("TRACKED", false, prod, none, []string{"alice", "bob"}, []string{"carol"}), rejects},
		{"approval-production-two-approvals", "not production", true, approvalInput("TRACKED", false, []any{"staging"}, none, nil, nil), approves},
		{"approval-drift-review", "drift approved", true, approvalInput("PROPOSED", true, none, none, []string{"alice"}, nil), approves},
		{"approval-drift-review", "drift waits", false, approvalInput("PROPOSED", true, none, none, nil, nil), undecided},
		{"approval-drift-review", "not drift", true, approvalInput("TRACKED", false, none, none, nil, nil), approves},
		{"approval-reject-on-rejection", "rejected", true, approvalInput("TRACKED", false, none, none, []string{"alice"}, []string{"bob"}), rejects},
		{"approval-reject-on-rejection", "approved", true, approvalInput("TRACKED", false, none, none, []string{"alice"}, nil), approves},
		{"approval-reject-on-rejection", "no reviews", false, approvalInput("TRACKED", false, none, none, nil, nil), undecided},
	}
}

func stackObj(id string, labels ...any) m {
	if labels == nil {
		labels = []any{}
	}
	return m{"id": id, "labels": labels, "space": m{"id": "root", "labels": []any{}}, "queued_runs": 0}
}

func triggerInput(state, typ string, flags []any) m {
	return m{
		"run":   m{"id": "run-01", "state": state, "type": typ, "flags": flags, "drift_detection": false},
		"stack": stackObj("network"),
		"stacks": []any{
			stackObj("web", "depends-on:network", "team:web"),
			stackObj("db", "depends-on:network"),
			stackObj("other", "depends-on:network-legacy"),
		},
		"workflow": []any{},
	}
}

func triggers(ids ...string) func(engine.Decision) bool {
	return func(d engine.Decision) bool { return slices.Equal(d.Trigger, ids) }
}

func triggerCases() []testCase {
	retried := func(d engine.Decision) bool {
		return slices.Equal(d.Trigger, []string{"network"}) && slices.Equal(d.Flags, []string{"retried"})
	}
	return []testCase{
		{"trigger-dependents", "tracked finished", true, triggerInput("FINISHED", "TRACKED", []any{}), triggers("db", "web")},
		{"trigger-dependents", "proposed finished", false, triggerInput("FINISHED", "PROPOSED", []any{}), triggers()},
		{"trigger-dependents", "tracked failed", false, triggerInput("FAILED", "TRACKED", []any{}), triggers()},
		{"trigger-retry-failed-once", "first failure", true, triggerInput("FAILED", "TRACKED", []any{}), retried},
		{"trigger-retry-failed-once", "failed retry", false, triggerInput("FAILED", "TRACKED", []any{"retried"}), triggers()},
		{"trigger-retry-failed-once", "finished", false, triggerInput("FINISHED", "TRACKED", []any{}), triggers()},
		{"trigger-retry-failed-once", "proposed failure", false, triggerInput("FAILED", "PROPOSED", []any{}), triggers()},
	}
}
