package apiv1

// Whoami is the caller as the server sees it (GET /whoami).
type Whoami struct {
	Kind   string   `json:"kind"`  // api_key or user (a signed-in user's session)
	ID     string   `json:"id"`    // the API key's or the session's id
	Name   string   `json:"name"`  // the API key's name or the user's login
	Actor  string   `json:"actor"` // how timelines and the audit trail name the caller, e.g. api_key::ci
	Admin  bool     `json:"admin"`
	Roles  []string `json:"roles"`            // role@space of the caller's bindings and login policy grants
	User   string   `json:"user,omitempty"`   // the signed-in user's id (sessions and a user's own keys)
	Groups []string `json:"groups,omitempty"` // the user's IdP groups
}
