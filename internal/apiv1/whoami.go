package apiv1

// Whoami is the caller as the server sees it (GET /whoami).
type Whoami struct {
	Kind  string   `json:"kind"`  // api_key (users and groups arrive with single sign-on)
	ID    string   `json:"id"`    // the API key's id
	Name  string   `json:"name"`  // the API key's name
	Actor string   `json:"actor"` // how timelines and the audit trail name the caller, e.g. api_key::ci
	Admin bool     `json:"admin"`
	Roles []string `json:"roles"` // role bindings (empty until roles exist; every key is an admin today)
}
