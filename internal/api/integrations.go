package api

import (
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/integration"
)

// integrationRoutes registers the cloud integrations.
func (a *API) integrationRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/integrations", auth.SpaceRead, a.listIntegrations)
	r.Handle("POST /api/v1/integrations", auth.IntegrationCreate, a.createIntegration)
	r.Handle("GET /api/v1/integrations/{id}", auth.SpaceRead, a.getIntegration)
	r.Handle("PATCH /api/v1/integrations/{id}", auth.IntegrationUpdate, a.updateIntegration)
	r.Handle("DELETE /api/v1/integrations/{id}", auth.IntegrationDelete, a.deleteIntegration)
	r.Handle("GET /api/v1/integrations/{id}/attachments", auth.SpaceRead, a.listIntegrationAttachments)
	r.Handle("POST /api/v1/integrations/{id}/attachments", auth.IntegrationAttach, a.attachIntegration)
	r.Handle("DELETE /api/v1/integrations/{id}/attachments/{stack}", auth.IntegrationAttach, a.detachIntegration)
	r.Handle("GET /api/v1/integrations/{id}/aws-trust-policy", auth.SpaceRead, a.awsTrustPolicy)
	r.Handle("GET /api/v1/oidc-setup", auth.SpaceRead, a.oidcSetup)
}

func (a *API) integrations() (*integration.Service, error) {
	if a.Integrations == nil {
		return nil, errs.E(errs.Unavailable, "cloud integrations are not enabled on this server")
	}
	return a.Integrations, nil
}

func integrationOut(in integration.Integration) apiv1.Integration {
	cfg := in.Config
	if cfg == nil {
		cfg = map[string]string{}
	}
	return apiv1.Integration{ID: in.ID, Name: in.Name, Space: in.Space, Type: in.Type, Config: cfg, Labels: nonNilStrings(in.Labels),
		Description: in.Description, CreatedAt: utc(in.CreatedAt), UpdatedAt: utc(in.UpdatedAt)}
}

// integrationOf loads the integration of the path and checks action in
// its space.
func (a *API) integrationOf(r *http.Request, p auth.Principal, action string) (*integration.Service, integration.Integration, error) {
	s, err := a.integrations()
	if err != nil {
		return nil, integration.Integration{}, err
	}
	in, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return s, in, err
	}
	return s, in, auth.Authorize(p, action, in.Space)
}

func (a *API) listIntegrations(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, err := a.integrations()
	if err != nil {
		return err
	}
	sp := r.URL.Query().Get("space")
	if err := listScope(p, sp); err != nil {
		return err
	}
	list, err := s.List(r.Context(), sp)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Integration]{Items: []apiv1.Integration{}}
	for _, in := range list {
		if readable(p, in.Space) {
			out.Items = append(out.Items, integrationOut(in))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, err := a.integrations()
	if err != nil {
		return err
	}
	var in apiv1.IntegrationCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.IntegrationCreate, orRoot(in.Space)); err != nil {
		return err
	}
	if err := autoattachAllowed(p, auth.IntegrationAttach, "integration", in.ID, in.Space, nil, in.Labels); err != nil {
		return err
	}
	out, err := s.Create(r.Context(), integration.Integration{ID: in.ID, Name: in.Name, Space: in.Space, Type: in.Type, Config: in.Config,
		Labels: in.Labels, Description: in.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, integrationOut(out))
	return nil
}

func (a *API) getIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, in, err := a.integrationOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, integrationOut(in))
	return nil
}

func (a *API) updateIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, in, err := a.integrationOf(r, p, auth.IntegrationUpdate)
	if err != nil {
		return err
	}
	var u apiv1.IntegrationUpdate
	if err := httpx.DecodeJSON(w, r, &u, MaxBody); err != nil {
		return err
	}
	out, err := s.Update(r.Context(), in.ID, func(x *integration.Integration) error {
		set(&x.Name, u.Name)
		set(&x.Config, u.Config)
		before := x.Labels
		set(&x.Labels, u.Labels)
		if err := autoattachAllowed(p, auth.IntegrationAttach, "integration", x.ID, x.Space, before, x.Labels); err != nil {
			return err
		}
		set(&x.Description, u.Description)
		return nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, integrationOut(out))
	return nil
}

func (a *API) deleteIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, in, err := a.integrationOf(r, p, auth.IntegrationDelete)
	if err != nil {
		return err
	}
	if err := s.Delete(r.Context(), in.ID); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listIntegrationAttachments(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, in, err := a.integrationOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	list, err := s.Attachments(r.Context(), in.ID)
	if err != nil {
		return err
	}
	if list, err = readableStacks(r.Context(), a, p, list, func(at integration.Attachment) string { return at.StackID }); err != nil {
		return err
	}
	out := apiv1.List[apiv1.IntegrationAttachment]{Items: []apiv1.IntegrationAttachment{}}
	for _, at := range list {
		out.Items = append(out.Items, apiv1.IntegrationAttachment{Stack: at.StackID, Read: at.Read, Write: at.Write, Via: at.Via,
			Applied: at.NotApplied == "", NotApplied: at.NotApplied})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// attachIntegration hands a stack's runs the integration's credentials:
// integration:attach in the stack's space, and the integration visible.
func (a *API) attachIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.IntegrationAttach
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	noteStack(r, "", in.Stack)
	s, integ, err := a.integrationOf(r, p, auth.Visible)
	if err != nil {
		return err
	}
	st, err := a.Stacks.Get(r.Context(), in.Stack)
	if err != nil {
		return err
	}
	noteStack(r, st.Space, st.ID)
	if err := auth.Authorize(p, auth.IntegrationAttach, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	at, err := s.Attach(r.Context(), integ.ID, st.ID, in.Read, in.Write)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.IntegrationAttachment{Stack: at.StackID, Read: at.Read, Write: at.Write, Via: at.Via})
	return nil
}

func (a *API) detachIntegration(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, integ, err := a.integrationOf(r, p, auth.Visible)
	if err != nil {
		return err
	}
	st, err := a.Stacks.Get(r.Context(), r.PathValue("stack"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.IntegrationAttach, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if err := s.Detach(r.Context(), integ.ID, st.ID); err != nil {
		return err
	}
	return noContent(w)
}

// awsTrustPolicy answers the IAM trust policy to put on an AWS
// integration's role for a stack (?stack=S).
func (a *API) awsTrustPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, in, err := a.integrationOf(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	if in.Type != integration.AWS {
		return errs.E(errs.Invalid, "integration %s is not an AWS integration", in.ID)
	}
	stackID := r.URL.Query().Get("stack")
	if stackID == "" {
		return errs.E(errs.Invalid, "stack is required")
	}
	st, err := a.Stacks.Get(r.Context(), stackID)
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if a.TokenSubject == nil {
		return errs.E(errs.Unavailable, "this server issues no OIDC tokens")
	}
	issuer, read, write := a.TokenSubject(r.Context(), st.Space, st.ID)
	doc, err := integration.TrustPolicy(in, issuer, read, write, "arn:aws:iam::<the server's account>:root", st.ID)
	if err != nil {
		return errs.E(errs.Invalid, "%v", err)
	}
	httpx.WriteJSON(w, http.StatusOK, doc)
	return nil
}
