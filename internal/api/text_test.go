package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// A NUL character is refused with 400 naming the field on both databases
// (PostgreSQL cannot store it; an environment cannot carry it), and text
// in a URL that PostgreSQL cannot take (NUL, invalid UTF-8) is never a 500.
func TestTextPostgreSQLCannotStore(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		e.must(e.do("POST", "/api/v1/stacks", `{"id":"st","repository":"`+pinnedRepo+`"}`), http.StatusCreated, nil)
		e.must(e.do("POST", "/api/v1/contexts", `{"id":"ctx"}`), http.StatusCreated, nil)
		tests := []struct {
			method, path, body string
			msg                string // in the 400's message
		}{
			{"POST", "/api/v1/spaces", `{"id":"sp1","name":"a\u0000b"}`, "name"},
			{"POST", "/api/v1/stacks", `{"id":"st2","repository":"/r","name":"a\u0000b"}`, "name"},
			{"PATCH", "/api/v1/stacks/st", `{"description":"a\u0000b"}`, "description"},
			{"POST", "/api/v1/stacks", `{"id":"st3","repository":"/r","labels":["ok","x\u0000"]}`, "labels[1]"},
			{"PUT", "/api/v1/stacks/st/env/FOO", `{"value":"a\u0000b"}`, "FOO"},
			{"PUT", "/api/v1/stacks/st/env/FOO", `{"value":"a\u0000b","secret":true}`, "FOO"},
			{"POST", "/api/v1/contexts", `{"id":"c1","description":"x\u0000"}`, "description"},
			{"PUT", "/api/v1/contexts/ctx/env/BAR", `{"value":"\u0000","secret":true}`, "BAR"},
			{"POST", "/api/v1/stacks/st/tasks", `{"command":"echo \u0000","sha":"` + pinnedSHA + `"}`, "command"},
		}
		for _, tt := range tests {
			r := e.do(tt.method, tt.path, tt.body)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tt.msg) || !strings.Contains(string(r.body), "NUL") {
				t.Errorf("%s %s %s = %s, want 400 naming %s and NUL", tt.method, tt.path, tt.body, r, tt.msg)
			}
		}
		// A JSON string spelling a backslash and "u0000" holds no NUL.
		e.must(e.do("PUT", "/api/v1/stacks/st/env/OK", `{"value":"a\\u0000b"}`), http.StatusOK, nil)

		for _, path := range []string{
			"/api/v1/stacks/a%00b", "/api/v1/stacks/%C3", "/api/v1/stacks/st/env",
			"/api/v1/stacks?cursor=%00", "/api/v1/stacks?label=%C3%00", "/api/v1/spaces/%C3%28",
		} {
			if r := e.do("GET", path, nil); r.status >= 500 {
				t.Errorf("GET %s = %s", path, r)
			}
		}
		if r := e.send(request{method: "LOCK", path: "/api/v1/stacks/st/tfstate", token: e.token, basic: true,
			body: strings.NewReader(`{"ID":"a\u0000","Operation":"plan"}`)}); r.status >= 500 {
			t.Errorf("LOCK with a NUL in the lock info = %s", r)
		}
		if l := e.logs.String(); strings.Contains(l, "request failed") {
			t.Errorf("the server logged failed requests (500s):\n%s", l)
		}
	})
}
