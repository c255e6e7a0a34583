package api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// stateRoutes serves OpenTofu's http backend protocol at
// /api/v1/stacks/{id}/tfstate: GET and POST the state, LOCK and UNLOCK.
func (a *API) stateRoutes(mux *http.ServeMux, ad httpx.Adapter, record func(Route)) {
	h := func(method, action string, fn func(w http.ResponseWriter, r *http.Request, p auth.Principal, stackID string) error) {
		if record != nil {
			record(Route{method + " /api/v1/stacks/{id}/tfstate", action})
		}
		mux.Handle(method+" /api/v1/stacks/{id}/tfstate", ad.H(func(w http.ResponseWriter, r *http.Request) error {
			p, err := a.authenticate(r)
			if err != nil {
				return err
			}
			stackID := r.PathValue("id")
			if p.Kind == "run" {
				if p.StackID != stackID {
					return errs.E(errs.Forbidden, "this run token is for the state of stack %s only", p.StackID)
				}
				if err := a.runStateAccess(r, p, stackID); err != nil {
					return err
				}
				if !p.ManagedState {
					return errs.E(errs.Conflict, "stack %s does not use managed state", stackID)
				}
				return fn(w, r, p, stackID)
			}
			st, err := a.stack(r, p, action)
			if err != nil {
				if errors.Is(err, auth.ErrHidden) { // as if it did not exist
					return errs.E(errs.NotFound, "stack %q not found", stackID)
				}
				return err
			}
			if !st.ManagedState {
				return errs.E(errs.Conflict, "stack %s does not use managed state", stackID)
			}
			return fn(w, r, p, stackID)
		}))
	}
	// For people; runs use their own state token, on their stack only.
	h("GET", auth.StateDownload, a.stateGet)
	h("POST", auth.StateWrite, a.statePost)
	h("LOCK", auth.StackLock, a.stateLock)
	h("UNLOCK", auth.StackUnlock, a.stateUnlock)
}

func (a *API) stateGet(w http.ResponseWriter, r *http.Request, p auth.Principal, stackID string) error {
	if p.Kind == "run" {
		audit.Skip(r.Context()) // the run reading its own stack's state
	}
	// OpenTofu reads the state at each command: a small one (the usual
	// case) is read in one query; a large one waits for its share of the
	// memory budget before it is loaded.
	v, data, err := a.State.CurrentUpTo(r.Context(), stackID, smallState)
	if err == nil && data == nil {
		release, herr := a.hold(r, p, holdCopies*v.Size)
		if herr != nil {
			return herr
		}
		defer release()
		_, data, err = a.State.Current(r.Context(), stackID)
	}
	if errs.Is(err, errs.NotFound) {
		w.WriteHeader(http.StatusNoContent) // no state yet: OpenTofu starts empty
		return nil
	}
	if err != nil {
		return err
	}
	sum := md5.Sum(data)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	_, err = w.Write(data)
	return err
}

// statePost stores a new state version. A body announced larger than the
// limit is refused before it is read; the body is read once, into memory
// the budget grants, and sealed where it lies.
func (a *API) statePost(w http.ResponseWriter, r *http.Request, p auth.Principal, stackID string) error {
	limit := a.State.Limit()
	if r.ContentLength > limit {
		return a.stateTooLarge(r, p, stackID, r.ContentLength)
	}
	want := r.ContentLength
	if want < 0 {
		want = limit
	}
	release, err := a.hold(r, p, holdCopies*want)
	if err != nil {
		return err
	}
	defer release()
	body, err := httpx.ReadSealable(w, r, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return a.stateTooLarge(r, p, stackID, -1)
		}
		return err
	}
	if want := r.Header.Get("Content-MD5"); want != "" {
		sum := md5.Sum(body.Bytes())
		if base64.StdEncoding.EncodeToString(sum[:]) != want {
			return errs.E(errs.Invalid, "state body does not match its Content-MD5 header")
		}
	}
	runID := ""
	if p.Kind == "run" {
		runID = p.ID
	}
	_, err = a.State.WritePlain(r.Context(), stackID, body, r.URL.Query().Get("ID"), runID, p.String())
	if err != nil {
		return lockAware(w, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// stateTooLarge refuses a state of size bytes (-1: unknown) larger than
// the limit, and tells the operator in the server's log (OpenTofu shows
// its user only "HTTP error: 413").
func (a *API) stateTooLarge(r *http.Request, p auth.Principal, stackID string, size int64) error {
	err := a.State.TooLarge(size)
	if a.Log != nil {
		a.Log.Warn("a state larger than the state size limit was refused (--max-state-size)", "stack_id", stackID,
			"by", p.String(), "size", size, "limit", a.State.Limit(), "request_id", httpx.RequestID(r.Context()))
	}
	return err
}

// readLockInfo reads the lock info of a LOCK or UNLOCK. An UNLOCK may
// have an empty body, or none without an ID: Terraform's force-unlock
// sends that (its http backend's Unlock ignores the lock ID); it means
// "whatever lock is held".
func readLockInfo(w http.ResponseWriter, r *http.Request) (state.LockInfo, error) {
	var info state.LockInfo
	body, err := httpx.ReadBody(w, r, 64<<10, "lock info")
	if err != nil {
		return info, err
	}
	unlock := r.Method == "UNLOCK"
	if unlock && len(bytes.TrimSpace(body)) == 0 {
		return info, nil
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, errs.E(errs.Invalid, "lock info is not valid JSON: %v", err)
	}
	if err := httpx.CheckNUL(body); err != nil {
		return info, errs.E(errs.Invalid, "lock info: %s", errs.Public(err))
	}
	if info.ID == "" && !unlock {
		return info, errs.E(errs.Invalid, "lock info needs an ID")
	}
	return info, nil
}

func (a *API) stateLock(w http.ResponseWriter, r *http.Request, p auth.Principal, stackID string) error {
	info, err := readLockInfo(w, r)
	if err != nil {
		return err
	}
	runID := ""
	if p.Kind == "run" {
		runID = p.ID
		if info.Info == "" {
			info.Info = "run " + p.ID
		}
	}
	if runID != "" {
		audit.Skip(r.Context()) // a run's own lock: its failure is in the run's log
	}
	if err := a.State.Acquire(r.Context(), stackID, info, runID); err != nil {
		return lockAware(w, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) stateUnlock(w http.ResponseWriter, r *http.Request, p auth.Principal, stackID string) error {
	info, err := readLockInfo(w, r)
	if err != nil {
		return err
	}
	runID := ""
	if p.Kind == "run" {
		runID = p.ID
		audit.Skip(r.Context()) // State.Release records a run's release of another's lock
	}
	// No ID (Terraform's force-unlock): whatever lock is held, with the
	// same rules as an UNLOCK giving its ID (a run only its own lock).
	if err := a.State.Release(r.Context(), stackID, info.ID, runID); err != nil {
		return lockAware(w, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// lockAware answers a lock conflict as OpenTofu expects: 423 with the
// holder's lock info as the body (plus our error envelope's field).
func lockAware(w http.ResponseWriter, err error) error {
	l, ok := errs.DetailOf(err).(state.LockInfo)
	if !ok || !errs.Is(err, errs.Locked) {
		return err
	}
	body := struct {
		state.LockInfo
		Error apiv1.ErrorDetail `json:"error"`
	}{l, apiv1.ErrorDetail{Code: string(errs.Locked), Message: errs.Public(err)}}
	httpx.WriteJSON(w, http.StatusLocked, body)
	return nil
}

func versionOut(v state.Version, current int64) apiv1.StateVersion {
	return apiv1.StateVersion{Serial: v.Serial, Lineage: v.Lineage, Checksum: v.Checksum, Size: v.Size, Run: v.RunID,
		CreatedBy: v.CreatedBy, CreatedAt: utc(v.CreatedAt), Current: v.Serial == current}
}

// unmanaged answers a state read of a stack without managed state that
// has no versions in Gantry (versions kept from when it had managed state
// stay readable).
func unmanaged(stackID string) error {
	return errs.E(errs.Conflict, "stack %s does not use managed state: its state is wherever the backend in its code keeps it, not in Gantry", stackID)
}

func (a *API) stateVersions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.StateRead)
	if err != nil {
		return err
	}
	vs, err := a.State.Versions(r.Context(), st.ID)
	if err != nil {
		return err
	}
	if len(vs) == 0 && !st.ManagedState {
		return unmanaged(st.ID)
	}
	out := apiv1.List[apiv1.StateVersion]{Items: []apiv1.StateVersion{}}
	for _, v := range vs {
		out.Items = append(out.Items, versionOut(v, vs[0].Serial))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) stateVersion(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.StateDownload)
	if err != nil {
		return err
	}
	serial := int64(-1)
	if s := r.PathValue("serial"); s != "current" {
		var perr error
		if serial, perr = strconv.ParseInt(s, 10, 64); perr != nil || serial < 0 {
			return errs.E(errs.Invalid, "serial must be a non-negative integer or \"current\"")
		}
	}
	size, err := a.State.VersionSize(r.Context(), st.ID, serial)
	if err != nil {
		return err
	}
	release, err := a.hold(r, p, holdCopies*size)
	if err != nil {
		return err
	}
	defer release()
	var data []byte
	if serial < 0 {
		_, data, err = a.State.Current(r.Context(), st.ID)
		if errs.Is(err, errs.NotFound) && !st.ManagedState {
			return unmanaged(st.ID)
		}
	} else {
		_, data, err = a.State.Get(r.Context(), st.ID, serial)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(data)
	return err
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	// The permission first: whoever may not roll back learns that, not
	// what is wrong with their request.
	st, err := a.stack(r, p, auth.StateRollback)
	if err != nil {
		return err
	}
	var in apiv1.StateRollback
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	v, err := a.State.Rollback(r.Context(), st.ID, in.Serial, p.String())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, versionOut(v, v.Serial))
	return nil
}

func (a *API) outputs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Output]{Items: []apiv1.Output{}}
	size, err := a.State.VersionSize(r.Context(), st.ID, -1)
	if err != nil {
		return err
	}
	release, err := a.hold(r, p, holdDecoded*size)
	if err != nil {
		return err
	}
	defer release()
	_, data, err := a.State.Current(r.Context(), st.ID)
	if errs.Is(err, errs.NotFound) {
		httpx.WriteJSON(w, http.StatusOK, out)
		return nil
	}
	if err != nil {
		return err
	}
	outs, err := tofu.ParseOutputs(data)
	if err != nil {
		return errs.E(errs.Conflict, "the outputs of the current state cannot be read: %v", err)
	}
	m, err := a.stackMasker(r.Context(), st)
	if err != nil {
		return err
	}
	for _, o := range outs {
		v := m.Value(o.Value)
		if o.Sensitive {
			v = nil
		}
		out.Items = append(out.Items, apiv1.Output{Name: o.Name, Value: v, Sensitive: o.Sensitive, Type: o.Type})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// stackMasker masks what the log of a run of the stack masks: the secret
// values of its environment (its own variables and its contexts', as a
// run gets them) and of its contexts' secret files. An output that echoes
// a secret variable (value = var.password, with TF_VAR_password secret)
// is not marked sensitive in the state, but is shown masked all the same;
// the state itself (stack:state-download) still has the value.
func (a *API) stackMasker(ctx context.Context, st stack.Stack) (*secrets.Masker, error) {
	var masked []string
	if a.Contexts == nil {
		vars, err := a.Stacks.EnvForJob(ctx, st.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range vars {
			if v.Secret {
				masked = append(masked, secrets.VariableForms(v.Value)...)
			}
		}
		return secrets.NewMasker(masked), nil
	}
	eff, err := a.Contexts.EffectiveFor(ctx, st, true)
	if err != nil {
		return nil, err
	}
	for _, v := range eff.Env {
		if v.Secret {
			masked = append(masked, secrets.VariableForms(v.Value)...)
		}
	}
	for _, f := range eff.Files {
		if f.Secret {
			masked = append(masked, secrets.FileForms(f.Content)...)
		}
	}
	return secrets.NewMasker(masked), nil
}

// runStateAccess limits what a run's own state token may do: a proposed
// run (which never writes state) may only read it; a tracked or destroy
// run may write it only while it applies (APPLYING): while it prepares,
// initializes and plans, its code (hooks, providers, what they leave
// running) may read and lock the state (`plan` locks it) but not change
// it before anyone saw the plan. A task writes whenever its command runs
// (its PERFORMING is reported while the command starts). A run may only
// unlock the lock it holds itself (the 423 answer to a LOCK shows the
// holder's lock id, which must not let a run release another's lock).
func (a *API) runStateAccess(r *http.Request, p auth.Principal, stackID string) error {
	if r.Method == http.MethodGet {
		return nil
	}
	if p.RunType == run.Proposed {
		return errs.E(errs.Forbidden, "a proposed run may only read the state of stack %s", stackID)
	}
	if r.Method == http.MethodPost && p.RunType != run.Task && p.RunState != run.Applying {
		return errs.E(errs.Forbidden, "run %s is %s: a run may write the state of stack %s only while it applies (APPLYING); before that it may read and lock it", p.ID, p.RunState, stackID)
	}
	// An UNLOCK of a lock another holds is refused by State.Release.
	return nil
}
