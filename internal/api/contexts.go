package api

import (
	"encoding/base64"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// contextRoutes registers contexts, their variables, files, hooks and
// attachments, and a stack's contexts and effective environment.
func (a *API) contextRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/contexts", auth.SpaceRead, a.listContexts)
	r.Handle("POST /api/v1/contexts", auth.ContextCreate, a.createContext)
	r.Handle("GET /api/v1/contexts/{id}", auth.SpaceRead, a.getContext)
	r.Handle("PATCH /api/v1/contexts/{id}", auth.ContextUpdate, a.updateContext)
	r.Handle("DELETE /api/v1/contexts/{id}", auth.ContextDelete, a.deleteContext)
	r.Handle("GET /api/v1/contexts/{id}/env", auth.SpaceRead, a.listContextEnv)
	r.Handle("PUT /api/v1/contexts/{id}/env/{name}", auth.ContextUpdate, a.setContextEnv)
	r.Handle("DELETE /api/v1/contexts/{id}/env/{name}", auth.ContextUpdate, a.deleteContextEnv)
	r.Handle("GET /api/v1/contexts/{id}/files", auth.SpaceRead, a.listContextFiles)
	r.Handle("PUT /api/v1/contexts/{id}/files", auth.ContextUpdate, a.setContextFile)
	r.Handle("DELETE /api/v1/contexts/{id}/files", auth.ContextUpdate, a.deleteContextFile)
	r.Handle("POST /api/v1/contexts/{id}/hooks", auth.ContextUpdate, a.addContextHook)
	r.Handle("GET /api/v1/contexts/{id}/attachments", auth.SpaceRead, a.listContextAttachments)
	r.Handle("POST /api/v1/contexts/{id}/attachments", auth.StackUpdate, a.attachContext)
	r.Handle("DELETE /api/v1/contexts/{id}/attachments/{stack}", auth.StackUpdate, a.detachContext)
	r.Handle("GET /api/v1/stacks/{id}/contexts", auth.SpaceRead, a.stackContexts)
	r.Handle("GET /api/v1/stacks/{id}/env/effective", auth.SpaceRead, a.effectiveEnv)
}

func (a *API) contextService() (*contexts.Service, error) {
	if a.Contexts == nil {
		return nil, errs.E(errs.Unavailable, "contexts are not enabled on this server")
	}
	return a.Contexts, nil
}

func contextOut(c contexts.Context) apiv1.Context {
	return apiv1.Context{ID: c.ID, Name: c.Name, Space: c.Space, Labels: nonNilStrings(c.Labels), Description: c.Description,
		Hooks: apiv1.ContextHooks(c.Hooks), CreatedAt: utc(c.CreatedAt), UpdatedAt: utc(c.UpdatedAt)}
}

// contextOf loads the context of the path and checks p may do action in
// its space. Managing a context takes context:create, context:update or
// context:delete in its space. Attaching or detaching one (auth.Visible
// here) takes only the context visible, and stack:update on the stack; the
// context must be in the stack's space or an ancestor the stack's space
// inherits from (contexts.Service.Attach). That is Spacelift's model:
// inheritance shares a parent's contexts, secrets included, with the
// stacks of inheriting child spaces, and stack:update is admin-level. So
// once a space inherits, whoever may update its stacks can hand them the
// parent's contexts and secrets, by attaching them or by a stack label an
// autoattach: context of a visible ancestor matches; turning inherit on
// therefore needs space:admin in the parent.
func (a *API) contextOf(r *http.Request, p auth.Principal, action string) (*contexts.Service, contexts.Context, error) {
	cs, err := a.contextService()
	if err != nil {
		return nil, contexts.Context{}, err
	}
	c, err := cs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return cs, c, err
	}
	return cs, c, auth.Authorize(p, action, c.Space)
}

func (a *API) listContexts(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, err := a.contextService()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	sp := r.URL.Query().Get("space")
	if err := listScope(p, sp); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]contexts.Context, string, error) {
		return cs.List(r.Context(), contexts.Filter{Space: sp, Cursor: cursor, Limit: limit})
	}, func(c contexts.Context) bool { return readable(p, c.Space) }, func(c contexts.Context) string { return c.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Context]{Items: []apiv1.Context{}, NextCursor: nextCursor(r, next)}
	for _, c := range list {
		out.Items = append(out.Items, contextOut(c))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, err := a.contextService()
	if err != nil {
		return err
	}
	var in apiv1.ContextCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.ID == "" {
		return errs.E(errs.Invalid, "id is required")
	}
	c := contexts.Context{ID: in.ID, Name: in.Name, Space: orRoot(in.Space), Labels: in.Labels, Description: in.Description}
	if in.Hooks != nil {
		c.Hooks = contexts.Hooks(*in.Hooks)
	}
	if err := auth.Authorize(p, auth.ContextCreate, c.Space); err != nil {
		return err
	}
	if err := autoattachAllowed(p, auth.StackUpdate, "context", c.ID, c.Space, nil, c.Labels); err != nil {
		return err
	}
	if c, err = cs.Create(r.Context(), c); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, contextOut(c))
	return nil
}

func (a *API) getContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, c, err := a.contextOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, contextOut(c))
	return nil
}

func (a *API) updateContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	var in apiv1.ContextUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	c, err = cs.Update(r.Context(), c.ID, func(x *contexts.Context) error {
		set(&x.Name, in.Name)
		before := x.Labels
		set(&x.Labels, in.Labels)
		if err := autoattachAllowed(p, auth.StackUpdate, "context", x.ID, x.Space, before, x.Labels); err != nil {
			return err
		}
		set(&x.Description, in.Description)
		if in.Hooks != nil {
			x.Hooks = contexts.Hooks(*in.Hooks)
		}
		return nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, contextOut(c))
	return nil
}

func (a *API) deleteContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextDelete)
	if err != nil {
		return err
	}
	if err := cs.Delete(r.Context(), c.ID); err != nil {
		return err
	}
	return noContent(w)
}

func contextEnvOut(v contexts.EnvVar) apiv1.ContextEnvVar {
	if v.Secret {
		v.Value = ""
	}
	return apiv1.ContextEnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret, Description: v.Description, Checksum: v.Checksum}
}

func (a *API) listContextEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	vars, err := cs.ListEnv(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.ContextEnvVar]{Items: []apiv1.ContextEnvVar{}}
	for _, v := range vars {
		out.Items = append(out.Items, contextEnvOut(v))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) setContextEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	var in apiv1.ContextEnvVarSet
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return ofVariable(r.PathValue("name"), err)
	}
	v, err := cs.SetEnv(r.Context(), c.ID, contexts.EnvVar{Name: r.PathValue("name"), Value: in.Value, Secret: in.Secret, Description: in.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, contextEnvOut(v))
	return nil
}

func (a *API) deleteContextEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	if err := cs.DeleteEnv(r.Context(), c.ID, r.PathValue("name")); err != nil {
		return err
	}
	return noContent(w)
}

func contextFileOut(f contexts.File) apiv1.ContextFile {
	return apiv1.ContextFile{Path: f.Path, Size: f.Size, Secret: f.Secret, Description: f.Description, Checksum: f.Checksum}
}

func (a *API) listContextFiles(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	files, err := cs.ListFiles(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.ContextFile]{Items: []apiv1.ContextFile{}}
	for _, f := range files {
		out.Items = append(out.Items, contextFileOut(f))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// maxFileBody fits a 2 MiB file in base64 with its JSON envelope.
const maxFileBody = contexts.MaxFile*4/3 + 64<<10

func (a *API) setContextFile(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	var in apiv1.ContextFileSet
	if err := httpx.DecodeJSON(w, r, &in, maxFileBody); err != nil {
		return err
	}
	content, err := base64.StdEncoding.DecodeString(in.Content)
	if err != nil {
		return errs.E(errs.Invalid, "content must be base64 (standard encoding, with padding)")
	}
	f, err := cs.SetFile(r.Context(), c.ID, contexts.File{Path: in.Path, Content: content, Secret: in.Secret, Description: in.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, contextFileOut(f))
	return nil
}

func (a *API) deleteContextFile(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	if err := cs.DeleteFile(r.Context(), c.ID, r.URL.Query().Get("path")); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) addContextHook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.ContextUpdate)
	if err != nil {
		return err
	}
	var in apiv1.ContextHookAdd
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if c, err = cs.AddHook(r.Context(), c.ID, in.Phase, in.Command); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, contextOut(c))
	return nil
}

func (a *API) listContextAttachments(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	list, err := cs.Attached(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if list, err = readableStacks(r.Context(), a, p, list, func(at contexts.Attachment) string { return at.StackID }); err != nil {
		return err
	}
	out := apiv1.List[apiv1.ContextAttachment]{Items: []apiv1.ContextAttachment{}}
	for _, at := range list {
		out.Items = append(out.Items, apiv1.ContextAttachment{Stack: at.StackID, Priority: at.Priority, Via: at.Via, Applied: at.NotApplied == "", NotApplied: at.NotApplied})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) attachContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.ContextAttach
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	noteStack(r, "", in.Stack)
	cs, c, err := a.contextOf(r, p, auth.Visible)
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
	at, err := cs.Attach(r.Context(), c.ID, st.ID, in.Priority)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.ContextAttachment{Stack: at.StackID, Priority: at.Priority, Via: at.Via, Applied: true})
	return nil
}

func (a *API) detachContext(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, c, err := a.contextOf(r, p, auth.Visible)
	if err != nil {
		return err
	}
	st, err := a.Stacks.Get(r.Context(), r.PathValue("stack"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.StackUpdate, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if err := cs.Detach(r.Context(), c.ID, st.ID); err != nil {
		return err
	}
	return noContent(w)
}

func stackContextsOut(applied []contexts.Applied) []apiv1.StackContext {
	out := []apiv1.StackContext{}
	for _, ap := range applied {
		out = append(out, apiv1.StackContext{Context: ap.Context.ID, Name: ap.Context.Name, Space: ap.Context.Space,
			Priority: ap.Priority, Via: ap.Via})
	}
	return out
}

func (a *API) stackContexts(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, err := a.contextService()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	applied, err := cs.ForStack(r.Context(), st)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.List[apiv1.StackContext]{Items: stackContextsOut(applied)})
	return nil
}

func (a *API) effectiveEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cs, err := a.contextService()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	eff, err := cs.Effective(r.Context(), st.ID, false)
	if err != nil {
		return err
	}
	out := apiv1.EffectiveEnv{Variables: []apiv1.EffectiveEnvVar{}, Files: []apiv1.EffectiveFile{},
		Hooks: apiv1.ContextHooks(eff.Hooks), Contexts: stackContextsOut(eff.Contexts)}
	for _, v := range eff.Env {
		if v.Secret {
			v.Value = ""
		}
		out.Variables = append(out.Variables, apiv1.EffectiveEnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret,
			Source: v.Source, Context: v.ContextID, Checksum: v.Checksum})
	}
	for _, f := range eff.Files {
		out.Files = append(out.Files, apiv1.EffectiveFile{Path: f.Path, Size: f.Size, Secret: f.Secret,
			Source: f.Source, Context: f.ContextID, Checksum: f.Checksum})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
