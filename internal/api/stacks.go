package api

import (
	"errors"
	"net/http"
	"slices"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func stackOut(s stack.Stack, state string) apiv1.Stack {
	if state == "" {
		state = "NONE"
	}
	return apiv1.Stack{ID: s.ID, Name: s.Name, Space: s.Space, Repository: s.Repository, Branch: s.Branch,
		ProjectRoot: s.ProjectRoot, Tool: s.Tool, ToolVersion: s.ToolVersion, Labels: s.Labels, Description: s.Description,
		Autodeploy: s.Autodeploy, ManagedState: s.ManagedState, Hooks: apiv1.Hooks(s.Hooks), State: state, RawPolicyInput: s.RawPolicyInput,
		WorkerPool: s.WorkerPool, CreatedAt: utc(s.CreatedAt), UpdatedAt: utc(s.UpdatedAt)}
}

// stack loads a stack and checks that p may do action in its space.
func (a *API) stack(r *http.Request, p auth.Principal, action string) (stack.Stack, error) {
	st, err := a.Stacks.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return st, err
	}
	return st, auth.Authorize(p, action, st.Space)
}

func (a *API) writeStack(w http.ResponseWriter, r *http.Request, status int, st stack.Stack) error {
	states, err := a.Runs.StackStates(r.Context(), []string{st.ID})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, status, stackOut(st, states[st.ID]))
	return nil
}

func (a *API) listStacks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]stack.Stack, string, error) {
		return a.Stacks.List(r.Context(), stack.Filter{Space: q.Get("space"), Labels: q["label"], Cursor: cursor, Limit: limit})
	}, func(s stack.Stack) bool { return readable(p, s.Space) }, func(s stack.Stack) string { return s.ID })
	if err != nil {
		return err
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	states, err := a.Runs.StackStates(r.Context(), ids)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Stack]{Items: []apiv1.Stack{}, NextCursor: nextCursor(r, next)}
	for _, s := range list {
		out.Items = append(out.Items, stackOut(s, states[s.ID]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createStack(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.StackCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.ID == "" {
		return errs.E(errs.Invalid, "id is required")
	}
	st := stack.Stack{ID: in.ID, Name: in.Name, Space: in.Space, Repository: in.Repository, Branch: in.Branch,
		ProjectRoot: in.ProjectRoot, Tool: in.Tool, ToolVersion: in.ToolVersion, Labels: in.Labels,
		Description: in.Description, Autodeploy: in.Autodeploy, ManagedState: true, RawPolicyInput: in.RawPolicyInput,
		WorkerPool: in.WorkerPool}
	if st.Space == "" {
		st.Space = "root"
	}
	if in.ManagedState != nil {
		st.ManagedState = *in.ManagedState
	}
	if in.Hooks != nil {
		st.Hooks = stack.Hooks(*in.Hooks)
	}
	if err := auth.Authorize(p, auth.StackCreate, st.Space); err != nil {
		return err
	}
	if err := a.usablePool(r, st.WorkerPool, st.Space); err != nil {
		return err
	}
	if err := a.labelAttaches(r, p, nil, st); err != nil {
		return err
	}
	st, err := a.Stacks.Create(r.Context(), st)
	if err != nil {
		return err
	}
	return a.writeStack(w, r, http.StatusCreated, st)
}

func (a *API) getStack(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	return a.writeStack(w, r, http.StatusOK, st)
}

func (a *API) updateStack(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if _, err := a.stack(r, p, auth.StackUpdate); err != nil {
		return err
	}
	var in apiv1.StackUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	force := r.URL.Query().Get("force") == "true"
	st, err := a.Stacks.Update(r.Context(), r.PathValue("id"), func(s *stack.Stack) error {
		before := *s
		oldSpace := s.Space
		if s.ManagedState && in.ManagedState != nil && !*in.ManagedState && !force {
			if err := a.keepsState(r, s.ID); err != nil {
				return err
			}
		}
		set(&s.Name, in.Name)
		set(&s.Repository, in.Repository)
		set(&s.Branch, in.Branch)
		set(&s.ProjectRoot, in.ProjectRoot)
		// Switching tools without a version clears the version: the
		// other tool's is meaningless (OpenTofu 1.10.7 is no Terraform
		// release), and the server's choice is what remains.
		if in.Tool != nil && orOpenTofu(*in.Tool) != s.Tool && in.ToolVersion == nil {
			s.ToolVersion = ""
		}
		set(&s.Tool, in.Tool)
		set(&s.ToolVersion, in.ToolVersion)
		set(&s.Labels, in.Labels)
		set(&s.Description, in.Description)
		set(&s.Autodeploy, in.Autodeploy)
		set(&s.ManagedState, in.ManagedState)
		set(&s.RawPolicyInput, in.RawPolicyInput)
		if in.Hooks != nil {
			s.Hooks = stack.Hooks(*in.Hooks)
		}
		if in.Space != nil && *in.Space != s.Space {
			if err := auth.Authorize(p, auth.StackCreate, *in.Space); err != nil {
				// The caller sees the stack: a target space it cannot
				// see is answered as missing, as when creating a stack
				// there (not as the stack missing). The root space is no
				// secret (see hiddenSubject): there the refusal stays a
				// 403 naming the action, without the hidden cause that
				// would answer it as the stack missing.
				if errors.Is(err, auth.ErrHidden) {
					if *in.Space == space.Root {
						return visibleRefusal(err)
					}
					return errs.E(errs.NotFound, "space %q not found", *in.Space)
				}
				return err
			}
			s.Space = *in.Space
		}
		oldPool := s.WorkerPool
		set(&s.WorkerPool, in.WorkerPool)
		if s.WorkerPool != oldPool || s.Space != oldSpace {
			if err := a.usablePool(r, s.WorkerPool, s.Space); err != nil {
				return err
			}
		}
		if in.Labels != nil || s.Space != oldSpace {
			return a.labelAttaches(r, p, &before, *s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return a.writeStack(w, r, http.StatusOK, st)
}

// orOpenTofu is a tool as a stack stores it ("" is the default, opentofu).
func orOpenTofu(tool string) string {
	if tool == "" {
		return stack.OpenTofu
	}
	return tool
}

// visibleRefusal returns the 403 of err (auth.Authorize's) without its
// hidden cause, so that the route does not answer it as its subject
// missing.
func visibleRefusal(err error) error {
	var e *errs.Error
	if !errors.As(err, &e) {
		return err
	}
	return &errs.Error{Kind: e.Kind, Message: e.Message, Detail: e.Detail}
}

// keepsState refuses turning managed state off on a stack that has state
// in Gantry: its next runs would plan from an empty state (OpenTofu would
// create everything again) and their state would be thrown away.
func (a *API) keepsState(r *http.Request, stackID string) error {
	v, err := a.State.CurrentVersion(r.Context(), stackID)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return errs.E(errs.Conflict, "stack %s has state in Gantry (serial %d): without managed state its runs would plan from an empty state, so OpenTofu would try to create every resource again, and the state they write would be thrown away. "+
		"To keep the state, download it (gantry stack state show --id %s > terraform.tfstate), add a backend to the stack's code, run tofu init -migrate-state with that file, then turn managed state off with force (gantry stack update --force, or PATCH with ?force=true in the API). "+
		"The stored versions stay readable", stackID, v.Serial, stackID)
}

// labelAttaches refuses a stack's labels or space (after; before is the
// stack as it was, nil for a new one) that make an integration apply to it
// when it did not before (through `autoattach:<label>`, or an explicit
// attachment left from before the stack moved away and applying again),
// unless p may attach integrations in the stack's space: a label or a move
// would otherwise hand the stack's runs cloud credentials without
// integration:attach.
func (a *API) labelAttaches(r *http.Request, p auth.Principal, before *stack.Stack, after stack.Stack) error {
	if a.Integrations == nil || auth.Authorize(p, auth.IntegrationAttach, after.Space) == nil {
		return nil
	}
	now, err := a.Integrations.Attaching(r.Context(), after)
	if err != nil || len(now) == 0 {
		return err
	}
	var had []string
	if before != nil {
		if had, err = a.Integrations.Attaching(r.Context(), *before); err != nil {
			return err
		}
	}
	for _, id := range now {
		if !slices.Contains(had, id) {
			return errs.E(errs.Forbidden, "the labels or space of stack %s would make integration %s apply to it (by an autoattach label, or an attachment made before it moved): that takes %s in space %s",
				after.ID, id, auth.IntegrationAttach, after.Space)
		}
	}
	return nil
}

// usablePool checks that a stack in spaceID may run on pool ("" is the
// built-in pool, always usable).
func (a *API) usablePool(r *http.Request, pool, spaceID string) error {
	if pool == "" {
		return nil
	}
	s, err := a.pools()
	if err != nil {
		return err
	}
	// A pool in a space the caller holds nothing in is answered as one
	// that does not exist (its error would name its space).
	if p, ok := auth.From(r.Context()); ok {
		if wp, err := s.Get(r.Context(), pool); err == nil && !p.CanSee(wp.Space) {
			return errs.E(errs.Invalid, "worker pool %q does not exist", pool)
		}
	}
	err = s.Usable(r.Context(), pool, spaceID)
	if errs.Is(err, errs.NotFound) { // the space: Usable reports a missing pool as invalid
		return errs.E(errs.Invalid, "space %q does not exist", spaceID)
	}
	return err
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (a *API) deleteStack(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if _, err := a.stack(r, p, auth.StackDelete); err != nil {
		return err
	}
	force := r.URL.Query().Get("force") == "true"
	if !force {
		// Counting decodes the current state: a large request.
		size, err := a.State.VersionSize(r.Context(), r.PathValue("id"), -1)
		if err != nil {
			return err
		}
		release, err := a.hold(r, p, holdDecoded*size)
		if err != nil {
			return err
		}
		n, err := a.State.ResourceCount(r.Context(), r.PathValue("id"))
		release()
		if err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "stack %q manages %d resource(s) in its state; destroy them first (gantry stack destroy), or delete with force (%s) to drop the state and leave them unmanaged", r.PathValue("id"), n, stack.DeleteForce)
		}
		if n < 0 {
			return errs.E(errs.Conflict, "the state of stack %q cannot be inspected (encrypted client-side or not written by OpenTofu), so it may manage resources; delete with force (%s) to drop it", r.PathValue("id"), stack.DeleteForce)
		}
	}
	if err := a.Stacks.Delete(r.Context(), r.PathValue("id"), force); err != nil {
		return err
	}
	return noContent(w)
}

func envOut(v stack.EnvVar) apiv1.EnvVar {
	if v.Secret {
		v.Value = ""
	}
	return apiv1.EnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret}
}

func (a *API) listEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	vars, err := a.Stacks.ListEnv(r.Context(), st.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.EnvVar]{Items: []apiv1.EnvVar{}}
	for _, v := range vars {
		out.Items = append(out.Items, envOut(v))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ofVariable names the environment variable whose body err refuses
// ("environment variable FOO: value must not contain a NUL character").
func ofVariable(name string, err error) error {
	if errs.Is(err, errs.Invalid) {
		return errs.E(errs.Invalid, "environment variable %s: %s", name, errs.Public(err))
	}
	return err
}

func (a *API) setEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	var in apiv1.EnvVarSet
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return ofVariable(r.PathValue("name"), err)
	}
	v, err := a.Stacks.SetEnv(r.Context(), st.ID, stack.EnvVar{Name: r.PathValue("name"), Value: in.Value, Secret: in.Secret})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, envOut(v))
	return nil
}

func (a *API) deleteEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	if err := a.Stacks.DeleteEnv(r.Context(), st.ID, r.PathValue("name")); err != nil {
		return err
	}
	return noContent(w)
}

// hiddenStack answers a refusal about a stack in a space the caller holds
// nothing in as if the stack did not exist (when the route's own subject
// is something else, such as the context being attached).
func hiddenStack(err error, stackID string) error {
	if errors.Is(err, auth.ErrHidden) {
		return errs.E(errs.NotFound, "stack %q not found", stackID)
	}
	return err
}
