package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// CreatePolicy creates a policy; the server compiles it first and refuses
// a body that does not compile (Invalid, with file:line:col positions).
func (c *Client) CreatePolicy(ctx context.Context, in apiv1.PolicyCreate) (apiv1.Policy, error) {
	var out apiv1.Policy
	err := c.do(ctx, http.MethodPost, "/policies", nil, in, &out)
	return out, err
}

// UpdatePolicy changes the fields of a policy that in sets; a new body or
// engine makes a new version.
func (c *Client) UpdatePolicy(ctx context.Context, id string, in apiv1.PolicyUpdate) (apiv1.Policy, error) {
	var out apiv1.Policy
	err := c.do(ctx, http.MethodPatch, "/policies/"+esc(id), nil, in, &out)
	return out, err
}

// GetPolicy returns one policy with its body.
func (c *Client) GetPolicy(ctx context.Context, id string) (apiv1.Policy, error) {
	var out apiv1.Policy
	err := c.do(ctx, http.MethodGet, "/policies/"+esc(id), nil, nil, &out)
	return out, err
}

// ListPolicies returns a page of policies, only those of space and of type
// typ when they are not empty.
func (c *Client) ListPolicies(ctx context.Context, opts ListOptions, space, typ string) (apiv1.List[apiv1.Policy], error) {
	q := opts.values()
	setIf(q, "space", space)
	setIf(q, "type", typ)
	var out apiv1.List[apiv1.Policy]
	err := c.do(ctx, http.MethodGet, "/policies", q, nil, &out)
	return out, err
}

// DeletePolicy deletes a policy and its attachments.
func (c *Client) DeletePolicy(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/policies/"+esc(id), nil, nil, nil)
}

// PolicyAttachments returns the stacks a policy applies to, explicitly or
// through an autoattach label.
func (c *Client) PolicyAttachments(ctx context.Context, id string) (apiv1.List[apiv1.PolicyAttachment], error) {
	var out apiv1.List[apiv1.PolicyAttachment]
	err := c.do(ctx, http.MethodGet, "/policies/"+esc(id)+"/attachments", nil, nil, &out)
	return out, err
}

// AttachPolicy attaches a policy to a stack.
func (c *Client) AttachPolicy(ctx context.Context, id, stack string) (apiv1.PolicyAttachment, error) {
	var out apiv1.PolicyAttachment
	err := c.do(ctx, http.MethodPost, "/policies/"+esc(id)+"/attachments", nil, apiv1.PolicyAttach{Stack: stack}, &out)
	return out, err
}

// DetachPolicy removes the explicit attachment of a policy to a stack.
func (c *Client) DetachPolicy(ctx context.Context, id, stack string) error {
	return c.do(ctx, http.MethodDelete, "/policies/"+esc(id)+"/attachments/"+esc(stack), nil, nil, nil)
}

// PolicySamples returns the newest samples of a policy (without their input
// and result); limit 0 lets the server choose.
func (c *Client) PolicySamples(ctx context.Context, id string, limit int) (apiv1.List[apiv1.PolicySample], error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out apiv1.List[apiv1.PolicySample]
	err := c.do(ctx, http.MethodGet, "/policies/"+esc(id)+"/samples", q, nil, &out)
	return out, err
}

// PolicySample returns one sample with its input and result.
func (c *Client) PolicySample(ctx context.Context, id, key string) (apiv1.PolicySample, error) {
	var out apiv1.PolicySample
	err := c.do(ctx, http.MethodGet, "/policies/"+esc(id)+"/samples/"+esc(key), nil, nil, &out)
	return out, err
}

// SimulatePolicy evaluates a policy (or the edited body of in) on an input
// or a stored sample, without side effects.
func (c *Client) SimulatePolicy(ctx context.Context, id string, in apiv1.PolicySimulate) (apiv1.PolicySimulation, error) {
	var out apiv1.PolicySimulation
	err := c.do(ctx, http.MethodPost, "/policies/"+esc(id)+"/simulate", nil, in, &out)
	return out, err
}

// ReplayPolicy evaluates an edited body on the policy's recent samples and
// returns those whose decision would change.
func (c *Client) ReplayPolicy(ctx context.Context, id string, in apiv1.PolicyReplay) (apiv1.PolicyReplayResult, error) {
	var out apiv1.PolicyReplayResult
	err := c.do(ctx, http.MethodPost, "/policies/"+esc(id)+"/replay", nil, in, &out)
	return out, err
}

// PolicyLibrary returns the policies shipped with the server.
func (c *Client) PolicyLibrary(ctx context.Context) (apiv1.List[apiv1.LibraryPolicy], error) {
	var out apiv1.List[apiv1.LibraryPolicy]
	err := c.do(ctx, http.MethodGet, "/policy-library", nil, nil, &out)
	return out, err
}

// ImportLibraryPolicy creates a policy from the library policy name.
func (c *Client) ImportLibraryPolicy(ctx context.Context, name string, in apiv1.LibraryImport) (apiv1.Policy, error) {
	var out apiv1.Policy
	err := c.do(ctx, http.MethodPost, "/policy-library/"+esc(name)+"/import", nil, in, &out)
	return out, err
}

// ReviewRun approves or rejects a run and returns it after the approval
// policies decided again.
func (c *Client) ReviewRun(ctx context.Context, runID string, in apiv1.ReviewCreate) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/runs/"+esc(runID)+"/reviews", nil, in, &out)
	return out, err
}

// RunReviews returns a run's reviews, oldest first.
func (c *Client) RunReviews(ctx context.Context, runID string) (apiv1.List[apiv1.Review], error) {
	var out apiv1.List[apiv1.Review]
	err := c.do(ctx, http.MethodGet, "/runs/"+esc(runID)+"/reviews", nil, nil, &out)
	return out, err
}

// RunPolicyReceipts returns what the policies evaluated for a run decided.
func (c *Client) RunPolicyReceipts(ctx context.Context, runID string) (apiv1.List[apiv1.PolicyReceipt], error) {
	var out apiv1.List[apiv1.PolicyReceipt]
	err := c.do(ctx, http.MethodGet, "/runs/"+esc(runID)+"/policy-receipts", nil, nil, &out)
	return out, err
}

// NotifyPush tells the server about a git push (or a pull-request event) on
// a stack: its GIT_PUSH policies decide whether a run starts.
func (c *Client) NotifyPush(ctx context.Context, stack string, in apiv1.PushEvent) (apiv1.PushResult, error) {
	var out apiv1.PushResult
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/notify-push", nil, in, &out)
	return out, err
}
