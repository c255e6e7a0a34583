package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A webhook payload's spacelift::logs::<phase> placeholders get the
// phases' parts of a real run's log, each its own.
func TestNotificationPhaseLogs(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	bodies := make(chan []byte, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer recv.Close()
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.MustGantry(t, "webhook", "create", "--id", "logs", "--webhook-url", recv.URL+"/hook")
	s.createPolicy(t, "phase-logs", "NOTIFICATION", `package spacelift

webhook contains {"endpoint_id": "logs", "payload": {
	"init": "spacelift::logs::initializing",
	"plan": "Plan log:\nspacelift::logs::planning",
	"apply": ["spacelift::logs::applying"],
	"spacelift::logs::planning": "key",
}} if {
	input.run_updated.state == "FINISHED"
}
`)
	s.CreateStack(t, "logged", repo.URL, "--autodeploy")
	s.WaitRun(t, s.Deploy(t, "logged").ID, "FINISHED")
	select {
	case body := <-bodies:
		var p struct {
			Init, Plan string
			Apply      []string
			Key        string `json:"spacelift::logs::planning"`
		}
		if err := json.Unmarshal(body, &p); err != nil || len(p.Apply) != 1 {
			t.Fatalf("payload = %s (%v)", body, err)
		}
		if !strings.Contains(p.Init, "successfully initialized") || strings.Contains(p.Init, "Plan:") {
			t.Errorf("initializing log = %q", p.Init)
		}
		if !strings.HasPrefix(p.Plan, "Plan log:\n") || !strings.Contains(p.Plan, "Plan: ") ||
			strings.Contains(p.Plan, "successfully initialized") || strings.Contains(p.Plan, "Apply complete") {
			t.Errorf("planning log = %q", p.Plan)
		}
		if !strings.Contains(p.Apply[0], "Apply complete") || strings.Contains(p.Apply[0], "successfully initialized") {
			t.Errorf("applying log = %q", p.Apply[0])
		}
		if p.Key != "key" {
			t.Errorf("a key's placeholder was touched: %s", body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no webhook arrived")
	}
}
