package notify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
)

const slackURL = "https://hooks.slack.com/services/T000/B000/XXXXsecrettoken"

func TestEndpoints(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		wh := mustCreate(t, s, Endpoint{ID: "ops", URL: "https://example.com/hook", Secret: "s3cret-value",
			Headers: map[string]string{"Authorization": "Bearer tok-123456"}, Labels: []string{"b", "a"}, Retries: 3, Enabled: true})
		if wh.Secret != "" || !wh.HasSecret || wh.Headers["Authorization"] != secrets.Mask || wh.URL != "https://example.com/hook" ||
			wh.SpaceID != "root" || wh.Kind != KindWebhook || !slices.Equal(wh.Labels, []string{"a", "b"}) || wh.CreatedAt.IsZero() {
			t.Errorf("created webhook = %+v", wh)
		}
		sl := mustCreate(t, s, Endpoint{ID: "chat", SpaceID: "other", Kind: KindSlack, URL: slackURL, Enabled: true})
		if sl.URL != "https://hooks.slack.com/"+secrets.Mask || sl.HasSecret {
			t.Errorf("slack endpoint = %+v, want the URL masked", sl)
		}

		assertNotStored(t, d, "s3cret-value", "tok-123456", "XXXXsecrettoken")

		for _, bad := range []struct {
			e    Endpoint
			want string
		}{
			{Endpoint{ID: "x", URL: "ftp://example.com/"}, "http or https"},
			{Endpoint{ID: "x", URL: "file:///etc/passwd"}, "http or https"},
			{Endpoint{ID: "x", URL: "not a url"}, "http"},
			{Endpoint{ID: "x", URL: "https://e.com", Retries: 21}, "retries"},
			{Endpoint{ID: "x", URL: "https://e.com", Kind: "pager"}, "kind"},
			{Endpoint{ID: "X_", URL: "https://e.com"}, "slug"},
			{Endpoint{ID: "x", URL: "https://e.com", Headers: map[string]string{"X-Signature-256": "v"}}, "set by Gantry"},
			{Endpoint{ID: "x", URL: "https://e.com", Headers: map[string]string{"x-signature": "v"}}, "set by Gantry"},
			{Endpoint{ID: "x", URL: "https://e.com", Headers: map[string]string{"A": "1\r\nB: 2"}}, "one line"},
			{Endpoint{ID: "x", URL: "https://e.com", SpaceID: "nope"}, "space"},
		} {
			_, err := s.CreateEndpoint(ctx, bad.e)
			if !errs.Is(err, errs.Invalid) || !strings.Contains(errs.Public(err), bad.want) {
				t.Errorf("CreateEndpoint(%+v) = %v, want invalid mentioning %q", bad.e, err, bad.want)
			}
		}
		if _, err := s.CreateEndpoint(ctx, Endpoint{ID: "ops", URL: "https://e.com"}); !errs.Is(err, errs.Conflict) {
			t.Errorf("duplicate: %v", err)
		}

		url, disabled, none := "https://example.org/new", false, ""
		up, err := s.UpdateEndpoint(ctx, "ops", EndpointUpdate{URL: &url, Enabled: &disabled, Secret: &none})
		if err != nil || up.URL != url || up.Enabled || up.HasSecret || up.Headers["Authorization"] != secrets.Mask || up.Retries != 3 {
			t.Errorf("UpdateEndpoint = %+v, %v", up, err)
		}
		full, err := s.revealed(ctx, "ops")
		if err != nil || full.Headers["Authorization"] != "Bearer tok-123456" {
			t.Errorf("headers after update = %v, %v", full.Headers, err)
		}
		if _, err := s.UpdateEndpoint(ctx, "nope", EndpointUpdate{}); !errs.Is(err, errs.NotFound) {
			t.Errorf("update unknown: %v", err)
		}

		list, err := s.ListEndpoints(ctx, "")
		if err != nil || len(list) != 2 || list[0].ID != "chat" || list[1].ID != "ops" {
			t.Errorf("ListEndpoints = %+v, %v", list, err)
		}
		list, err = s.Endpoints(ctx, []string{"other"})
		if err != nil || len(list) != 1 || list[0].ID != "chat" {
			t.Errorf("Endpoints(other) = %+v, %v", list, err)
		}
		if err := s.DeleteEndpoint(ctx, "ops"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetEndpoint(ctx, "ops"); !errs.Is(err, errs.NotFound) {
			t.Errorf("get after delete: %v", err)
		}
		if err := s.DeleteEndpoint(ctx, "ops"); !errs.Is(err, errs.NotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

// TestSealedBinding checks a sealed value moved to another endpoint does
// not open.
func TestSealedBinding(t *testing.T) {
	d := dbtest.SQLite(t)
	ctx := context.Background()
	s, _ := newTestService(t, d)
	mustCreate(t, s, Endpoint{ID: "a", URL: "https://a.example.com", Secret: "secret-a", Enabled: true})
	mustCreate(t, s, Endpoint{ID: "b", URL: "https://b.example.com", Enabled: true})
	if _, err := d.Exec(ctx, `UPDATE notify_endpoints SET secret_sealed = (SELECT secret_sealed FROM notify_endpoints WHERE id = 'a') WHERE id = 'b'`); err != nil {
		t.Fatal(err)
	}
	_, err := s.revealed(ctx, "b")
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Internal {
		t.Errorf("revealed(b) with a's secret = %v, want a decryption error", err)
	}
}

// assertNotStored checks no column of notify_endpoints holds a secret in clear.
func assertNotStored(t *testing.T, d *db.DB, secretValues ...string) {
	t.Helper()
	rows, err := d.Query(context.Background(), `SELECT url_display, url_sealed, secret_sealed, header_names, headers_sealed FROM notify_endpoints`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var stored []string
	for rows.Next() {
		var a, b, c, dd, e string
		if err := rows.Scan(&a, &b, &c, &dd, &e); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, a, b, c, dd, e)
	}
	for _, secret := range secretValues {
		if strings.Contains(strings.Join(stored, " "), secret) {
			t.Errorf("%q stored in clear", secret)
		}
	}
}
