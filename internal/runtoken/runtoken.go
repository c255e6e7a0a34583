// Package runtoken makes Gantry an OpenID Connect issuer for its runs:
// every run gets a short-lived JWT naming its space, stack, run and scope
// (read while planning, write while applying), which clouds trust through
// workload identity federation instead of static keys. It serves the
// discovery document and the JWKS, and keeps the signing keys encrypted
// with the data key, rotated without breaking tokens already issued.
package runtoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Signing algorithms.
const (
	RS256 = "RS256" // the default: Microsoft Entra accepts no other
	ES256 = "ES256"
)

// DefaultSubject is the default subject template (Spacelift's shape).
const DefaultSubject = "space:{spaceId}:stack:{stackId}:run_type:{runType}:scope:{scope}"

// Scopes of a token.
const (
	Read  = "read"
	Write = "write"
)

// Config says how tokens look.
type Config struct {
	// Issuer is the iss claim and where the discovery document is served:
	// the server's public URL.
	Issuer string
	// Audience is the default aud claim: the issuer's host name.
	Audience string
	// Subject is the sub template: {spaceId} {spacePath} {stackId} {runId}
	// {runType} {scope}.
	Subject string
	// Lifetime bounds a token (default 1 hour).
	Lifetime time.Duration
	// Alg signs new keys: RS256 (default) or ES256.
	Alg string
}

// Service issues run tokens.
type Service struct {
	cfg Config
	db  *db.DB
	box *secrets.Box
	// Audit records every issuance (never the token).
	Audit audit.Hook

	mu     sync.Mutex
	signer *signingKey // cached active key
}

type signingKey struct {
	kid, alg string
	key      crypto.Signer
}

// New returns the issuer; it checks the configuration.
func New(d *db.DB, box *secrets.Box, cfg Config) (*Service, error) {
	if err := CheckIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Issuer)
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.Audience == "" {
		cfg.Audience = u.Hostname()
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if err := CheckSubject(cfg.Subject); err != nil {
		return nil, err
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = time.Hour
	}
	if err := CheckAlg(cfg.Alg); err != nil {
		return nil, err
	}
	if cfg.Alg == "" {
		cfg.Alg = RS256
	}
	return &Service{cfg: cfg, db: d, box: box}, nil
}

// CheckIssuer checks the form of an issuer URL: http(s), with a host,
// without query or fragment.
func CheckIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("the token issuer %q must be an http(s) URL without query or fragment", issuer)
	}
	return nil
}

// CheckAlg checks a signing algorithm of new keys: RS256 or ES256 ("":
// RS256).
func CheckAlg(alg string) error {
	switch alg {
	case "", RS256, ES256:
		return nil
	}
	return fmt.Errorf("token signing algorithm %q: want RS256 or ES256", alg)
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Identity is what clouds trust the runs' tokens by: the issuer (iss) and
// the default audience (aud).
type Identity struct{ Issuer, Audience string }

// Settings rows holding the identity the tokens were last issued with.
const (
	issuerSetting   = "token_issuer"
	audienceSetting = "token_audience"
)

// RecordIdentity records the effective issuer and default audience in the
// database, and returns those recorded before and whether they differ
// (never on a database that recorded none: a first start, or a database
// from before they were recorded).
func (s *Service) RecordIdentity(ctx context.Context) (before Identity, changed bool, err error) {
	now := Identity{Issuer: s.cfg.Issuer, Audience: s.cfg.Audience}
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		rows, err := s.db.Query(ctx, `SELECT name, value FROM settings WHERE name IN ($1, $2)`, issuerSetting, audienceSetting)
		if err != nil {
			return err
		}
		defer rows.Close()
		found := false
		for rows.Next() {
			var name, value string
			if err := rows.Scan(&name, &value); err != nil {
				return err
			}
			found = true
			if name == issuerSetting {
				before.Issuer = value
			} else {
				before.Audience = value
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if found && before == now {
			return nil
		}
		changed = found
		for name, value := range map[string]string{issuerSetting: now.Issuer, audienceSetting: now.Audience} {
			if _, err := s.db.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
				return err
			}
		}
		return nil
	})
	return before, changed, err
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newKey(alg string) (crypto.Signer, error) {
	if alg == ES256 {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return rsa.GenerateKey(rand.Reader, 2048)
}

// publicJWK is the JWK of a key's public half.
func publicJWK(kid, alg string, k crypto.Signer) (map[string]any, error) {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "use": "sig", "alg": alg, "kid": kid,
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, err
		}
		return map[string]any{"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": "P-256",
			"x": b64(raw[1:33]), "y": b64(raw[33:65])}, nil
	}
	return nil, errors.New("unsupported key type")
}

func aad(kid string) string { return "oidc-key:" + kid }

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{{Table: "oidc_keys", Column: "private_sealed", Keys: []string{"kid"},
	Encoding: secrets.Base64URL, AAD: func(v []any) string { return aad(fmt.Sprint(v[0])) }}}

// AddKey makes a new signing key and makes it the one that signs; the
// previous keys are retired: still published for grace (at least the
// token lifetime, so the tokens they signed verify until they expire),
// then dropped from the JWKS.
func (s *Service) AddKey(ctx context.Context, grace time.Duration) (string, error) {
	kid, err := AddKey(ctx, s.db, s.box, s.cfg.Alg, max(grace, s.cfg.Lifetime), s.Audit)
	s.mu.Lock()
	s.signer = nil
	s.mu.Unlock()
	return kid, err
}

// AddKey adds a signing key of alg to the database d (see Service.AddKey);
// `gantry admin rotate-signing-key` calls it on a server's database, not
// knowing the servers' token lifetime: whatever grace it gives, the
// servers publish a retired key for at least their lifetime (see JWKS).
// alg "" is the current key's (RS256 when there is none).
func AddKey(ctx context.Context, d *db.DB, box *secrets.Box, alg string, grace time.Duration, rec audit.Hook) (string, error) {
	if alg == "" {
		var err error
		if alg, err = CurrentAlg(ctx, d); err != nil {
			return "", err
		}
	}
	if alg != RS256 && alg != ES256 {
		return "", fmt.Errorf("token signing algorithm %q: want RS256 or ES256", alg)
	}
	k, err := newKey(alg)
	if err != nil {
		return "", err
	}
	kid := id.New("key")
	jwk, err := publicJWK(kid, alg, k)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	pub, _ := json.Marshal(jwk)
	now := time.Now()
	err = d.Tx(ctx, func(ctx context.Context) error {
		if _, err := d.Exec(ctx, `UPDATE oidc_keys SET retired_at = $1, not_after = $2 WHERE retired_at = 0`,
			now.UnixNano(), now.Add(grace).UnixNano()); err != nil {
			return err
		}
		_, err := d.Exec(ctx, `INSERT INTO oidc_keys (kid, alg, private_sealed, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)`,
			kid, alg, b64(box.Seal(der, aad(kid))), string(pub), now.UnixNano())
		if err != nil {
			return err
		}
		return rec.Record(ctx, "oidc_key.rotate", "oidc_key", kid, "root", nil, map[string]any{"kid": kid, "alg": alg, "previous_published_for": grace.String()})
	})
	return kid, err
}

// CurrentAlg returns the algorithm of the key that signs (RS256 when
// there is none yet).
func CurrentAlg(ctx context.Context, d *db.DB) (string, error) {
	var alg string
	err := d.QueryRow(ctx, `SELECT alg FROM oidc_keys WHERE retired_at = 0 ORDER BY created_at DESC LIMIT 1`).Scan(&alg)
	if errors.Is(err, sql.ErrNoRows) {
		return RS256, nil
	}
	return alg, err
}

// EnsureKey makes the first signing key when there is none.
func (s *Service) EnsureKey(ctx context.Context) error {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM oidc_keys WHERE retired_at = 0`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := s.AddKey(ctx, 0)
	return err
}

// active returns the key that signs (newest not retired).
func (s *Service) active(ctx context.Context) (*signingKey, error) {
	var kid, alg, sealed string
	err := s.db.QueryRow(ctx, `SELECT kid, alg, private_sealed FROM oidc_keys WHERE retired_at = 0 ORDER BY created_at DESC LIMIT 1`).Scan(&kid, &alg, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.E(errs.Unavailable, "no token signing key yet")
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer != nil && s.signer.kid == kid {
		return s.signer, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return nil, err
	}
	der, err := s.box.Open(raw, aad(kid))
	if err != nil {
		return nil, fmt.Errorf("opening token signing key %s: %w", kid, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("token signing key is not a signer")
	}
	s.signer = &signingKey{kid: kid, alg: alg, key: signer}
	return s.signer, nil
}

// JWKS returns the published keys: the signing one and retired ones
// still within their grace, which lasts at least this server's token
// lifetime whoever rotated (the tokens a key signed up to its retirement
// verify until they expire).
func (s *Service) JWKS(ctx context.Context) ([]byte, error) {
	now := time.Now()
	keys, err := db.Collect(ctx, s.db, func(row db.Scanner) (json.RawMessage, error) {
		var k string
		err := row.Scan(&k)
		return json.RawMessage(k), err
	}, `SELECT public_jwk FROM oidc_keys WHERE retired_at = 0 OR not_after > $1 OR retired_at > $2 ORDER BY created_at DESC`,
		now.UnixNano(), now.Add(-s.cfg.Lifetime).UnixNano())
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"keys": keys})
}

// Discovery returns the OpenID configuration document.
func (s *Service) Discovery() []byte {
	b, _ := json.Marshal(map[string]any{
		"issuer":                                s.cfg.Issuer,
		"jwks_uri":                              s.cfg.Issuer + "/.well-known/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{RS256, ES256},
		"claims_supported": []string{"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "spaceId", "spacePath", "stackId",
			"callerType", "callerId", "runId", "runType", "scope"},
		"scopes_supported": []string{"openid"},
	})
	return b
}

// Run is what a token is about.
type Run struct {
	SpaceID, SpacePath, StackID, RunID, RunType string
	Scope                                       string // Read or Write
	Audience                                    string // "" for the default
	// NotAfter caps the expiry (the run's own deadline), if set.
	NotAfter time.Time
}

// placeholders are those a subject template may use.
var placeholders = []string{"{spaceId}", "{spacePath}", "{stackId}", "{runId}", "{runType}", "{scope}"}

// CheckSubject refuses a subject template that uses anything but the
// placeholders (names are case-sensitive; a brace is always one), or that
// does not name the stack: every stack's token would then have the same
// sub, and a cloud trust written for one stack would trust them all.
func CheckSubject(tmpl string) error {
	rest := tmpl
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if rest[i] == '}' || j < 0 {
			return fmt.Errorf("the token subject template %q has an unmatched brace (placeholders: %s)", tmpl, strings.Join(placeholders, " "))
		}
		if p := rest[i : i+j+1]; !slices.Contains(placeholders, p) {
			return fmt.Errorf("the token subject template %q uses the unknown placeholder %s (placeholders: %s)", tmpl, p, strings.Join(placeholders, " "))
		}
		rest = rest[i+j+1:]
	}
	if !strings.Contains(tmpl, "{stackId}") {
		return fmt.Errorf("the token subject template %q must contain {stackId}: without it every stack's token has the same sub, and a cloud trusting one stack would trust them all", tmpl)
	}
	return nil
}

// Subject renders the subject template for r.
func (s *Service) Subject(r Run) string {
	return strings.NewReplacer("{spaceId}", r.SpaceID, "{spacePath}", r.SpacePath, "{stackId}", r.StackID,
		"{runId}", r.RunID, "{runType}", r.RunType, "{scope}", r.Scope).Replace(s.cfg.Subject)
}

// Issue signs a token for r and records the issuance in the audit trail
// (claims, never the token).
func (s *Service) Issue(ctx context.Context, r Run) (string, time.Time, error) {
	p, err := s.Prepare(ctx, r)
	if err != nil {
		return "", time.Time{}, err
	}
	return s.Hand(ctx, p)
}

// Pending is a token whose claims are fixed but which is not signed yet:
// its issuance can be recorded while it is signed (RSA is the costly
// part), and it is handed out only once both are done.
type Pending struct {
	key    *signingKey
	claims map[string]any
	exp    time.Time
	run    Run
	view   map[string]any // what the audit trail records (never the token)
}

// Prepared is a signed token not handed out yet: signing (RSA) is the
// costly part of issuing, so callers may sign while doing other work and
// hand the token out (recording it) only if they do.
type Prepared struct {
	token string
	exp   time.Time
	run   Run
	view  map[string]any
}

// Pend fixes the claims of a token for r (with the signing key's id),
// without signing or recording it.
func (s *Service) Pend(ctx context.Context, r Run) (Pending, error) {
	if r.Scope != Read && r.Scope != Write {
		return Pending{}, fmt.Errorf("token scope %q", r.Scope)
	}
	k, err := s.active(ctx)
	if err != nil {
		return Pending{}, err
	}
	now := time.Now().Truncate(time.Second)
	exp := now.Add(s.cfg.Lifetime)
	if !r.NotAfter.IsZero() && r.NotAfter.Before(exp) {
		exp = r.NotAfter
	}
	aud := r.Audience
	if aud == "" {
		aud = s.cfg.Audience
	}
	jti := id.New("jti")
	claims := map[string]any{
		"iss": s.cfg.Issuer, "aud": aud, "sub": s.Subject(r), "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(), "jti": jti,
		"spaceId": r.SpaceID, "spacePath": r.SpacePath, "stackId": r.StackID, "callerType": "stack", "callerId": r.StackID,
		"runId": r.RunID, "runType": r.RunType, "scope": r.Scope,
	}
	view := map[string]any{"jti": jti, "kid": k.kid, "sub": claims["sub"], "aud": aud, "scope": r.Scope, "run": r.RunID, "expires_at": exp.UTC()}
	return Pending{key: k, claims: claims, exp: exp, run: r, view: view}, nil
}

// Sign signs a pending token.
func (p Pending) Sign() (Prepared, error) {
	if p.key == nil {
		return Prepared{}, errors.New("no pending token")
	}
	tok, err := sign(p.key, p.claims)
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{token: tok, exp: p.exp, run: p.run, view: p.view}, nil
}

// Token returns the signed token and its expiry, for a caller that recorded
// its issuance with Record.
func (p Prepared) Token() (string, time.Time) { return p.token, p.exp }

// Prepare signs a token for r without recording it.
func (s *Service) Prepare(ctx context.Context, r Run) (Prepared, error) {
	p, err := s.Pend(ctx, r)
	if err != nil {
		return Prepared{}, err
	}
	return p.Sign()
}

// Record records the issuance of a token in the audit trail (claims,
// never the token), in the transaction ctx carries or in its own. Call it
// before handing the token out.
func (s *Service) Record(ctx context.Context, p Pending) error {
	if p.key == nil {
		return errors.New("no pending token")
	}
	return s.record(ctx, p.run, p.view)
}

func (s *Service) record(ctx context.Context, r Run, view map[string]any) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		return s.Audit.Record(ctx, "oidc_token.issue", "run", r.RunID, r.SpaceID, nil, view)
	})
}

// Hand records the issuance of a prepared token in the audit trail and
// returns it with its expiry.
func (s *Service) Hand(ctx context.Context, p Prepared) (string, time.Time, error) {
	if p.token == "" {
		return "", time.Time{}, errors.New("no prepared token")
	}
	if err := s.record(ctx, p.run, p.view); err != nil {
		return "", time.Time{}, err
	}
	return p.token, p.exp, nil
}

// sign makes a compact JWS.
func sign(k *signingKey, claims map[string]any) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": k.alg, "typ": "JWT", "kid": k.kid})
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch key := k.key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, key, sum[:]); err == nil {
			sig = make([]byte, 64) // JWS: R || S, 32 bytes each
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	default:
		err = errors.New("unsupported signing key")
	}
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}
