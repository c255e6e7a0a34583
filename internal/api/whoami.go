package api

import (
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// whoami answers who the caller is; every authenticated caller may ask.
func (a *API) whoami(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	httpx.WriteJSON(w, http.StatusOK, apiv1.Whoami{Kind: p.Kind, ID: p.ID, Name: p.Name, Actor: p.String(), Admin: p.Admin,
		Roles: p.Perms.Roles(), User: p.User, Groups: p.Groups})
	return nil
}
