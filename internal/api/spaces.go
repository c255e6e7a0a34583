package api

import (
	"fmt"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

func spaceOut(s space.Space) apiv1.Space {
	return apiv1.Space{ID: s.ID, Name: s.Name, Parent: s.Parent, Inherit: s.Inherit, Labels: s.Labels,
		Description: s.Description, CreatedAt: utc(s.CreatedAt), UpdatedAt: utc(s.UpdatedAt)}
}

func (a *API) listSpaces(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	parent := r.URL.Query().Get("space")
	if err := listScope(p, parent); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]space.Space, string, error) {
		return a.Spaces.List(r.Context(), parent, cursor, limit)
	}, func(s space.Space) bool { return readable(p, s.ID) }, func(s space.Space) string { return s.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Space]{Items: []apiv1.Space{}, NextCursor: nextCursor(r, next)}
	for _, s := range list {
		out.Items = append(out.Items, spaceOut(s))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createSpace(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.SpaceCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	parent := in.Parent
	if parent == "" {
		parent = space.Root
	}
	if err := auth.Authorize(p, auth.SpaceAdmin, parent); err != nil {
		return err
	}
	s, err := a.Spaces.Create(r.Context(), space.Space{ID: in.ID, Name: in.Name, Parent: parent, Inherit: in.Inherit, Labels: in.Labels, Description: in.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, spaceOut(s))
	return nil
}

func (a *API) getSpace(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, err := a.Spaces.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, s.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, spaceOut(s))
	return nil
}

func (a *API) updateSpace(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.SpaceWrite, r.PathValue("id")); err != nil {
		return err
	}
	var in apiv1.SpaceUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	s, err := a.Spaces.Update(r.Context(), r.PathValue("id"), func(s *space.Space) error {
		if in.Name != nil {
			s.Name = *in.Name
		}
		if in.Inherit != nil && *in.Inherit != s.Inherit {
			// Inheriting opens the parent's contexts, policies, pools and
			// read access to the child: the parent's admin decides, as when
			// creating the space.
			if !p.Can(auth.SpaceAdmin, s.Parent) {
				return &errs.Error{Kind: errs.Forbidden, Message: fmt.Sprintf("%s may not change whether space %s inherits: that needs space:admin in space %s (its parent)", p, s.ID, s.Parent),
					Detail: auth.Denial{MissingAction: auth.SpaceAdmin, Space: s.Parent}}
			}
			s.Inherit = *in.Inherit
		}
		if in.Labels != nil {
			s.Labels = *in.Labels
		}
		if in.Description != nil {
			s.Description = *in.Description
		}
		return nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, spaceOut(s))
	return nil
}

func (a *API) deleteSpace(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.SpaceAdmin, r.PathValue("id")); err != nil {
		return err
	}
	if err := a.Spaces.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return noContent(w)
}
