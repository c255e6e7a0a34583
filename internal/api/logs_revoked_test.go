package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// A log long poll that waits while its API key is revoked does not
// answer with the output that arrives afterwards: the key is checked
// again when the wait ends with something to send.
func TestLogPollAfterRevocation(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	waiting := make(chan struct{}, 1)
	e.runs.OnLogWait = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	for i := range 5 {
		rn := e.createRun("web", "PROPOSED")
		var key apiv1.APIKeyCreated
		e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": fmt.Sprintf("poller-%d", i), "admin": true}), http.StatusCreated, &key)
		polled := make(chan response, 1)
		go func() {
			polled <- e.send(request{method: "GET", path: "/api/v1/runs/" + rn.ID + "/logs?offset=0&wait=30", token: key.Token})
		}()
		// The key is revoked, and the output comes, once the poll waits:
		// output already there is answered at once, to the caller
		// authenticated as the request came.
		<-waiting
		e.must(e.do("DELETE", "/api/v1/api-keys/"+key.ID, nil), http.StatusNoContent, nil)
		if _, err := e.runs.AppendLog(context.Background(), rn.ID, 0, []byte("secret output\n")); err != nil {
			t.Fatal(err)
		}
		if r := <-polled; r.status != http.StatusUnauthorized {
			t.Fatalf("round %d: the poll of a key revoked while it waited = %s, want 401", i, r)
		}
	}
}
