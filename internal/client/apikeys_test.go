package client

import (
	"context"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
)

func TestAPIKeyRequests(t *testing.T) {
	ctx := context.Background()

	c, rec := fake(t, 201, `{"id":"key-1","name":"ci","token":"gnt_x","created_at":"2026-01-02T03:04:05Z","created_by":"api_key::admin"}`)
	k, err := c.CreateAPIKey(ctx, apiv1.APIKeyCreate{Name: "ci", ExpiresIn: "30d"})
	if err != nil || k.Token != "gnt_x" || k.CreatedBy != "api_key::admin" || k.ExpiresAt != nil {
		t.Fatalf("CreateAPIKey = %+v, %v", k, err)
	}
	if want := (recorded{Method: "POST", Path: "/api/v1/api-keys", Auth: "Bearer tok", Body: `{"name":"ci","expires_in":"30d"}`}); *rec != want {
		t.Errorf("request = %+v, want %+v", *rec, want)
	}

	c, rec = fake(t, 200, `{"items":[{"id":"key-1","name":"ci","created_by":"","created_at":"2026-01-02T03:04:05Z","revoked_at":"2026-01-03T00:00:00Z"}]}`)
	l, err := c.ListAPIKeys(ctx)
	if err != nil || len(l.Items) != 1 || l.Items[0].RevokedAt == nil || !l.Items[0].RevokedAt.Equal(time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("ListAPIKeys = %+v, %v", l, err)
	}
	if rec.Method != "GET" || rec.Path != "/api/v1/api-keys" {
		t.Errorf("request = %+v", *rec)
	}

	c, rec = fake(t, 204, ``)
	if err := c.RevokeAPIKey(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	if rec.Method != "DELETE" || rec.Path != "/api/v1/api-keys/key-1" {
		t.Errorf("request = %+v", *rec)
	}

	c, _ = fake(t, 409, `{"error":{"code":"conflict","message":"last active API key"}}`)
	if err := c.RevokeAPIKey(ctx, "key-1"); !errs.Is(err, errs.Conflict) {
		t.Errorf("RevokeAPIKey on 409 = %v, want a conflict", err)
	}
}
