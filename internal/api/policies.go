package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/policy/library"
)

// policyRoutes registers policies, their attachments, samples, simulate
// and replay, the library, reviews, receipts and push notifications.
func (a *API) policyRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/policies", auth.SpaceRead, a.listPolicies)
	r.Handle("POST /api/v1/policies", auth.PolicyCreate, a.createPolicy)
	r.Handle("GET /api/v1/policies/{id}", auth.SpaceRead, a.getPolicy)
	r.Handle("PATCH /api/v1/policies/{id}", auth.PolicyUpdate, a.updatePolicy)
	r.Handle("DELETE /api/v1/policies/{id}", auth.PolicyDelete, a.deletePolicy)
	r.Handle("GET /api/v1/policies/{id}/attachments", auth.SpaceRead, a.listAttachments)
	r.Handle("POST /api/v1/policies/{id}/attachments", auth.StackUpdate, a.attachPolicy)
	r.Handle("DELETE /api/v1/policies/{id}/attachments/{stack}", auth.StackUpdate, a.detachPolicy)
	r.Handle("GET /api/v1/policies/{id}/samples", auth.PolicyUpdate, a.listSamples)
	r.Handle("GET /api/v1/policies/{id}/samples/{key}", auth.PolicyUpdate, a.getSample)
	r.Handle("POST /api/v1/policies/{id}/simulate", auth.PolicyUpdate, a.simulatePolicy)
	r.Handle("POST /api/v1/policies/{id}/replay", auth.PolicyUpdate, a.replayPolicy)
	r.Handle("GET /api/v1/policy-library", auth.Authenticated, a.listLibrary)
	r.Handle("POST /api/v1/policy-library/{name}/import", auth.PolicyCreate, a.importLibrary)
	r.Handle("GET /api/v1/runs/{id}/reviews", auth.SpaceRead, a.listReviews)
	r.Handle("POST /api/v1/runs/{id}/reviews", auth.RunReview, a.reviewRun)
	r.Handle("GET /api/v1/runs/{id}/policy-receipts", auth.SpaceRead, a.listReceipts)
	r.Handle("POST /api/v1/stacks/{id}/notify-push", auth.RunTrigger, a.notifyPush)
}

func (a *API) policies() (*policy.Service, error) {
	if a.Policies == nil {
		return nil, errs.E(errs.Unavailable, "policies are not enabled on this server")
	}
	return a.Policies, nil
}

func policyOut(p policy.Policy) apiv1.Policy {
	return apiv1.Policy{ID: p.ID, Name: p.Name, Space: p.Space, Type: p.Type, Body: p.Body, Engine: p.Engine, EngineSet: p.EngineSet,
		Labels: nonNilStrings(p.Labels), Description: p.Description, Version: p.Version, CreatedAt: utc(p.CreatedAt), UpdatedAt: utc(p.UpdatedAt)}
}

func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// policy loads the policy of the path and checks p may do action in its space.
func (a *API) policy(r *http.Request, p auth.Principal, action string) (*policy.Service, policy.Policy, error) {
	ps, err := a.policies()
	if err != nil {
		return nil, policy.Policy{}, err
	}
	pol, err := ps.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return ps, pol, err
	}
	return ps, pol, auth.Authorize(p, action, pol.Space)
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]policy.Policy, string, error) {
		return ps.List(r.Context(), policy.Filter{Space: q.Get("space"), Type: q.Get("type"), Cursor: cursor, Limit: limit})
	}, func(pol policy.Policy) bool { return readable(p, pol.Space) }, func(pol policy.Policy) string { return pol.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Policy]{Items: []apiv1.Policy{}, NextCursor: nextCursor(r, next)}
	for _, pol := range list {
		out.Items = append(out.Items, policyOut(pol))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	var in apiv1.PolicyCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.ID == "" {
		return errs.E(errs.Invalid, "id is required")
	}
	if err := auth.Authorize(p, auth.PolicyCreate, orRoot(in.Space)); err != nil {
		return err
	}
	if err := loginPolicyAdmin(p, in.Type); err != nil {
		return err
	}
	if err := autoattachAllowed(p, auth.StackUpdate, "policy", in.ID, in.Space, nil, in.Labels); err != nil {
		return err
	}
	pol, err := ps.Create(r.Context(), policy.Policy{ID: in.ID, Name: in.Name, Space: in.Space, Type: in.Type, Body: in.Body,
		EngineSet: in.Engine, Labels: in.Labels, Description: in.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, policyOut(pol))
	return nil
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, pol, err := a.policy(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, policyOut(pol))
	return nil
}

func (a *API) updatePolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policy(r, p, auth.PolicyUpdate)
	if err != nil {
		return err
	}
	if err := loginPolicyAdmin(p, pol.Type); err != nil {
		return err
	}
	var in apiv1.PolicyUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	pol, err = ps.Update(r.Context(), pol.ID, func(x *policy.Policy) error {
		set(&x.Name, in.Name)
		set(&x.Body, in.Body)
		set(&x.EngineSet, in.Engine)
		before := x.Labels
		set(&x.Labels, in.Labels)
		if err := autoattachAllowed(p, auth.StackUpdate, "policy", x.ID, x.Space, before, x.Labels); err != nil {
			return err
		}
		set(&x.Description, in.Description)
		return nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, policyOut(pol))
	return nil
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policy(r, p, auth.PolicyDelete)
	if err != nil {
		return err
	}
	if err := loginPolicyAdmin(p, pol.Type); err != nil {
		return err
	}
	if err := ps.Delete(r.Context(), pol.ID); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listAttachments(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policy(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	list, err := ps.Attached(r.Context(), pol.ID)
	if err != nil {
		return err
	}
	if list, err = readableStacks(r.Context(), a, p, list, func(at policy.Attachment) string { return at.StackID }); err != nil {
		return err
	}
	out := apiv1.List[apiv1.PolicyAttachment]{Items: []apiv1.PolicyAttachment{}}
	for _, at := range list {
		out.Items = append(out.Items, apiv1.PolicyAttachment{Stack: at.StackID, Via: at.Via, Applied: at.NotApplied == "", NotApplied: at.NotApplied})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) attachPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.PolicyAttach
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	noteStack(r, "", in.Stack)
	ps, pol, err := a.policy(r, p, auth.Visible)
	if err != nil {
		return err
	}
	st, err := a.Stacks.Get(r.Context(), in.Stack)
	if err != nil {
		return err
	}
	noteStack(r, st.Space, st.ID)
	if err := auth.Authorize(p, auth.StackUpdate, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if err := ps.Attach(r.Context(), pol.ID, st.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, apiv1.PolicyAttachment{Stack: st.ID, Via: "explicit"})
	return nil
}

func (a *API) detachPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policy(r, p, auth.Visible)
	if err != nil {
		return err
	}
	st, err := a.Stacks.Get(r.Context(), r.PathValue("stack"))
	if err != nil {
		return err
	}
	noteSpace(r, st.Space)
	if err := auth.Authorize(p, auth.StackUpdate, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if err := ps.Detach(r.Context(), pol.ID, st.ID); err != nil {
		return err
	}
	return noContent(w)
}

func sampleOut(sm policy.Sample) apiv1.PolicySample {
	return apiv1.PolicySample{Key: sm.Key, Policy: sm.PolicyID, Version: sm.Version, Type: sm.Type, Run: sm.RunID, Explicit: sm.Explicit,
		Outcome: sm.Outcome, CreatedAt: utc(sm.CreatedAt), Input: sm.Input, Result: sm.Result}
}

func (a *API) listSamples(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policyEvaluation(r, p)
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	list, err := ps.Samples(r.Context(), pol.ID, cursor, limit+1)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.PolicySample]{Items: []apiv1.PolicySample{}}
	if len(list) > limit {
		list = list[:limit]
		out.NextCursor = nextCursor(r, list[limit-1].Key)
	}
	for _, sm := range list {
		out.Items = append(out.Items, sampleOut(sm))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getSample(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policyEvaluation(r, p)
	if err != nil {
		return err
	}
	sm, err := ps.Sample(r.Context(), pol.ID, r.PathValue("key"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, sampleOut(sm))
	return nil
}

func decisionOut(d policy.Decision) apiv1.PolicyDecision {
	values := d.Values
	if values == nil {
		values = map[string]any{}
	}
	return apiv1.PolicyDecision{Outcome: d.Outcome, Messages: nonNilStrings(d.Messages), Values: values, Error: d.Error,
		DurationMS: float64(d.Duration.Microseconds()) / 1000}
}

func (a *API) simulatePolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policyEvaluation(r, p)
	if err != nil {
		return err
	}
	var in apiv1.PolicySimulate
	if err := httpx.DecodeJSON(w, r, &in, policy.MaxInput); err != nil {
		return err
	}
	if (len(in.Input) == 0) == (in.Sample == "") {
		return errs.E(errs.Invalid, "give either an input or a sample key")
	}
	sim, err := ps.Simulate(r.Context(), pol.ID, in.Input, in.Sample, in.Body)
	if err != nil {
		return err
	}
	out := apiv1.PolicySimulation{Policy: sim.PolicyID, Version: sim.Version, Edited: sim.Edited, Engine: sim.Engine, Sample: sim.SampleKey,
		Decision: decisionOut(sim.Decision), Changes: nonNilStrings(sim.Changes)}
	if sim.Recorded != nil {
		rec := decisionOut(*sim.Recorded)
		out.Recorded = &rec
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ParseSince reads a duration like 7d, 36h or 90m.
func ParseSince(s string) (time.Duration, error) {
	if s == "" {
		return 7 * 24 * time.Hour, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, errs.E(errs.Invalid, "since %q is not a duration like 7d, 36h or 90m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errs.E(errs.Invalid, "since %q is not a duration like 7d, 36h or 90m", s)
	}
	return d, nil
}

func (a *API) replayPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, pol, err := a.policyEvaluation(r, p)
	if err != nil {
		return err
	}
	var in apiv1.PolicyReplay
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if strings.TrimSpace(in.Body) == "" {
		return errs.E(errs.Invalid, "body is required: the edited policy to replay")
	}
	since, err := ParseSince(in.Since)
	if err != nil {
		return err
	}
	items, n, err := ps.Replay(r.Context(), pol.ID, in.Body, time.Now().Add(-since))
	if err != nil {
		return err
	}
	out := apiv1.PolicyReplayResult{Evaluated: n, Changed: []apiv1.PolicyReplayItem{}}
	for _, it := range items {
		out.Changed = append(out.Changed, apiv1.PolicyReplayItem{Sample: it.SampleKey, Run: it.RunID, CreatedAt: utc(it.CreatedAt),
			Before: it.Before, After: it.After, Changes: it.Changes})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listLibrary(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	out := apiv1.List[apiv1.LibraryPolicy]{Items: []apiv1.LibraryPolicy{}}
	for _, e := range library.List() {
		out.Items = append(out.Items, apiv1.LibraryPolicy{Name: e.Name, Type: e.Type, Description: e.Description, Labels: nonNilStrings(e.Labels), Body: e.Body})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) importLibrary(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.LibraryImport
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	ps, err := a.policies()
	if err != nil {
		return err
	}
	e, ok := library.Get(r.PathValue("name"))
	if !ok {
		return errs.E(errs.NotFound, "no library policy %q (see GET /api/v1/policy-library)", r.PathValue("name"))
	}
	if err := auth.Authorize(p, auth.PolicyCreate, orRoot(in.Space)); err != nil {
		return err
	}
	pid, lbl := in.ID, in.Labels
	if pid == "" {
		pid = e.Name
	}
	if lbl == nil {
		lbl = e.Labels
	}
	if err := loginPolicyAdmin(p, e.Type); err != nil {
		return err
	}
	if err := autoattachAllowed(p, auth.StackUpdate, "policy", pid, in.Space, nil, lbl); err != nil {
		return err
	}
	pol, err := ps.Create(r.Context(), policy.Policy{ID: pid, Name: e.Name, Space: in.Space, Type: e.Type, Body: e.Body,
		Labels: lbl, Description: e.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, policyOut(pol))
	return nil
}

func (a *API) listReviews(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	rn, err := a.Runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, rn.SpaceID); err != nil {
		return err
	}
	list, err := ps.Reviews(r.Context(), rn.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Review]{Items: []apiv1.Review{}}
	for _, rv := range list {
		out.Items = append(out.Items, apiv1.Review{ID: rv.ID, Run: rv.RunID, Author: rv.Author, Decision: rv.Decision, Note: rv.Note,
			RunState: rv.RunState, CreatedAt: utc(rv.CreatedAt)})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) reviewRun(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	rn, err := a.Runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.RunReview, rn.SpaceID); err != nil {
		return err
	}
	var in apiv1.ReviewCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	actor := policyActor(p, r)
	if actor.Roles, err = a.rolesIn(r, p, rn.SpaceID); err != nil {
		return err
	}
	rn, err = ps.AddReview(r.Context(), rn.ID, actor, in.Decision, in.Note, remoteIP(r))
	if err != nil {
		return err
	}
	return a.writeRun(w, r, http.StatusOK, rn)
}

// policyActor is what policies see of p (Spacelift's session objects).
func policyActor(p auth.Principal, r *http.Request) policy.Actor {
	return policy.Actor{Name: p.String(), DisplayName: p.DisplayName, IP: sourceIP(r), Admin: p.Admin, Teams: p.Groups}
}

// rolesIn is what a review's author_roles show of the roles p holds in
// space: each role's slug and name.
func (a *API) rolesIn(r *http.Request, p auth.Principal, space string) ([]policy.Role, error) {
	out := []policy.Role{}
	for _, slug := range p.RolesIn(space) {
		name := slug
		if a.Roles != nil {
			role, err := a.Roles.Role(r.Context(), slug)
			switch {
			case err == nil:
				name = role.Name
			case !errs.Is(err, errs.NotFound):
				return nil, err
			}
		}
		out = append(out, policy.Role{Slug: slug, Name: name})
	}
	return out, nil
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

func receiptOut(rc policy.Receipt) apiv1.PolicyReceipt {
	return apiv1.PolicyReceipt{ID: rc.ID, Policy: rc.PolicyID, Name: rc.Name, Version: rc.Version, Type: rc.Type, Outcome: rc.Outcome,
		Messages: nonNilStrings(rc.Messages), Flags: nonNilStrings(rc.Flags), Error: rc.Error,
		DurationMS: float64(rc.Duration.Microseconds()) / 1000, Sample: rc.SampleKey, At: utc(rc.At)}
}

func (a *API) listReceipts(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	rn, err := a.Runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, rn.SpaceID); err != nil {
		return err
	}
	list, err := ps.Receipts(r.Context(), rn.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.PolicyReceipt]{Items: []apiv1.PolicyReceipt{}}
	for _, rc := range list {
		out.Items = append(out.Items, receiptOut(rc))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) notifyPush(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ps, err := a.policies()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.RunTrigger)
	if err != nil {
		return err
	}
	var in apiv1.PushEvent
	if err := httpx.DecodeJSON(w, r, &in, 8<<20); err != nil {
		return err
	}
	// As startRun: a run of a short or made-up SHA would only fail later,
	// at checkout. An empty one is the policy service's to refuse.
	if in.SHA != "" && !git.ValidSHA(in.SHA) {
		return errs.E(errs.Invalid, "sha %q is not a full 40-character commit SHA", in.SHA)
	}
	push := policy.Push{Branch: in.Branch, SHA: in.SHA, Message: in.Message, Author: in.Author, Tag: in.Tag, AffectedFiles: in.AffectedFiles}
	if pr := in.PullRequest; pr != nil {
		push.PullRequest = &policy.PullRequest{ID: pr.ID, Action: pr.Action, Title: pr.Title, Author: pr.Author, Labels: pr.Labels,
			BaseBranch: pr.BaseBranch, Draft: pr.Draft, Closed: pr.Closed, Approved: pr.Approved, Mergeable: pr.Mergeable}
	}
	res, err := ps.NotifyPush(r.Context(), st.ID, push, policyActor(p, r))
	if err != nil {
		return err
	}
	out := apiv1.PushResult{Action: res.Action, Canceled: nonNilStrings(res.Canceled), Message: res.Message, Fail: res.Fail,
		Default: res.Default, Receipts: []apiv1.PolicyReceipt{}}
	for _, rc := range res.Receipts {
		out.Receipts = append(out.Receipts, receiptOut(rc))
	}
	status := http.StatusOK
	if res.Run != nil {
		ts, err := a.Runs.Transitions(r.Context(), res.Run.ID)
		if err != nil {
			return err
		}
		ro := runOut(*res.Run, ts)
		out.Run, status = &ro, http.StatusCreated
	}
	httpx.WriteJSON(w, status, out)
	return nil
}

// loginPolicyAdmin: LOGIN policies decide who signs in and who is an
// admin, so only admins write them (a policy:create holder could
// otherwise make themselves admin), and their samples hold every
// sign-in's login, email, groups and address, so only admins read,
// simulate or replay them.
func loginPolicyAdmin(p auth.Principal, typ string) error {
	if strings.EqualFold(typ, engine.TypeLogin) && !p.Admin {
		return errs.E(errs.Forbidden, "%s may not change LOGIN policies or use their samples: they decide who is an admin, so only admins may", p)
	}
	return nil
}

// policyEvaluation loads the policy of the path for its samples, simulate
// and replay: policy:update in its space, and an admin for a LOGIN policy.
//
// Their audit events, refused ones included, are in the policy's space.
func (a *API) policyEvaluation(r *http.Request, p auth.Principal) (*policy.Service, policy.Policy, error) {
	ps, pol, err := a.policy(r, p, auth.PolicyUpdate)
	if pol.ID != "" {
		noteSpace(r, pol.Space)
	}
	if err != nil {
		return ps, pol, err
	}
	return ps, pol, loginPolicyAdmin(p, pol.Type)
}
