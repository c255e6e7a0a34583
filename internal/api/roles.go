package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

// roleRoutes registers roles, role bindings, the action catalog and users.
func (a *API) roleRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/role-actions", auth.Authenticated, a.listActions)
	r.Handle("GET /api/v1/roles", auth.Authenticated, a.listRoles)
	r.Handle("POST /api/v1/roles", auth.RoleManage, a.createRole)
	r.Handle("GET /api/v1/roles/{id}", auth.Authenticated, a.getRole)
	r.Handle("DELETE /api/v1/roles/{id}", auth.RoleManage, a.deleteRole)
	r.Handle("GET /api/v1/role-bindings", auth.SpaceRead, a.listBindings)
	r.Handle("POST /api/v1/role-bindings", auth.RoleManage, a.createBinding)
	r.Handle("DELETE /api/v1/role-bindings/{id}", auth.RoleManage, a.deleteBinding)
	r.Handle("GET /api/v1/users", auth.RoleManage, a.listUsers)
	r.Handle("POST /api/v1/users/{id}/disable", auth.RoleManage, a.disableUser(true))
	r.Handle("POST /api/v1/users/{id}/enable", auth.RoleManage, a.disableUser(false))
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	out := apiv1.List[apiv1.RoleAction]{Items: []apiv1.RoleAction{}}
	for _, c := range auth.Catalog {
		out.Items = append(out.Items, apiv1.RoleAction{Name: c.Name, Allows: c.Allow, RootOnly: c.Root})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	list, err := a.Roles.ListRoles(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Role]{Items: []apiv1.Role{}}
	for _, role := range list {
		out.Items = append(out.Items, roleOut(role))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getRole(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	role, err := a.Roles.Role(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, roleOut(role))
	return nil
}

func (a *API) createRole(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.RoleManage, space.Root); err != nil {
		return err
	}
	var in apiv1.RoleCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	role, err := a.Roles.CreateRole(r.Context(), auth.Role{ID: in.ID, Name: in.Name, Description: in.Description, Actions: in.Actions}, p.String())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, roleOut(role))
	return nil
}

func (a *API) deleteRole(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.RoleManage, space.Root); err != nil {
		return err
	}
	if _, err := a.Roles.DeleteRole(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listBindings(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	sp := r.URL.Query().Get("space")
	if err := listScope(p, sp); err != nil {
		return err
	}
	list, err := a.Roles.Bindings(r.Context(), sp)
	if err != nil {
		return err
	}
	name, err := a.actorNamer(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.RoleBinding]{Items: []apiv1.RoleBinding{}}
	for _, b := range list {
		if readable(p, b.Space) {
			out.Items = append(out.Items, bindingOut(b, name))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// createBinding binds a role to a user (id or login; they must have signed
// in once), an API key (id or name) or an IdP group, in a space.
func (a *API) createBinding(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.RoleBindingCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	sp := orRoot(in.Space)
	if err := auth.Authorize(p, auth.RoleManage, sp); err != nil {
		return err
	}
	b := auth.Binding{Role: in.Role, Space: sp, CreatedBy: p.String()}
	n := 0
	for _, v := range []string{in.User, in.APIKey, in.Group} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return errs.E(errs.Invalid, "give exactly one of user, api_key and group")
	}
	switch {
	case in.User != "":
		u, err := a.Users.Get(r.Context(), in.User)
		if errs.Is(err, errs.NotFound) {
			u, err = a.Users.ByLogin(r.Context(), in.User)
		}
		if errs.Is(err, errs.NotFound) {
			return errs.E(errs.NotFound, "user %q has not signed in yet: bind one of their IdP groups, or ask them to sign in once", in.User)
		}
		if err != nil {
			return err
		}
		if u.ID == p.User {
			return errs.E(errs.Forbidden, "%s may not bind a role to themselves: a right held through a group or a grant stays with it (ask another role manager)", p)
		}
		b.ActorType, b.ActorID = auth.ActorUser, u.ID
	case in.APIKey != "":
		k, err := a.keyByRef(r, in.APIKey)
		if err != nil {
			return err
		}
		if k.OwnerUser != "" {
			return errs.E(errs.Invalid, "API key %s is a user's own key: it acts as its user and never more; bind the role to the user instead (or to an automation key)", k.Name)
		}
		if p.Kind == "api_key" && k.ID == p.ID {
			return errs.E(errs.Forbidden, "%s may not bind a role to itself (ask another role manager)", p)
		}
		b.ActorType, b.ActorID = auth.ActorAPIKey, k.ID
	default:
		b.ActorType, b.ActorID = auth.ActorGroup, strings.TrimSpace(in.Group)
	}
	// The rule is checked in Bind's transaction, on the role as bound.
	b, created, err := a.Roles.Bind(r.Context(), b, func(role auth.Role) error { return mayChange(p, "grant", role, sp) })
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	name, err := a.actorNamer(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, status, bindingOut(b, name))
	return nil
}

// holdsRole is the rule of binding and unbinding: nobody grants or
// removes more than they hold. p must hold every action of the role in
// the space (admins hold all), and only an admin makes or unmakes an
// admin (space-admin in the root space). verb names the change in the
// refusal.
func (a *API) holdsRole(r *http.Request, p auth.Principal, verb, roleID, sp string) error {
	role, err := a.Roles.Role(r.Context(), roleID)
	if err != nil {
		return err
	}
	return mayChange(p, verb, role, sp)
}

// mayChange is holdsRole's rule on a role already read.
func mayChange(p auth.Principal, verb string, role auth.Role, sp string) error {
	for _, act := range role.Actions {
		if !p.Can(act, sp) {
			return errs.E(errs.Forbidden, "%s may not %s role %s in space %s: it does not hold %s there itself", p, verb, role.ID, sp, act)
		}
	}
	if role.ID == auth.RoleAdmin && sp == space.Root && !p.Admin {
		return errs.E(errs.Forbidden, "only an admin may %s an admin binding (space-admin in the root space)", verb)
	}
	return nil
}

// keyByRef resolves an API key given by id or by the name of a key not revoked.
func (a *API) keyByRef(r *http.Request, ref string) (auth.Key, error) {
	if k, err := a.Keys.Get(r.Context(), ref); err == nil {
		return k, nil
	}
	list, err := a.Keys.List(r.Context())
	if err != nil {
		return auth.Key{}, err
	}
	for _, k := range list {
		if k.Name == ref && !k.Revoked() {
			return k, nil
		}
	}
	return auth.Key{}, errs.E(errs.NotFound, "no API key %q (give its id or name)", ref)
}

func (a *API) deleteBinding(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	b, err := a.Roles.Binding(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.RoleManage, b.Space); err != nil {
		if errors.Is(err, auth.ErrHidden) {
			return errs.E(errs.NotFound, "role binding %q not found", b.ID)
		}
		return err
	}
	if err := a.holdsRole(r, p, "remove", b.Role, b.Space); err != nil {
		return err
	}
	if err := a.Roles.Unbind(r.Context(), b.ID); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.RoleManage, space.Root); err != nil {
		return err
	}
	list, err := a.Users.List(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.User]{Items: []apiv1.User{}}
	for _, u := range list {
		out.Items = append(out.Items, userOut(u))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func roleOut(r auth.Role) apiv1.Role {
	return apiv1.Role{ID: r.ID, Name: r.Name, Description: r.Description, Actions: r.Actions, BuiltIn: r.BuiltIn, CreatedBy: r.CreatedBy}
}

func bindingOut(b auth.Binding, actor func(auth.Binding) string) apiv1.RoleBinding {
	return apiv1.RoleBinding{ID: b.ID, Role: b.Role, Space: b.Space, ActorType: b.ActorType, ActorID: b.ActorID,
		Actor: actor(b), CreatedBy: b.CreatedBy, CreatedAt: utc(b.CreatedAt)}
}

// actorNamer names the actor of a binding as whoami, run timelines and
// the audit trail name principals: api_key::<name>, user::<login>,
// group::<name>. An actor that no longer exists keeps its id.
func (a *API) actorNamer(ctx context.Context) (func(auth.Binding) string, error) {
	names := map[string]string{} // actor type and id -> name
	keys, err := a.Keys.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		names[auth.ActorAPIKey+":"+k.ID] = k.Name
	}
	if a.Users != nil {
		users, err := a.Users.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			names[auth.ActorUser+":"+u.ID] = u.Login
		}
	}
	return func(b auth.Binding) string {
		if n, ok := names[b.ActorType+":"+b.ActorID]; ok {
			return b.ActorType + "::" + n
		}
		return b.ActorType + "::" + b.ActorID
	}, nil
}

func userOut(u auth.User) apiv1.User {
	return apiv1.User{ID: u.ID, Login: u.Login, Name: u.Name, Email: u.Email, Issuer: u.Issuer, Groups: u.Groups,
		Grants: u.Grants, Admin: u.Admin, CreatedAt: utc(u.CreatedAt), LastLoginAt: utc(u.LastLoginAt), DisabledAt: optTime(u.DisabledAt)}
}

// disableUser disables a user (signing them out everywhere and revoking
// their own API keys) or enables them again; users are account-wide, so
// role:manage in the root space. As with admin bindings, only an admin
// disables or enables an admin: otherwise a role manager could lock the
// account's admins out.
func (a *API) disableUser(disabled bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if err := auth.Authorize(p, auth.RoleManage, space.Root); err != nil {
			return err
		}
		u, err := a.Users.Get(r.Context(), r.PathValue("id"))
		if errs.Is(err, errs.NotFound) {
			u, err = a.Users.ByLogin(r.Context(), r.PathValue("id"))
		}
		if err != nil {
			return err
		}
		if disabled && p.User == u.ID {
			return errs.E(errs.Conflict, "you cannot disable yourself")
		}
		if !p.Admin {
			admin, err := a.userIsAdmin(r.Context(), u)
			if err != nil {
				return err
			}
			if admin {
				verb := "enable"
				if disabled {
					verb = "disable"
				}
				return errs.E(errs.Forbidden, "only an admin may %s user %s: they are an admin", verb, u.Login)
			}
		}
		var rec auth.Recorder
		if a.Audit != nil {
			rec = a.auditRecorder
		}
		u, err = a.Users.SetDisabled(r.Context(), u.ID, disabled, rec)
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, userOut(u))
		return nil
	}
}

// userIsAdmin reports whether u is an admin in any way: by the login
// policy at their last sign-in, by a space-admin binding in the root space
// of theirs or of one of their groups (whatever the login policy granted
// included), or through one of their own API keys.
func (a *API) userIsAdmin(ctx context.Context, u auth.User) (bool, error) {
	if u.Admin {
		return true, nil
	}
	actors := []auth.Actor{{Type: auth.ActorUser, ID: u.ID}}
	for _, g := range u.Groups {
		actors = append(actors, auth.Actor{Type: auth.ActorGroup, ID: g})
	}
	keys, err := a.Keys.List(ctx)
	if err != nil {
		return false, err
	}
	now := time.Now()
	for _, k := range keys {
		if k.OwnerUser != u.ID || !k.Active(now) {
			continue
		}
		if k.Admin {
			return true, nil
		}
		actors = append(actors, auth.Actor{Type: auth.ActorAPIKey, ID: k.ID})
	}
	_, admin, err := a.Roles.Resolve(ctx, actors, u.Grants)
	return admin, err
}
