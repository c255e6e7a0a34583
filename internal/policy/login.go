package policy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/space"
)

// LoginRequest is who is signing in (the LOGIN input's session).
type LoginRequest struct {
	Login, Name, Email, RemoteIP string
	Teams                        []string
	Roles                        []map[string]any // {id, name, slug} of every role
}

// LoginOutcome is the combined LOGIN decision. Grants maps space ids to
// role slugs: roles[space][slug], plus the legacy space_read, space_write
// and space_admin sets as space-reader, space-writer and space-admin.
type LoginOutcome struct {
	Applied bool // some LOGIN policy exists
	Deny    bool
	Admin   bool
	// DenyAdmin: a deny_admin rule held; Admin is then false, and the
	// caller drops grants that would make the user an admin anyway
	// (auth.WithoutAdminGrants).
	DenyAdmin bool
	Teams     []string
	Grants    map[string][]string
}

// Login evaluates the LOGIN policies (of the root space) when a user signs
// in with single sign-on. With none, the user may sign in (Applied false).
// Users the provider authenticated are members: they may sign in unless a
// policy denies; a policy error refuses the sign-in (fail closed).
func (s *Service) Login(ctx context.Context, req LoginRequest) (LoginOutcome, error) {
	pols, err := s.ForSpace(ctx, space.Root, engine.TypeLogin)
	if err != nil || len(pols) == 0 {
		return LoginOutcome{}, err
	}
	sps, err := s.allSpaces(ctx)
	if err != nil {
		return LoginOutcome{}, err
	}
	teams := req.Teams
	if teams == nil {
		teams = []string{}
	}
	roles := req.Roles
	if roles == nil {
		roles = []map[string]any{}
	}
	input := map[string]any{
		"request": map[string]any{"remote_ip": req.RemoteIP, "timestamp_ns": time.Now().UnixNano()},
		"session": map[string]any{"admin": false, "creator_ip": req.RemoteIP, "login": req.Login, "name": req.Name,
			"email": req.Email, "machine": false, "member": true, "teams": teams, "account_name": "", "stack_id": ""},
		"spaces": sps,
		"roles":  roles,
	}
	ev, err := s.evaluate(ctx, pols, engine.TypeLogin, input, "")
	if err != nil {
		return LoginOutcome{}, err
	}
	if len(ev.Errors) > 0 {
		return LoginOutcome{}, errors.New(strings.Join(ev.Errors, "; "))
	}
	d := ev.Decision
	out := LoginOutcome{Applied: true, Deny: d.DenyLogin, Admin: d.Admin, DenyAdmin: d.DenyAdmin, Teams: d.Team, Grants: map[string][]string{}}
	for sp, slugs := range d.Roles {
		out.Grants[sp] = append(out.Grants[sp], slugs...)
	}
	for _, g := range []struct {
		ids  []string
		role string
	}{{d.SpaceRead, "space-reader"}, {d.SpaceWrite, "space-writer"}, {d.SpaceAdmin, "space-admin"}} {
		for _, sp := range g.ids {
			out.Grants[sp] = append(out.Grants[sp], g.role)
		}
	}
	return out, nil
}

// allSpaces lists every space as the LOGIN input shows it.
func (s *Service) allSpaces(ctx context.Context) ([]any, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (any, error) {
		var id, name, labels string
		if err := row.Scan(&id, &name, &labels); err != nil {
			return nil, err
		}
		return map[string]any{"id": id, "name": name, "labels": jsonList(labels)}, nil
	}, `SELECT id, name, labels FROM spaces ORDER BY id`)
}

// jsonList decodes a JSON array of strings stored in a column ([] when bad).
func jsonList(s string) []any {
	var l []string
	_ = json.Unmarshal([]byte(s), &l)
	out := make([]any, 0, len(l))
	for _, v := range l {
		out = append(out, v)
	}
	return out
}
