package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// AzureModeManaged makes Gantry manage the application's client secret
// (setting mode=managed): it creates one through Microsoft Graph
// (addPassword) with the server's admin credential, rotates it (a new one
// every GraphAdmin.RotateEvery, the previous one removed with
// removePassword once it is older than twice that), keeps it sealed, and
// hands runs ARM_CLIENT_SECRET.
const (
	AzureMode        = "mode"
	AzureModeOIDC    = "oidc"
	AzureModeManaged = "managed"
)

// GraphAdmin is the server's credential for Microsoft Graph (an
// application allowed to manage the integrations' applications'
// credentials, e.g. Application.ReadWrite.OwnedBy).
type GraphAdmin struct {
	TenantID, ClientID, ClientSecret string
	Authority                        string // default https://login.microsoftonline.com
	Endpoint                         string // default https://graph.microsoft.com
	RotateEvery                      time.Duration
	HTTP                             *http.Client
}

func (g *GraphAdmin) client() *http.Client {
	if g.HTTP != nil {
		return g.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (g *GraphAdmin) authority() string {
	if g.Authority == "" {
		return "https://login.microsoftonline.com"
	}
	return strings.TrimSuffix(g.Authority, "/")
}

func (g *GraphAdmin) endpoint() string {
	if g.Endpoint == "" {
		return "https://graph.microsoft.com"
	}
	return strings.TrimSuffix(g.Endpoint, "/")
}

// token gets a Graph access token with the client credentials grant.
func (g *GraphAdmin) token(ctx context.Context) (string, error) {
	form := url.Values{"client_id": {g.ClientID}, "client_secret": {g.ClientSecret}, "grant_type": {"client_credentials"},
		"scope": {"https://graph.microsoft.com/.default"}}
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	status, err := g.do(ctx, http.MethodPost, g.authority()+"/"+url.PathEscape(g.TenantID)+"/oauth2/v2.0/token", "application/x-www-form-urlencoded",
		"", []byte(form.Encode()), &out)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK || out.AccessToken == "" {
		return "", fmt.Errorf("Microsoft Entra refused the server's Graph credential: %s: %s", out.Error, firstLine(out.Description))
	}
	return out.AccessToken, nil
}

func (g *GraphAdmin) do(ctx context.Context, method, u, ctype, bearer string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ctype)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := g.client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && len(b) > 0 {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

type graphError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// AddPassword creates a client secret on the application appID.
func (g *GraphAdmin) AddPassword(ctx context.Context, appID, name string, end time.Time) (keyID, secret string, err error) {
	tok, err := g.token(ctx)
	if err != nil {
		return "", "", err
	}
	body, _ := json.Marshal(map[string]any{"passwordCredential": map[string]any{"displayName": name, "endDateTime": end.UTC().Format(time.RFC3339)}})
	var out struct {
		KeyID      string `json:"keyId"`
		SecretText string `json:"secretText"`
		graphError
	}
	status, err := g.do(ctx, http.MethodPost, g.endpoint()+"/v1.0/applications(appId='"+url.PathEscape(appID)+"')/addPassword", "application/json", tok, body, &out)
	if err != nil {
		return "", "", err
	}
	if status != http.StatusOK || out.SecretText == "" {
		return "", "", fmt.Errorf("Microsoft Graph refused addPassword on %s: %s: %s", appID, out.Error.Code, out.Error.Message)
	}
	return out.KeyID, out.SecretText, nil
}

// RemovePassword removes a client secret of the application appID.
func (g *GraphAdmin) RemovePassword(ctx context.Context, appID, keyID string) error {
	tok, err := g.token(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"keyId": keyID})
	var out graphError
	status, err := g.do(ctx, http.MethodPost, g.endpoint()+"/v1.0/applications(appId='"+url.PathEscape(appID)+"')/removePassword", "application/json", tok, body, &out)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent && status != http.StatusOK {
		return fmt.Errorf("Microsoft Graph refused removePassword on %s: %s: %s", appID, out.Error.Code, out.Error.Message)
	}
	return nil
}

func (g *GraphAdmin) rotateEvery() time.Duration {
	if g.RotateEvery <= 0 {
		return 24 * time.Hour
	}
	return g.RotateEvery
}

func secretAAD(integrationID, keyID string) string {
	return "integration-secret:" + integrationID + ":" + keyID
}

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{{Table: "integration_secrets", Column: "secret_sealed", Keys: []string{"integration_id", "key_id"},
	Encoding: secrets.Base64, AAD: func(v []any) string { return secretAAD(fmt.Sprint(v[0]), fmt.Sprint(v[1])) }}}

// managedSecret returns the newest managed secret of an integration,
// creating the first one.
func (s *Service) managedSecret(ctx context.Context, in Integration) (string, error) {
	if s.Graph == nil || s.Box == nil {
		return "", errs.E(errs.Unavailable, "integration %s: managed mode needs the server's Microsoft Graph credential (--azure-graph-*)", in.ID)
	}
	var keyID, sealed string
	err := s.db.QueryRow(ctx, `SELECT key_id, secret_sealed FROM integration_secrets WHERE integration_id = $1 ORDER BY created_at DESC LIMIT 1`, in.ID).Scan(&keyID, &sealed)
	if err == nil {
		return s.openSecret(in.ID, keyID, sealed)
	}
	if err := s.rotate(ctx, in, time.Now()); err != nil {
		return "", err
	}
	if err := s.db.QueryRow(ctx, `SELECT key_id, secret_sealed FROM integration_secrets WHERE integration_id = $1 ORDER BY created_at DESC LIMIT 1`, in.ID).Scan(&keyID, &sealed); err != nil {
		return "", err
	}
	return s.openSecret(in.ID, keyID, sealed)
}

func (s *Service) openSecret(integrationID, keyID, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", err
	}
	pt, err := s.Box.Open(raw, secretAAD(integrationID, keyID))
	return string(pt), err
}

// secretsLock serializes the managed secrets' changes across replicas
// (an advisory lock key on PostgreSQL: "gantry" and 2).
const secretsLock = 0x67616e7472790002

// rotate makes a new client secret when the newest is older than the
// rotation interval (or there is none), and removes, at Microsoft and
// here, secrets older than twice the interval (runs that took the
// previous one keep it that long). Serialized across replicas by a lock
// held outside any transaction: Microsoft Graph is called between short
// transactions, so a slow Graph never holds up the database's writers.
func (s *Service) rotate(ctx context.Context, in Integration, now time.Time) error {
	every := s.Graph.rotateEvery()
	app := in.Config[AzureClient]
	return s.db.WithLock(ctx, secretsLock, func(ctx context.Context) error {
		var newest int64
		if err := s.db.QueryRow(ctx, `SELECT COALESCE(MAX(created_at), 0) FROM integration_secrets WHERE integration_id = $1`, in.ID).Scan(&newest); err != nil {
			return err
		}
		if newest == 0 || now.Sub(db.FromNanos(newest)) >= every {
			keyID, secret, err := s.Graph.AddPassword(ctx, app, "gantry "+in.ID, now.Add(3*every))
			if err != nil {
				return errs.E(errs.Unavailable, "integration %s: %v", in.ID, err)
			}
			err = s.db.Tx(ctx, func(ctx context.Context) error {
				if _, err := s.db.Exec(ctx, `INSERT INTO integration_secrets (integration_id, key_id, secret_sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
					in.ID, keyID, base64.StdEncoding.EncodeToString(s.Box.Seal([]byte(secret), secretAAD(in.ID, keyID))), now.UnixNano(), now.Add(3*every).UnixNano()); err != nil {
					return err
				}
				return s.Audit.Record(ctx, "integration.secret_rotate", "integration", in.ID, in.Space, nil,
					map[string]any{"application": app, "key_id": keyID, "expires_at": now.Add(3 * every).UTC()})
			})
			if err != nil {
				// Not kept here (the integration was deleted meanwhile, or
				// the database failed): a secret nobody knows must not live
				// on at Microsoft.
				if rerr := s.Graph.RemovePassword(context.WithoutCancel(ctx), app, keyID); rerr != nil {
					return fmt.Errorf("integration %s: keeping the new client secret %s failed (%w), and removing it at Microsoft too: %v", in.ID, keyID, err, rerr)
				}
				return err
			}
		}
		old, err := s.secretKeys(ctx, in.ID, now.Add(-2*every))
		if err != nil {
			return err
		}
		return s.removeSecrets(ctx, in, old)
	})
}

// secretKeys lists the key ids of an integration's managed secrets made
// before cutoff.
func (s *Service) secretKeys(ctx context.Context, integrationID string, cutoff time.Time) ([]string, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (string, error) {
		var k string
		err := row.Scan(&k)
		return k, err
	}, `SELECT key_id FROM integration_secrets WHERE integration_id = $1 AND created_at < $2 ORDER BY created_at`, integrationID, cutoff.UnixNano())
}

// removeSecrets removes managed secrets at Microsoft, then here, one by
// one (what was removed stays removed if a later one fails).
func (s *Service) removeSecrets(ctx context.Context, in Integration, keys []string) error {
	for _, k := range keys {
		if err := s.Graph.RemovePassword(ctx, in.Config[AzureClient], k); err != nil {
			return errs.E(errs.Unavailable, "integration %s: %v", in.ID, err)
		}
		if err := s.db.Tx(ctx, func(ctx context.Context) error {
			if _, err := s.db.Exec(ctx, `DELETE FROM integration_secrets WHERE integration_id = $1 AND key_id = $2`, in.ID, k); err != nil {
				return err
			}
			return s.Audit.Record(ctx, "integration.secret_remove", "integration", in.ID, in.Space, map[string]any{"key_id": k}, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

// RotateManaged rotates the managed secrets of every managed integration
// that is due; errors are returned after trying all.
func (s *Service) RotateManaged(ctx context.Context) error {
	if s.Graph == nil {
		return nil
	}
	list, err := s.List(ctx, "")
	if err != nil {
		return err
	}
	var firstErr error
	for _, in := range list {
		if in.Type != Azure || in.Config[AzureMode] != AzureModeManaged {
			continue
		}
		if err := s.rotate(ctx, in, time.Now()); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// RunRotation rotates managed secrets every interval until ctx ends.
func (s *Service) RunRotation(ctx context.Context, interval time.Duration, logf func(err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RotateManaged(ctx); err != nil && logf != nil {
				logf(err)
			}
		}
	}
}
