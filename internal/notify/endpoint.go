package notify

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// AAD of each sealed column: bound to the endpoint, so a sealed value
// cannot be moved to another endpoint or column.
func aad(endpointID, what string) string { return "notify-endpoint:" + endpointID + ":" + what }

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{
	endpointColumn("url_sealed", "url"), endpointColumn("secret_sealed", "secret"),
	endpointColumn("headers_sealed", "headers"), endpointColumn("smtp_password_sealed", "smtp_password"),
}

func endpointColumn(column, what string) secrets.SealedColumn {
	return secrets.SealedColumn{Table: "notify_endpoints", Column: column, Keys: []string{"id"}, Encoding: secrets.Base64,
		AAD: func(v []any) string { return aad(fmt.Sprint(v[0]), what) }}
}

var headerNameRE = id.MustPattern("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", 1, 128)

// reservedHeaders are set by the dispatcher on every request.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "transfer-encoding": true,
	"connection": true, "user-agent": true,
	"x-signature-256": true, "x-signature": true, "x-gantry-delivery": true, "x-gantry-event": true,
}

// checkHeaders validates header names and values.
func checkHeaders(h map[string]string, refuseReserved bool) error {
	if len(h) > 50 {
		return errs.E(errs.Invalid, "at most 50 headers")
	}
	for k, v := range h {
		if !headerNameRE.MatchString(k) {
			return errs.E(errs.Invalid, "header name %q is not a valid HTTP header name", k)
		}
		if refuseReserved && reservedHeaders[strings.ToLower(k)] {
			return errs.E(errs.Invalid, "header %s is set by Gantry and cannot be configured", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > 8192 {
			return errs.E(errs.Invalid, "the value of header %s must be one line of at most 8192 bytes", k)
		}
	}
	return nil
}

// checkURL accepts absolute http and https URLs only.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" || len(raw) > 2048 {
		return errs.E(errs.Invalid, "url must be an absolute http:// or https:// URL of at most 2048 bytes")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errs.E(errs.Invalid, "url must use http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return errs.E(errs.Invalid, "url must name a host")
	}
	if !utf8.ValidString(raw) {
		return errs.E(errs.Invalid, "url must be valid UTF-8")
	}
	return nil
}

// displayURL is the URL shown for an endpoint: a Slack or Teams
// incoming-webhook URL carries its credential in the path (and a Workflows
// URL in its query), so only scheme and host are shown.
func displayURL(kind, raw string) string {
	if kind == KindWebhook {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return secrets.Mask
	}
	return u.Scheme + "://" + u.Host + "/" + secrets.Mask
}

func validate(e *Endpoint) error {
	if !id.ValidSlug(e.ID) {
		return errs.E(errs.Invalid, "endpoint id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", e.ID)
	}
	if e.SpaceID == "" {
		e.SpaceID = "root"
	}
	if e.Kind == "" {
		e.Kind = KindWebhook
	}
	switch e.Kind {
	case KindWebhook, KindSlack, KindTeams, KindEmail:
	default:
		return errs.E(errs.Invalid, "endpoint kind must be %q, %q, %q or %q, got %q", KindWebhook, KindSlack, KindTeams, KindEmail, e.Kind)
	}
	if e.Retries < 0 || e.Retries > MaxRetries {
		return errs.E(errs.Invalid, "retries must be from 0 to %d", MaxRetries)
	}
	if len(e.Secret) > 4096 {
		return errs.E(errs.Invalid, "secret must be at most 4096 bytes")
	}
	if e.Kind == KindEmail {
		if err := validateEmailEndpoint(e); err != nil {
			return err
		}
	} else {
		if !e.Email.isZero() {
			return errs.E(errs.Invalid, "SMTP settings (host, port, username, password, tls, CA, from, to) are for email endpoints only, not %s ones", e.Kind)
		}
		if err := checkURL(e.URL); err != nil {
			return err
		}
	}
	if err := checkHeaders(e.Headers, true); err != nil {
		return err
	}
	l, err := labels.Normalize(e.Labels)
	e.Labels = l
	return err
}

// validateEmailEndpoint checks an email endpoint: SMTP settings, no URL,
// and none of the webhook-only fields.
func validateEmailEndpoint(e *Endpoint) error {
	if e.URL != "" {
		return errs.E(errs.Invalid, "an email endpoint has no url: give its SMTP host and port")
	}
	if e.Secret != "" || len(e.Headers) > 0 {
		return errs.E(errs.Invalid, "an email endpoint has no secret or headers (they sign and go with HTTP requests)")
	}
	return validateEmail(&e.Email)
}

// sealed is an endpoint as stored.
type sealed struct {
	urlDisplay, url, secret, headerNames, headers string
	smtpPassword, mailTo                          string
}

func (s *Service) seal(e Endpoint) (sealed, error) {
	names := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	n, _ := json.Marshal(names)
	to, _ := json.Marshal(nonNilStrings(e.Email.To))
	out := sealed{urlDisplay: displayURL(e.Kind, e.URL), headerNames: string(n), mailTo: string(to)}
	if e.Kind == KindEmail {
		out.urlDisplay = displaySMTP(e.Email)
	} else {
		out.url = s.box.SealString(e.URL, aad(e.ID, "url"))
	}
	if e.Email.Password != "" {
		out.smtpPassword = s.box.SealString(e.Email.Password, aad(e.ID, "smtp_password"))
	}
	if e.Secret != "" {
		out.secret = s.box.SealString(e.Secret, aad(e.ID, "secret"))
	}
	if len(e.Headers) > 0 {
		h, err := json.Marshal(e.Headers)
		if err != nil {
			return out, err
		}
		out.headers = s.box.SealString(string(h), aad(e.ID, "headers"))
	}
	return out, nil
}

// CreateEndpoint adds an endpoint. Its space must exist. A zero Retries
// means no retries: callers offering a default use DefaultRetries.
func (s *Service) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	if err := validate(&e); err != nil {
		return Endpoint{}, err
	}
	sl, err := s.seal(e)
	if err != nil {
		return Endpoint{}, err
	}
	t := now()
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		// The space's row shared: a space deleted meanwhile takes its
		// endpoints with it (space.Service.Delete locks the row first).
		if ok, err := s.db.ShareRow(ctx, "spaces", e.SpaceID); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.Invalid, "space %q does not exist", e.SpaceID)
			}
			return err
		}
		m := e.Email
		_, err := s.db.Exec(ctx, `INSERT INTO notify_endpoints (id, space_id, kind, url_display, url_sealed, secret_sealed,
			header_names, headers_sealed, labels, retries, enabled, created_at, updated_at,
			smtp_host, smtp_port, smtp_username, smtp_password_sealed, smtp_tls, smtp_ca_pem, mail_from, mail_to)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			e.ID, e.SpaceID, e.Kind, sl.urlDisplay, sl.url, sl.secret, sl.headerNames, sl.headers,
			labels.Encode(e.Labels), e.Retries, e.Enabled, t.UnixNano(),
			m.Host, m.Port, m.Username, sl.smtpPassword, m.TLS, m.CAPEM, m.From, sl.mailTo)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "endpoint %q already exists", e.ID)
		}
		if err != nil {
			return err
		}
		after, err := s.GetEndpoint(ctx, e.ID)
		if err != nil {
			return err
		}
		return s.audit(ctx, "webhook.create", "webhook", e.ID, e.SpaceID, nil, endpointView(after))
	})
	if err != nil {
		return Endpoint{}, err
	}
	return s.GetEndpoint(ctx, e.ID)
}

// endpointView is what the audit trail shows of an endpoint: the URL as
// listed (a Slack or Teams URL masked), header names, the SMTP settings
// but whether a password is set, never the secret, values or password.
func endpointView(e Endpoint) map[string]any {
	names := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	v := map[string]any{"kind": e.Kind, "space": e.SpaceID, "url": e.URL, "headers": names, "has_hmac_key": e.HasSecret,
		"labels": e.Labels, "retries": e.Retries, "enabled": e.Enabled}
	if e.Kind == KindEmail {
		m := e.Email
		v["email"] = map[string]any{"smtp_host": m.Host, "smtp_port": m.Port, "smtp_username": m.Username,
			"has_smtp_password": m.HasPassword, "tls": m.TLS, "has_ca": m.CAPEM != "", "from": m.From, "to": nonNilStrings(m.To)}
	}
	return v
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const endpointCols = `id, space_id, kind, url_display, secret_sealed, header_names, labels, retries, enabled, created_at, updated_at,
	smtp_host, smtp_port, smtp_username, smtp_password_sealed, smtp_tls, smtp_ca_pem, mail_from, mail_to`

// scanEndpoint reads endpointCols, then extra columns into extra; it
// returns the sealed secret too. The sealed SMTP password is left in
// e.Email.Password (revealed opens it; the others clear it).
func scanEndpoint(row interface{ Scan(...any) error }, extra ...any) (Endpoint, string, error) {
	var e Endpoint
	var secret, names, lbl, to string
	var c, u int64
	m := &e.Email
	dest := append([]any{&e.ID, &e.SpaceID, &e.Kind, &e.URL, &secret, &names, &lbl, &e.Retries, &e.Enabled, &c, &u,
		&m.Host, &m.Port, &m.Username, &m.Password, &m.TLS, &m.CAPEM, &m.From, &to}, extra...)
	if err := row.Scan(dest...); err != nil {
		return e, "", err
	}
	m.HasPassword = m.Password != ""
	if err := json.Unmarshal([]byte(to), &m.To); err != nil {
		return e, "", err
	}
	var hn []string
	if err := json.Unmarshal([]byte(names), &hn); err != nil {
		return e, "", err
	}
	e.Headers = map[string]string{}
	for _, k := range hn {
		e.Headers[k] = secrets.Mask
	}
	var err error
	e.Labels, err = labels.Decode(lbl)
	e.HasSecret, e.CreatedAt, e.UpdatedAt = secret != "", db.FromNanos(c), db.FromNanos(u)
	return e, secret, err
}

// GetEndpoint returns an endpoint, its secrets left out.
func (s *Service) GetEndpoint(ctx context.Context, endpointID string) (Endpoint, error) {
	e, _, err := scanEndpoint(s.db.QueryRow(ctx, `SELECT `+endpointCols+` FROM notify_endpoints WHERE id = $1`, endpointID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, errs.E(errs.NotFound, "endpoint %q not found", endpointID)
	}
	e.Email.Password = ""
	return e, err
}

// ListEndpoints returns the endpoints of a space (all spaces for ""),
// ordered by id, their secrets left out.
func (s *Service) ListEndpoints(ctx context.Context, spaceID string) ([]Endpoint, error) {
	if spaceID == "" {
		return s.queryEndpoints(ctx, `SELECT `+endpointCols+` FROM notify_endpoints ORDER BY id`)
	}
	return s.queryEndpoints(ctx, `SELECT `+endpointCols+` FROM notify_endpoints WHERE space_id = $1 ORDER BY id`, spaceID)
}

// Endpoints returns the endpoints of the given spaces ordered by id, for
// the webhook_endpoints of notification policy input (id and labels).
func (s *Service) Endpoints(ctx context.Context, spaceIDs []string) ([]Endpoint, error) {
	if len(spaceIDs) == 0 {
		return []Endpoint{}, nil
	}
	q, args := db.InList(spaceIDs, 0)
	return s.queryEndpoints(ctx, `SELECT `+endpointCols+` FROM notify_endpoints WHERE space_id IN (`+q+`) ORDER BY id`, args...)
}

func (s *Service) queryEndpoints(ctx context.Context, q string, args ...any) ([]Endpoint, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (Endpoint, error) {
		e, _, err := scanEndpoint(row)
		if err != nil {
			return Endpoint{}, err
		}
		e.Email.Password = ""
		return e, nil
	}, q, args...)
}

// UpdateEndpoint changes the fields u sets. Changing the URL of a Slack or
// Teams endpoint replaces the sealed URL; changing a webhook's URL keeps
// its secret and headers; changing an email endpoint's SMTP settings keeps
// the password unless u sets it.
func (s *Service) UpdateEndpoint(ctx context.Context, endpointID string, u EndpointUpdate) (Endpoint, error) {
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// Locked (see db.LockRow): two updates at once apply one after
		// the other, neither undoing the other's fields.
		if _, err := s.db.LockRow(ctx, "notify_endpoints", endpointID); err != nil {
			return err
		}
		full, err := s.revealed(ctx, endpointID)
		if err != nil {
			return err
		}
		before, err := s.GetEndpoint(ctx, endpointID)
		if err != nil {
			return err
		}
		e := full.Endpoint
		set(&e.URL, u.URL)
		set(&e.Secret, u.Secret)
		set(&e.Headers, u.Headers)
		set(&e.Labels, u.Labels)
		set(&e.Retries, u.Retries)
		set(&e.Enabled, u.Enabled)
		if e.Kind != KindEmail && !u.Email.isZero() {
			return errs.E(errs.Invalid, "SMTP settings are for email endpoints only, and %q is a %s endpoint", endpointID, e.Kind)
		}
		u.Email.apply(&e.Email)
		if err := validate(&e); err != nil {
			return err
		}
		sl, err := s.seal(e)
		if err != nil {
			return err
		}
		m := e.Email
		_, err = s.db.Exec(ctx, `UPDATE notify_endpoints SET url_display = $2, url_sealed = $3, secret_sealed = $4,
			header_names = $5, headers_sealed = $6, labels = $7, retries = $8, enabled = $9, updated_at = $10,
			smtp_host = $11, smtp_port = $12, smtp_username = $13, smtp_password_sealed = $14, smtp_tls = $15,
			smtp_ca_pem = $16, mail_from = $17, mail_to = $18 WHERE id = $1`,
			endpointID, sl.urlDisplay, sl.url, sl.secret, sl.headerNames, sl.headers, labels.Encode(e.Labels),
			e.Retries, e.Enabled, now().UnixNano(),
			m.Host, m.Port, m.Username, sl.smtpPassword, m.TLS, m.CAPEM, m.From, sl.mailTo)
		if err != nil {
			return err
		}
		after, err := s.GetEndpoint(ctx, endpointID)
		if err != nil {
			return err
		}
		return s.audit(ctx, "webhook.update", "webhook", endpointID, after.SpaceID, endpointView(before), endpointView(after))
	})
	if err != nil {
		return Endpoint{}, err
	}
	return s.GetEndpoint(ctx, endpointID)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// DeleteEndpoint removes an endpoint and, in the same transaction, fails its
// pending deliveries ("endpoint deleted"): an endpoint created later under
// the same id, maybe in another space, must not get them. A delivery being
// sent keeps its attempt; it is not tried again (the dispatcher checks the
// endpoint is still the one the delivery was made for). The delivery
// history stays.
func (s *Service) DeleteEndpoint(ctx context.Context, endpointID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		if _, err := s.db.LockRow(ctx, "notify_endpoints", endpointID); err != nil {
			return err
		}
		before, err := s.GetEndpoint(ctx, endpointID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM notify_endpoints WHERE id = $1`, endpointID); err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, `UPDATE notify_deliveries SET status = 'FAILED', next_attempt_at = 0, lease_token = '',
			last_error = $2, updated_at = $3 WHERE endpoint_id = $1 AND status = 'PENDING'`,
			endpointID, dbText("endpoint "+quote(endpointID)+" deleted", maxError), now().UnixNano())
		if err != nil {
			return err
		}
		return s.audit(ctx, "webhook.delete", "webhook", endpointID, before.SpaceID, endpointView(before), nil)
	})
}

// revealedEndpoint is an endpoint with its secrets decrypted, for sending.
type revealedEndpoint struct {
	Endpoint
	masker *secrets.Masker // masks the URL, secret and header values
}

// revealed reads an endpoint with its secrets decrypted.
func (s *Service) revealed(ctx context.Context, endpointID string) (revealedEndpoint, error) {
	var r revealedEndpoint
	var urlSealed, headersSealed string
	row := s.db.QueryRow(ctx, `SELECT `+endpointCols+`, url_sealed, headers_sealed FROM notify_endpoints WHERE id = $1`, endpointID)
	e, secretSealed, err := scanEndpoint(row, &urlSealed, &headersSealed)
	if errors.Is(err, sql.ErrNoRows) {
		return r, errs.E(errs.NotFound, "endpoint %q not found", endpointID)
	}
	if err != nil {
		return r, err
	}
	fail := func(err error) (revealedEndpoint, error) {
		return r, errs.Wrap(errs.Internal, err, "the secrets of endpoint %s cannot be decrypted", endpointID)
	}
	e.URL = ""
	if urlSealed != "" {
		if e.URL, err = s.box.OpenString(urlSealed, aad(endpointID, "url")); err != nil {
			return fail(err)
		}
	}
	if e.Email.Password != "" {
		if e.Email.Password, err = s.box.OpenString(e.Email.Password, aad(endpointID, "smtp_password")); err != nil {
			return fail(err)
		}
	}
	if secretSealed != "" {
		if e.Secret, err = s.box.OpenString(secretSealed, aad(endpointID, "secret")); err != nil {
			return fail(err)
		}
	}
	e.Headers = map[string]string{}
	if headersSealed != "" {
		h, err := s.box.OpenString(headersSealed, aad(endpointID, "headers"))
		if err != nil {
			return fail(err)
		}
		if err := json.Unmarshal([]byte(h), &e.Headers); err != nil {
			return fail(err)
		}
	}
	vals := []string{e.Secret}
	if e.Kind == KindSlack || e.Kind == KindTeams {
		// A webhook URL is not secret (and is shown); a Slack or Teams
		// one is, and a receiver may echo a part of it.
		vals = append(vals, urlSecrets(e.URL)...)
	}
	for _, v := range e.Headers {
		vals = append(vals, headerSecrets(v)...)
	}
	if p := e.Email.Password; p != "" {
		// The password, and the AUTH PLAIN response a server might echo.
		auth := "\x00" + e.Email.Username + "\x00" + p
		vals = append(vals, p, base64.StdEncoding.EncodeToString([]byte(auth)))
	}
	return revealedEndpoint{Endpoint: e, masker: secrets.NewMasker(vals)}, nil
}

// urlSecrets returns the texts of a secret URL to mask: the URL, its path
// and query, the path segments of 12 bytes or more (the tokens of Slack
// and Teams incoming-webhook URLs; shorter ones are words such as
// "services") and the query values of 8 bytes or more (the sig of a Teams
// Workflows URL), so that a receiver echoing only a part of the URL in an
// error does not reveal it.
func urlSecrets(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out = append(out, u.Path, u.EscapedPath(), u.RawQuery)
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 12 {
			out = append(out, seg, url.PathEscape(seg))
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	return out
}

// authSchemes are the HTTP authentication scheme names, which are not
// secret: a header value's first part that is one is not masked.
var authSchemes = map[string]bool{"basic": true, "bearer": true, "digest": true, "token": true, "negotiate": true}

// headerSecrets returns the texts of a header value to mask: the value,
// each of its whitespace- or comma-separated parts (a receiver may echo
// the token of "Bearer <token>" alone) and, for Basic credentials, the
// decoded user:password and each half. The masker ignores those shorter
// than 4 bytes.
func headerSecrets(v string) []string {
	out := []string{v}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for i, p := range parts {
		if !(i == 0 && len(parts) > 1 && authSchemes[strings.ToLower(p)]) {
			out = append(out, p)
		}
		if i+1 < len(parts) && strings.EqualFold(p, "basic") {
			raw := strings.TrimRight(parts[i+1], "=")
			dec, err := base64.RawStdEncoding.DecodeString(raw)
			if err != nil {
				dec, err = base64.RawURLEncoding.DecodeString(raw)
			}
			if err == nil && len(dec) > 0 {
				creds := string(dec)
				out = append(out, creds)
				if user, pass, ok := strings.Cut(creds, ":"); ok {
					out = append(out, user, pass)
				}
			}
		}
	}
	return out
}
