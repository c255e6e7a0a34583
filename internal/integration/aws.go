package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/gantry-iac/gantry/internal/errs"
)

// AWS integration settings.
const (
	AWSRoleARN         = "role_arn"         // required
	AWSDuration        = "duration_seconds" // 900-43200, default 3600
	AWSRegion          = "region"           // optional: AWS_REGION / AWS_DEFAULT_REGION
	AWSMode            = "mode"             // web_identity (default) or assume_role
	AWSAudience        = "audience"         // web_identity: aud of the token, default sts.amazonaws.com
	AWSExternalID      = "external_id"      // assume_role: "true" sends ExternalId <account>@<integration>@<stack>@<read|write>
	AWSAccount         = "account"          // the account name in the ExternalId, default "gantry"
	AWSSessionTags     = "session_tags"     // assume_role: "true" tags the session with run, stack and space
	AWSSTSEndpoint     = "sts_endpoint"     // optional: another STS endpoint (regional, or a test's)
	AWSModeWebIdentity = "web_identity"
	AWSModeAssumeRole  = "assume_role"
)

var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+$`)

// validRoleARN reports whether arn is an IAM role ARN whose path and name
// take at most 512 bytes (checked apart: {1,512} would compile to a
// regular expression of hundreds of KiB).
func validRoleARN(arn string) bool {
	return roleARN.MatchString(arn) && len(arn)-strings.Index(arn, ":role/")-len(":role/") <= 512
}

// AWSMinter mints AWS credentials with STS, through the official SDK:
// AssumeRoleWithWebIdentity with the run's OIDC token (no AWS credentials
// on the server), or AssumeRole with the server's own credentials (the
// SDK's default chain) and an ExternalId naming the stack.
type AWSMinter struct {
	// HTTPClient, if set, is the SDK's HTTP client.
	HTTPClient *http.Client
}

// Validate checks an AWS integration's settings.
func (m *AWSMinter) Validate(cfg map[string]string) error {
	known := map[string]bool{AWSRoleARN: true, AWSDuration: true, AWSRegion: true, AWSMode: true, AWSAudience: true,
		AWSExternalID: true, AWSAccount: true, AWSSessionTags: true, AWSSTSEndpoint: true}
	for k := range cfg {
		if !known[k] {
			return errs.E(errs.Invalid, "unknown AWS setting %q (known: role_arn, duration_seconds, region, mode, audience, external_id, account, session_tags, sts_endpoint)", k)
		}
	}
	if !validRoleARN(cfg[AWSRoleARN]) {
		return errs.E(errs.Invalid, "role_arn %q is not an IAM role ARN (arn:aws:iam::123456789012:role/name)", cfg[AWSRoleARN])
	}
	if d := cfg[AWSDuration]; d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return errs.E(errs.Invalid, "duration_seconds must be from 900 to 43200")
		}
	}
	switch cfg[AWSMode] {
	case "", AWSModeWebIdentity, AWSModeAssumeRole:
	default:
		return errs.E(errs.Invalid, "mode must be web_identity or assume_role")
	}
	for _, k := range []string{AWSExternalID, AWSSessionTags} {
		if v := cfg[k]; v != "" && v != "true" && v != "false" {
			return errs.E(errs.Invalid, "%s must be true or false", k)
		}
	}
	if e := cfg[AWSSTSEndpoint]; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errs.E(errs.Invalid, "sts_endpoint must be an http(s) URL")
		}
	}
	if r := cfg[AWSRegion]; r != "" && !regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`).MatchString(r) {
		return errs.E(errs.Invalid, "region %q is not an AWS region", r)
	}
	return nil
}

func duration(cfg map[string]string) int32 {
	if n, err := strconv.Atoi(cfg[AWSDuration]); err == nil {
		return int32(n)
	}
	return 3600
}

// ExternalID is the ExternalId Gantry sends for an assume_role
// integration: <account>@<integration>@<stack>@<read|write>.
func ExternalID(in Integration, stackID, scope string) string {
	account := in.Config[AWSAccount]
	if account == "" {
		account = "gantry"
	}
	return account + "@" + in.ID + "@" + stackID + "@" + scope
}

func (m *AWSMinter) client(ctx context.Context, in Integration, anonymous bool) (*sts.Client, error) {
	region := in.Config[AWSRegion]
	if region == "" {
		region = "us-east-1"
	}
	opts := func(o *sts.Options) {
		o.Region = region
		if e := in.Config[AWSSTSEndpoint]; e != "" {
			o.BaseEndpoint = aws.String(e)
		}
		if m.HTTPClient != nil {
			o.HTTPClient = m.HTTPClient
		}
		o.RetryMaxAttempts = 2
	}
	if anonymous {
		return sts.New(sts.Options{Credentials: aws.AnonymousCredentials{}}, opts), nil
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, errs.E(errs.Unavailable, "integration %s: the server's own AWS credentials cannot be loaded: %v", in.ID, err)
	}
	return sts.NewFromConfig(cfg, opts), nil
}

// Mint assumes the integration's role for the run.
func (m *AWSMinter) Mint(ctx context.Context, in Integration, r Request) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	role := in.Config[AWSRoleARN]
	var creds *ststypes.Credentials
	var err error
	op := "AssumeRoleWithWebIdentity"
	if in.Config[AWSMode] == AWSModeAssumeRole {
		op = "AssumeRole"
		c, cerr := m.client(ctx, in, false)
		if cerr != nil {
			return Credentials{}, cerr
		}
		input := &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String(r.RunID), DurationSeconds: aws.Int32(duration(in.Config))}
		if in.Config[AWSExternalID] == "true" {
			input.ExternalId = aws.String(ExternalID(in, r.StackID, r.Scope))
		}
		if in.Config[AWSSessionTags] == "true" {
			input.Tags = []ststypes.Tag{{Key: aws.String("gantry:run"), Value: aws.String(r.RunID)},
				{Key: aws.String("gantry:stack"), Value: aws.String(r.StackID)}, {Key: aws.String("gantry:space"), Value: aws.String(r.SpaceID)}}
		}
		var out *sts.AssumeRoleOutput
		if out, err = c.AssumeRole(ctx, input); err == nil {
			creds = out.Credentials
		}
	} else {
		aud := in.Config[AWSAudience]
		if aud == "" {
			aud = "sts.amazonaws.com"
		}
		tok, terr := r.Token(ctx, aud)
		if terr != nil {
			return Credentials{}, terr
		}
		c, _ := m.client(ctx, in, true)
		var out *sts.AssumeRoleWithWebIdentityOutput
		out, err = c.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(role),
			RoleSessionName: aws.String(r.RunID), WebIdentityToken: aws.String(tok), DurationSeconds: aws.Int32(duration(in.Config))})
		if err == nil {
			creds = out.Credentials
		}
	}
	if err != nil {
		if kind := cloudKind(awsStatus(err)); kind != errs.Invalid {
			return Credentials{}, errs.E(kind, "integration %s: AWS STS could not answer %s for %s: %s", in.ID, op, role, awsMessage(err))
		}
		return Credentials{}, errs.E(errs.Invalid, "integration %s: AWS refused %s for %s: %s", in.ID, op, role, awsMessage(err))
	}
	if creds == nil || creds.AccessKeyId == nil || creds.SecretAccessKey == nil || creds.SessionToken == nil {
		return Credentials{}, errs.E(errs.Unavailable, "integration %s: AWS %s answered without credentials", in.ID, op)
	}
	env := map[string]Var{
		"AWS_ACCESS_KEY_ID":     secret(*creds.AccessKeyId),
		"AWS_SECRET_ACCESS_KEY": secret(*creds.SecretAccessKey),
		"AWS_SESSION_TOKEN":     secret(*creds.SessionToken),
		"AWS_SECURITY_TOKEN":    secret(*creds.SessionToken),
	}
	if reg := in.Config[AWSRegion]; reg != "" {
		env["AWS_REGION"], env["AWS_DEFAULT_REGION"] = setting(reg), setting(reg)
	}
	c := Credentials{Env: env, Identity: role}
	if creds.Expiration != nil {
		c.Expires = *creds.Expiration
	}
	return c, nil
}

// awsMessage is the error code and message AWS gave (AccessDenied: ...).
func awsMessage(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode() + ": " + api.ErrorMessage()
	}
	return err.Error()
}

// awsStatus is the HTTP status of AWS's answer (0: none came).
func awsStatus(err error) int {
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
}

// TrustPolicy returns the IAM trust policy to put on the role: for
// web_identity, trust Gantry's OIDC provider for the stack's subjects (read
// and write); for assume_role, trust the server's AWS account with the
// stack's ExternalIds.
func TrustPolicy(in Integration, issuer, stackSubjectRead, stackSubjectWrite, serverPrincipal, stackID string) (map[string]any, error) {
	m := roleARN.FindStringSubmatch(in.Config[AWSRoleARN])
	if m == nil {
		return nil, fmt.Errorf("role_arn %q", in.Config[AWSRoleARN])
	}
	account := m[1]
	if in.Config[AWSMode] == AWSModeAssumeRole {
		stmt := map[string]any{"Effect": "Allow", "Action": []string{"sts:AssumeRole", "sts:TagSession"},
			"Principal": map[string]any{"AWS": serverPrincipal}}
		if in.Config[AWSExternalID] == "true" {
			stmt["Condition"] = map[string]any{"StringEquals": map[string]any{"sts:ExternalId": []string{
				ExternalID(in, stackID, "read"), ExternalID(in, stackID, "write")}}}
		}
		return map[string]any{"Version": "2012-10-17", "Statement": []any{stmt}}, nil
	}
	host := strings.TrimPrefix(strings.TrimPrefix(issuer, "https://"), "http://")
	aud := in.Config[AWSAudience]
	if aud == "" {
		aud = "sts.amazonaws.com"
	}
	return map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect":    "Allow",
		"Action":    "sts:AssumeRoleWithWebIdentity",
		"Principal": map[string]any{"Federated": "arn:aws:iam::" + account + ":oidc-provider/" + host},
		"Condition": map[string]any{
			"StringEquals": map[string]any{host + ":aud": aud},
			"StringLike":   map[string]any{host + ":sub": []string{stackSubjectRead, stackSubjectWrite}},
		},
	}}}, nil
}

// Audience is the web identity token's aud ("" in assume_role mode).
func (m *AWSMinter) Audience(cfg map[string]string) string {
	if cfg[AWSMode] == AWSModeAssumeRole {
		return ""
	}
	if a := cfg[AWSAudience]; a != "" {
		return a
	}
	return "sts.amazonaws.com"
}
