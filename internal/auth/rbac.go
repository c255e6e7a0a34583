package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// rootSpace is the id of the root space (package space's Root; not
// imported to keep auth free of domain packages).
const rootSpace = "root"

// Actor types of role bindings.
const (
	ActorUser   = "user"
	ActorAPIKey = "api_key"
	ActorGroup  = "group"
)

// Perms is what a principal may do, resolved once per request from its
// role bindings (and login policy grants) and the space tree.
type Perms struct {
	admin bool
	// held: space id -> actions bound there (apply to descendants too).
	held map[string]map[string]bool
	// parent and inherit: the space tree.
	parent  map[string]string
	inherit map[string]bool
	// roles: "role@space" of every binding and grant, sorted.
	roles []string
}

// Roles returns the principal's roles as "role@space", sorted.
func (p *Perms) Roles() []string {
	if p == nil {
		return []string{}
	}
	return slices.Clone(p.roles)
}

// ancestors returns space and its ancestors, nearest first.
func (p *Perms) ancestors(space string) []string {
	var out []string
	for s := space; s != "" && len(out) < 64; s = p.parent[s] {
		out = append(out, s)
		if s == rootSpace {
			break
		}
	}
	return out
}

// allows reports whether action is bound in space or one of its ancestors.
func (p *Perms) allows(action, space string) bool {
	for _, s := range p.ancestors(space) {
		if p.held[s][action] {
			return true
		}
	}
	return false
}

// Visible reports whether the principal holds anything in space: a role
// bound there or on an ancestor, or (spaces that inherit) any role in a
// descendant, which gives read on its ancestors. Objects of a space that
// is not visible are answered as not found.
func (p *Perms) Visible(space string) bool {
	if p.admin {
		return true
	}
	for _, s := range p.ancestors(space) {
		if len(p.held[s]) > 0 {
			return true
		}
	}
	for b := range p.held {
		for s, n := b, 0; p.inherit[s] && n < 64; n++ {
			s = p.parent[s]
			if s == space {
				return true
			}
		}
	}
	return false
}

// Can reports whether the principal may do action in space.
func (p Principal) Can(action, space string) bool {
	if p.Admin {
		return true
	}
	if p.Perms == nil {
		return false
	}
	if space == "" {
		space = rootSpace
	}
	if p.allowsRead(action, space) {
		return true
	}
	return p.Perms.allows(action, space)
}

// allowsRead: space:read also follows inheritance up from descendants.
func (p Principal) allowsRead(action, space string) bool {
	if action != SpaceRead {
		return false
	}
	for b, acts := range p.Perms.held {
		if len(acts) == 0 {
			continue
		}
		for s, n := b, 0; p.Perms.inherit[s] && n < 64; n++ {
			s = p.Perms.parent[s]
			if s == space {
				return true
			}
		}
	}
	return false
}

// CanSee reports whether space is visible to the principal (see Visible).
func (p Principal) CanSee(space string) bool {
	if p.Admin {
		return true
	}
	if space == "" {
		space = rootSpace
	}
	return p.Perms != nil && p.Perms.Visible(space)
}

// ErrHidden is the cause of a refusal in a space the principal holds
// nothing in: the API answers such a refusal about a subject (a stack, a
// run, a space...) as not found, so that nobody learns what exists where
// they cannot look.
var ErrHidden = errors.New("hidden: the principal holds nothing in the space")

// Visible is not an action: Authorize(p, Visible, space) only checks that
// p holds something in the space (for the second object of a route, such
// as the context of an attachment, whose route checks stack:update).
const Visible = "visible"

// Denial is the detail of a 403: the missing action and the space.
type Denial struct {
	MissingAction string `json:"missing_action"`
	Space         string `json:"space"`
}

// Authorize checks that p may do action in space: a 403 naming the
// missing action and the space, whose cause is ErrHidden when p holds
// nothing in the space.
func Authorize(p Principal, action, space string) error {
	if space == "" {
		space = rootSpace
	}
	if p.Can(action, space) || (action == Visible && p.CanSee(space)) {
		return nil
	}
	e := &errs.Error{Kind: errs.Forbidden, Message: fmt.Sprintf("%s may not %s in space %s: missing action %s", p, action, space, action),
		Detail: Denial{MissingAction: action, Space: space}}
	if !p.CanSee(space) {
		e.Err = ErrHidden
	}
	return e
}

// Recorder records an audit event in the caller's transaction (package
// audit's, wired by the API; auth cannot import it).
type Recorder func(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error

// record calls rec if set.
func (rec Recorder) record(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
	if rec == nil {
		return nil
	}
	return rec(ctx, action, subjectType, subjectID, space, before, after)
}

// Roles stores custom roles and role bindings and resolves principals'
// permissions. Audit, when set, records every change in its transaction.
type Roles struct {
	db    *db.DB
	Audit Recorder
}

// NewRoles returns the role store.
func NewRoles(d *db.DB) *Roles { return &Roles{db: d} }

var roleID = id.MustPattern(`^[a-z0-9][a-z0-9-]*$`, 1, 63)

// CreateRole stores a custom role.
func (rs *Roles) CreateRole(ctx context.Context, r Role, by string) (Role, error) {
	if !roleID.MatchString(r.ID) {
		return Role{}, errs.E(errs.Invalid, "role id %q: use 1-63 lower-case letters, digits and dashes", r.ID)
	}
	if _, ok := builtIn(r.ID); ok {
		return Role{}, errs.E(errs.Conflict, "%q is a built-in role", r.ID)
	}
	if strings.TrimSpace(r.Name) == "" {
		r.Name = r.ID
	}
	if len(r.Name) > 255 || len(r.Description) > 4096 {
		return Role{}, errs.E(errs.Invalid, "a role's name has at most 255 bytes, its description 4096")
	}
	if len(r.Actions) == 0 {
		return Role{}, errs.E(errs.Invalid, "a role needs at least one action (see `gantry role actions`)")
	}
	seen := map[string]bool{}
	var acts []string
	for _, a := range r.Actions {
		if !KnownAction(a) {
			return Role{}, errs.E(errs.Invalid, "unknown action %q (see `gantry role actions`)", a)
		}
		if !seen[a] {
			seen[a] = true
			acts = append(acts, a)
		}
	}
	sort.Strings(acts)
	r.Actions, r.BuiltIn, r.CreatedBy = acts, false, by
	js, _ := json.Marshal(acts)
	err := rs.db.Tx(ctx, func(ctx context.Context) error {
		_, err := rs.db.Exec(ctx, `INSERT INTO roles (id, name, description, actions, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, r.Name, r.Description, string(js), by, time.Now().UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "role %q already exists", r.ID)
		}
		if err != nil {
			return err
		}
		return rs.Audit.record(ctx, "role.create", "role", r.ID, rootSpace, nil, r)
	})
	if err != nil {
		return Role{}, err
	}
	return r, nil
}

func scanRole(s db.Scanner) (Role, error) {
	var r Role
	var acts string
	if err := s.Scan(&r.ID, &r.Name, &r.Description, &acts, &r.CreatedBy); err != nil {
		return Role{}, err
	}
	if err := json.Unmarshal([]byte(acts), &r.Actions); err != nil {
		return Role{}, err
	}
	return r, nil
}

// Role returns a built-in or custom role.
func (rs *Roles) Role(ctx context.Context, roleID string) (Role, error) {
	if r, ok := builtIn(roleID); ok {
		return r, nil
	}
	r, err := scanRole(rs.db.QueryRow(ctx, `SELECT id, name, description, actions, created_by FROM roles WHERE id = $1`, roleID))
	if errors.Is(err, sql.ErrNoRows) {
		return Role{}, errs.E(errs.NotFound, "role %q not found (see `gantry role list`)", roleID)
	}
	return r, err
}

// ListRoles returns the built-in roles, then the custom ones by id.
func (rs *Roles) ListRoles(ctx context.Context) ([]Role, error) {
	custom, err := db.Collect(ctx, rs.db, scanRole, `SELECT id, name, description, actions, created_by FROM roles ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(BuiltInRoles), custom...), nil
}

// DeleteRole deletes a custom role; a role still bound cannot be deleted.
// The role's row is locked before its bindings are counted, and Bind
// shares it (see db.LockRow): a binding made at the same time is either
// counted or refused, never left naming no role (a later role of the same
// id would give it that role's actions).
func (rs *Roles) DeleteRole(ctx context.Context, roleID string) (Role, error) {
	if _, ok := builtIn(roleID); ok {
		return Role{}, errs.E(errs.Invalid, "%q is a built-in role and cannot be deleted", roleID)
	}
	var r Role
	err := rs.db.Tx(ctx, func(ctx context.Context) error {
		if ok, err := rs.db.LockRow(ctx, "roles", roleID); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.NotFound, "role %q not found (see `gantry role list`)", roleID)
			}
			return err
		}
		var err error
		if r, err = rs.Role(ctx, roleID); err != nil {
			return err
		}
		var n int
		if err := rs.db.QueryRow(ctx, `SELECT COUNT(*) FROM role_bindings WHERE role_id = $1`, roleID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "role %q has %d binding(s): unbind them first (`gantry role bindings`)", roleID, n)
		}
		if _, err = rs.db.Exec(ctx, `DELETE FROM roles WHERE id = $1`, roleID); err != nil {
			return err
		}
		return rs.Audit.record(ctx, "role.delete", "role", roleID, rootSpace, r, nil)
	})
	return r, err
}

// shareRole returns a role for a transaction that binds it: a custom
// role's row is shared until the transaction ends (built-in roles are not
// stored and never change).
func (rs *Roles) shareRole(ctx context.Context, roleID string) (Role, error) {
	if r, ok := builtIn(roleID); ok {
		return r, nil
	}
	if ok, err := rs.db.ShareRow(ctx, "roles", roleID); err != nil || !ok {
		if err == nil {
			err = errs.E(errs.NotFound, "role %q not found (see `gantry role list`)", roleID)
		}
		return Role{}, err
	}
	return rs.Role(ctx, roleID)
}

// Binding is a role held by an actor in a space (and its descendants).
type Binding struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Space     string    `json:"space"`
	ActorType string    `json:"actor_type"`
	ActorID   string    `json:"actor_id"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Bind stores a binding; binding twice returns the existing one. The
// checks (the caller's rules, such as holding the role's actions) run in
// Bind's transaction with the role as it is bound: a custom role's row and
// the space's are shared until the binding is stored (see db.ShareRow), so
// that neither can be deleted (or the role deleted and made again with
// other actions) meanwhile.
func (rs *Roles) Bind(ctx context.Context, b Binding, checks ...func(Role) error) (Binding, bool, error) {
	switch b.ActorType {
	case ActorUser, ActorAPIKey, ActorGroup:
	default:
		return Binding{}, false, errs.E(errs.Invalid, "actor_type must be user, api_key or group")
	}
	if strings.TrimSpace(b.ActorID) == "" || len(b.ActorID) > 255 {
		return Binding{}, false, errs.E(errs.Invalid, "a binding needs an actor id of at most 255 bytes")
	}
	b.ID, b.CreatedAt = id.New("rbd"), time.Now().UTC()
	created := true
	err := rs.db.Tx(ctx, func(ctx context.Context) error {
		role, err := rs.shareRole(ctx, b.Role)
		if err != nil {
			return err
		}
		for _, check := range checks {
			if err := check(role); err != nil {
				return err
			}
		}
		// The space's row is shared too: space.Service.Delete locks it
		// before it checks that the space holds no bindings.
		if ok, err := rs.db.ShareRow(ctx, "spaces", b.Space); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.NotFound, "space %q not found", b.Space)
			}
			return err
		}
		// Inserted unless it exists: of two requests binding the same at
		// once, the second waits for the first and then finds its binding.
		res, err := rs.db.Exec(ctx, `INSERT INTO role_bindings (id, role_id, space_id, actor_type, actor_id, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (role_id, space_id, actor_type, actor_id) DO NOTHING`,
			b.ID, b.Role, b.Space, b.ActorType, b.ActorID, b.CreatedBy, b.CreatedAt.UnixNano())
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			old, err := rs.scanBindings(ctx, `WHERE role_id = $1 AND space_id = $2 AND actor_type = $3 AND actor_id = $4`, b.Role, b.Space, b.ActorType, b.ActorID)
			if err != nil {
				return err
			}
			if len(old) == 0 {
				return fmt.Errorf("role binding of %s to %s %s in %s: neither inserted nor found", b.Role, b.ActorType, b.ActorID, b.Space)
			}
			b, created = old[0], false
			return nil
		}
		return rs.Audit.record(ctx, "role_binding.create", "role_binding", b.ID, b.Space, nil, b)
	})
	return b, created, err
}

// Binding returns one binding.
func (rs *Roles) Binding(ctx context.Context, bindingID string) (Binding, error) {
	list, err := rs.scanBindings(ctx, `WHERE id = $1`, bindingID)
	if err != nil {
		return Binding{}, err
	}
	if len(list) == 0 {
		return Binding{}, errs.E(errs.NotFound, "role binding %q not found", bindingID)
	}
	return list[0], nil
}

// Unbind deletes a binding.
func (rs *Roles) Unbind(ctx context.Context, bindingID string) error {
	return rs.db.Tx(ctx, func(ctx context.Context) error {
		b, err := rs.Binding(ctx, bindingID)
		if err != nil {
			return err
		}
		if _, err := rs.db.Exec(ctx, `DELETE FROM role_bindings WHERE id = $1`, bindingID); err != nil {
			return err
		}
		return rs.Audit.record(ctx, "role_binding.delete", "role_binding", b.ID, b.Space, b, nil)
	})
}

// Bindings lists bindings, of one space when space is not empty.
func (rs *Roles) Bindings(ctx context.Context, space string) ([]Binding, error) {
	if space != "" {
		return rs.scanBindings(ctx, `WHERE space_id = $1 ORDER BY created_at, id`, space)
	}
	return rs.scanBindings(ctx, `ORDER BY created_at, id`)
}

func (rs *Roles) scanBindings(ctx context.Context, where string, args ...any) ([]Binding, error) {
	return db.Collect(ctx, rs.db, func(s db.Scanner) (Binding, error) {
		var b Binding
		var at int64
		if err := s.Scan(&b.ID, &b.Role, &b.Space, &b.ActorType, &b.ActorID, &b.CreatedBy, &at); err != nil {
			return Binding{}, err
		}
		b.CreatedAt = db.FromNanos(at).UTC()
		return b, nil
	}, `SELECT id, role_id, space_id, actor_type, actor_id, created_by, created_at FROM role_bindings `+where, args...)
}

// Actor is one identity a principal acts as.
type Actor struct{ Type, ID string }

// Resolve computes the permissions of the actors, plus grants (space ->
// role slugs, from the login policy). An admin binding (space-admin in the
// root space) makes the principal the account admin.
func (rs *Roles) Resolve(ctx context.Context, actors []Actor, grants map[string][]string) (*Perms, bool, error) {
	p := &Perms{held: map[string]map[string]bool{}, parent: map[string]string{}, inherit: map[string]bool{}}
	roleCache := map[string][]string{}
	actionsOf := func(roleID string) ([]string, error) {
		if a, ok := roleCache[roleID]; ok {
			return a, nil
		}
		r, err := rs.Role(ctx, roleID)
		if errs.Is(err, errs.NotFound) {
			roleCache[roleID] = nil // a login policy naming an unknown role grants nothing
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		roleCache[roleID] = r.Actions
		return r.Actions, nil
	}
	admin := false
	grant := func(space, roleID string) error {
		acts, err := actionsOf(roleID)
		if err != nil {
			return err
		}
		if roleID == RoleAdmin && space == rootSpace {
			admin = true
		}
		if r := roleID + "@" + space; !slices.Contains(p.roles, r) {
			p.roles = append(p.roles, r)
		}
		if len(acts) == 0 {
			return nil
		}
		if p.held[space] == nil {
			p.held[space] = map[string]bool{}
		}
		for _, a := range acts {
			p.held[space][a] = true
		}
		return nil
	}
	if len(actors) > 0 {
		// One query for every actor (a user, their groups, a key).
		var where []string
		var args []any
		for _, a := range actors {
			where = append(where, fmt.Sprintf("(actor_type = $%d AND actor_id = $%d)", len(args)+1, len(args)+2))
			args = append(args, a.Type, a.ID)
		}
		bs, err := rs.scanBindings(ctx, `WHERE `+strings.Join(where, " OR ")+` ORDER BY id`, args...)
		if err != nil {
			return nil, false, err
		}
		for _, b := range bs {
			if err := grant(b.Space, b.Role); err != nil {
				return nil, false, err
			}
		}
	}
	for space, roles := range grants {
		for _, r := range roles {
			if err := grant(space, r); err != nil {
				return nil, false, err
			}
		}
	}
	if len(p.held) > 0 {
		rows, err := rs.db.Query(ctx, `SELECT id, parent_id, inherit FROM spaces`)
		if err != nil {
			return nil, false, err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var parent sql.NullString
			var inh bool
			if err := rows.Scan(&id, &parent, &inh); err != nil {
				return nil, false, err
			}
			p.parent[id], p.inherit[id] = parent.String, inh
		}
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
	}
	p.admin = admin
	sort.Strings(p.roles)
	return p, admin, nil
}

// RolesIn returns the slugs of the roles p holds in space: bound (or
// granted by the login policy) there or on one of its ancestors, sorted.
// An admin holds space-admin everywhere.
func (p Principal) RolesIn(space string) []string {
	out := []string{}
	if p.Admin {
		out = append(out, RoleAdmin)
	}
	if p.Perms != nil {
		anc := p.Perms.ancestors(space)
		for _, r := range p.Perms.roles {
			i := strings.LastIndexByte(r, '@')
			if i < 0 || !slices.Contains(anc, r[i+1:]) || slices.Contains(out, r[:i]) {
				continue
			}
			out = append(out, r[:i])
		}
	}
	slices.Sort(out)
	return out
}
