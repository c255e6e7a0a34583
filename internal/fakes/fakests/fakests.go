// Package fakests is a test double of AWS STS for Gantry's tests: it
// speaks STS's documented Query API (form-encoded POST, Version
// 2011-06-15, XML answers and errors) and checks what STS checks:
//
//   - AssumeRoleWithWebIdentity: the token's signature against the
//     issuer's JWKS fetched over HTTP (as IAM does for an OIDC provider),
//     its issuer, audience and expiry, and the role's trust condition on
//     the token's sub (StringLike, * wildcards);
//   - AssumeRole: a valid SigV4 signature by a known access key, and the
//     role's ExternalId condition.
//
// It never runs in production: only tests import it.
package fakests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/coreos/go-oidc/v3/oidc"
)

// Role is a role the fake knows, with its trust policy's conditions.
type Role struct {
	ARN string
	// Web identity: the OIDC provider's issuer and audience, and the sub
	// patterns allowed (StringLike).
	Issuer, Audience string
	Subjects         []string
	// AssumeRole: the access key allowed to assume it, and the ExternalIds
	// allowed (none: no condition).
	AccessKeyID string
	ExternalIDs []string
}

// Issued is one set of credentials handed out.
type Issued struct {
	Action, Role, Session, Subject, ExternalID string
	AccessKeyID, SecretAccessKey, SessionToken string
	Tags                                       map[string]string
}

// STS is the fake service; use it as an http.Handler.
type STS struct {
	// Secrets are the secret keys of the access keys allowed to sign.
	Secrets map[string]string
	Region  string

	mu     sync.Mutex
	roles  map[string]Role
	issued []Issued
}

// New returns a fake with the given roles.
func New(region string, roles ...Role) *STS {
	s := &STS{Region: region, Secrets: map[string]string{}, roles: map[string]Role{}}
	for _, r := range roles {
		s.roles[r.ARN] = r
	}
	return s
}

// Issued returns the credentials handed out so far.
func (s *STS) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

type stsError struct {
	status        int
	code, message string
}

func fail(status int, code, format string, args ...any) *stsError {
	return &stsError{status, code, fmt.Sprintf(format, args...)}
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		writeErr(w, fail(400, "InvalidAction", "POST a form"))
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Version") != "2011-06-15" {
		writeErr(w, fail(400, "InvalidParameterValue", "Version must be 2011-06-15"))
		return
	}
	var res any
	var serr *stsError
	switch form.Get("Action") {
	case "AssumeRoleWithWebIdentity":
		res, serr = s.webIdentity(r.Context(), form)
	case "AssumeRole":
		res, serr = s.assumeRole(r, body, form)
	default:
		serr = fail(400, "InvalidAction", "unknown action %q", form.Get("Action"))
	}
	if serr != nil {
		writeErr(w, serr)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(res)
}

func writeErr(w http.ResponseWriter, e *stsError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
		Type      string   `xml:"Error>Type"`
		Code      string   `xml:"Error>Code"`
		Message   string   `xml:"Error>Message"`
		RequestID string   `xml:"RequestId"`
	}{Type: "Sender", Code: e.code, Message: e.message, RequestID: random(8)})
}

type credentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

func (s *STS) common(form url.Values) (Role, int, *stsError) {
	s.mu.Lock()
	role, ok := s.roles[form.Get("RoleArn")]
	s.mu.Unlock()
	if !ok {
		return Role{}, 0, fail(403, "AccessDenied", "Not authorized to perform sts:%s on %s", form.Get("Action"), form.Get("RoleArn"))
	}
	sess := form.Get("RoleSessionName")
	if len(sess) < 2 || len(sess) > 64 {
		return Role{}, 0, fail(400, "ValidationError", "RoleSessionName must have 2 to 64 characters")
	}
	dur := 3600
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return Role{}, 0, fail(400, "ValidationError", "DurationSeconds must be from 900 to 43200")
		}
		dur = n
	}
	return role, dur, nil
}

func (s *STS) mint(action string, role Role, form url.Values, dur int, subject, externalID string, tags map[string]string) (credentials, assumedUser) {
	c := credentials{AccessKeyID: "ASIA" + random(8), SecretAccessKey: random(20), SessionToken: "FwoG" + random(40),
		Expiration: time.Now().Add(time.Duration(dur) * time.Second).UTC().Format(time.RFC3339)}
	s.mu.Lock()
	s.issued = append(s.issued, Issued{Action: action, Role: role.ARN, Session: form.Get("RoleSessionName"), Subject: subject,
		ExternalID: externalID, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Tags: tags})
	s.mu.Unlock()
	name := path.Base(role.ARN)
	account := strings.Split(role.ARN, ":")[4]
	return c, assumedUser{Arn: "arn:aws:sts::" + account + ":assumed-role/" + name + "/" + form.Get("RoleSessionName"),
		AssumedRoleID: "AROA" + random(8) + ":" + form.Get("RoleSessionName")}
}

func (s *STS) webIdentity(ctx context.Context, form url.Values) (any, *stsError) {
	role, dur, serr := s.common(form)
	if serr != nil {
		return nil, serr
	}
	if role.Issuer == "" {
		return nil, fail(403, "AccessDenied", "role %s does not trust a web identity provider", role.ARN)
	}
	provider, err := oidc.NewProvider(ctx, role.Issuer)
	if err != nil {
		return nil, fail(400, "IDPCommunicationError", "could not reach the OIDC provider %s: %v", role.Issuer, err)
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: role.Audience}).Verify(ctx, form.Get("WebIdentityToken"))
	if err != nil {
		return nil, fail(400, "InvalidIdentityToken", "%v", err)
	}
	allowed := false
	for _, p := range role.Subjects {
		if ok, _ := path.Match(p, tok.Subject); ok {
			allowed = true
		}
	}
	if !allowed {
		return nil, fail(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity (sub %q does not match the role's trust policy)", tok.Subject)
	}
	c, u := s.mint("AssumeRoleWithWebIdentity", role, form, dur, tok.Subject, "", nil)
	return struct {
		XMLName  xml.Name    `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
		Subject  string      `xml:"AssumeRoleWithWebIdentityResult>SubjectFromWebIdentityToken"`
		Audience string      `xml:"AssumeRoleWithWebIdentityResult>Audience"`
		User     assumedUser `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser"`
		Creds    credentials `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
		Provider string      `xml:"AssumeRoleWithWebIdentityResult>Provider"`
		ReqID    string      `xml:"ResponseMetadata>RequestId"`
	}{Subject: tok.Subject, Audience: role.Audience, User: u, Creds: c, Provider: role.Issuer, ReqID: random(8)}, nil
}

// assumeRole checks the SigV4 signature by re-signing the request with the
// access key's secret at the request's own time, then the ExternalId.
func (s *STS) assumeRole(r *http.Request, body []byte, form url.Values) (any, *stsError) {
	auth := r.Header.Get("Authorization")
	const prefix = "AWS4-HMAC-SHA256 Credential="
	if !strings.HasPrefix(auth, prefix) {
		return nil, fail(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	cred := strings.SplitN(strings.TrimPrefix(auth, prefix), "/", 2)[0]
	secret, ok := s.Secrets[cred]
	if !ok {
		return nil, fail(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(at) > 5*time.Minute || time.Until(at) > 5*time.Minute {
		return nil, fail(403, "SignatureDoesNotMatch", "bad or stale X-Amz-Date")
	}
	// Re-sign exactly the headers the client signed (SignedHeaders), as
	// AWS does: the transport may add others after signing.
	check, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), strings.NewReader(string(body)))
	check.ContentLength = int64(len(body))
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	for _, h := range strings.Split(signed, ";") {
		if h == "host" || h == "x-amz-date" || h == "content-length" {
			continue
		}
		for _, v := range r.Header.Values(h) {
			check.Header.Add(h, v)
		}
	}
	sum := sha256Hex(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")},
		check, sum, "sts", s.Region, at)
	if err != nil || signature(check.Header.Get("Authorization")) != signature(auth) {
		return nil, fail(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
	}
	role, dur, serr := s.common(form)
	if serr != nil {
		return nil, serr
	}
	if role.AccessKeyID != cred {
		return nil, fail(403, "AccessDenied", "User %s is not authorized to perform sts:AssumeRole on %s", cred, role.ARN)
	}
	ext := form.Get("ExternalId")
	if len(role.ExternalIDs) > 0 {
		okExt := false
		for _, e := range role.ExternalIDs {
			okExt = okExt || e == ext
		}
		if !okExt {
			return nil, fail(403, "AccessDenied", "Not authorized to perform sts:AssumeRole on %s (ExternalId %q)", role.ARN, ext)
		}
	}
	tags := map[string]string{}
	for i := 1; form.Get(fmt.Sprintf("Tags.member.%d.Key", i)) != ""; i++ {
		tags[form.Get(fmt.Sprintf("Tags.member.%d.Key", i))] = form.Get(fmt.Sprintf("Tags.member.%d.Value", i))
	}
	c, u := s.mint("AssumeRole", role, form, dur, "", ext, tags)
	return struct {
		XMLName xml.Name    `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
		User    assumedUser `xml:"AssumeRoleResult>AssumedRoleUser"`
		Creds   credentials `xml:"AssumeRoleResult>Credentials"`
		ReqID   string      `xml:"ResponseMetadata>RequestId"`
	}{User: u, Creds: c, ReqID: random(8)}, nil
}

func signature(auth string) string {
	_, sig, _ := strings.Cut(auth, "Signature=")
	return sig
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
