package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/jobprocs"
	"github.com/gantry-iac/gantry/internal/redact"
	runpkg "github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/server"
	"github.com/gantry-iac/gantry/internal/state"
)

func init() { extraCommands = append(extraCommands, serverCommand) }

func serverCommand() *cobra.Command {
	var cfg server.Config
	var logFormat, logLevel string
	var trustedProxies, denyCIDRs []string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Gantry control plane (API, scheduler, state backend, built-in workers)",
		Long: `Run the Gantry control plane.

With no flags it keeps everything in SQLite under ./gantry-data and runs jobs
on 2 built-in workers. Every flag also reads GANTRY_<FLAG> (for example
GANTRY_DATABASE_URL, GANTRY_ENCRYPTION_KEY, GANTRY_ADMIN_TOKEN), and
GANTRY_<FLAG>_FILE for secrets kept in files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			if cfg.Dev && !cmd.Flags().Changed("data-dir") && os.Getenv("GANTRY_DATA_DIR") == "" {
				cfg.DataDir = ""
			}
			cfg.EncryptionKeyFile = flagFile(cmd.Flags(), "encryption-key")
			if cfg.PolicySamples < 0 || cfg.PolicyTimeoutScale <= 0 || cfg.PolicyTimeoutScale > 100 {
				return fmt.Errorf("--policy-samples must be >= 0 and --policy-timeout-scale in (0, 100]")
			}
			if cfg.TrustedProxies, err = httpx.ParsePrefixes(trustedProxies); err != nil {
				return fmt.Errorf("--trusted-proxies: %v", err)
			}
			if cfg.NotificationDenyCIDRs, err = httpx.ParsePrefixes(denyCIDRs); err != nil {
				return fmt.Errorf("--notification-deny-cidrs: %v", err)
			}
			if cfg.OIDCIssuer != "" && (cfg.OIDCClientID == "" || cfg.OIDCClientSecret == "") {
				return fmt.Errorf("--oidc-issuer needs --oidc-client-id and --oidc-client-secret (or GANTRY_OIDC_CLIENT_SECRET_FILE)")
			}
			if cfg.AzureGraphClientID != "" && (cfg.AzureGraphTenantID == "" || cfg.AzureGraphClientSecret == "") {
				return fmt.Errorf("--azure-graph-client-id needs --azure-graph-tenant-id and --azure-graph-client-secret (or GANTRY_AZURE_GRAPH_CLIENT_SECRET_FILE)")
			}
			if cfg.AzureSecretRotation < time.Second {
				return fmt.Errorf("--azure-secret-rotation must be at least 1s")
			}
			if cfg.TokenLifetime < time.Minute || cfg.TokenLifetime > 12*time.Hour {
				return fmt.Errorf("--token-lifetime must be from 1m to 12h")
			}
			if err := runtoken.CheckSubject(cfg.TokenSubject); err != nil {
				return fmt.Errorf("--token-subject-template: %v", err)
			}
			if cfg.SessionTTL < time.Minute || cfg.CLITokenTTL < time.Minute {
				return fmt.Errorf("--session-ttl and --cli-token-ttl must be at least 1m")
			}
			if cfg.SSOGrantsMaxAge < 0 {
				return fmt.Errorf("--sso-grants-max-age must be >= 0 (0: no limit)")
			}
			if cfg.ScheduleJitter < 0 || cfg.SchedulerInterval < 10*time.Millisecond || cfg.BuiltinDriftRunLimit < 0 {
				return fmt.Errorf("--schedule-jitter and --builtin-drift-run-limit must be >= 0 and --scheduler-interval >= 10ms")
			}
			if cfg.MaxRequestMemory < 1<<20 || cfg.MaxRunLogSize < 1<<20 {
				return fmt.Errorf("--max-request-memory and --max-run-log-size must be at least 1MiB")
			}
			if cfg.MaxStateSize < 1<<20 || cfg.MaxStateSize > state.MaxSizeLimit {
				return fmt.Errorf("--max-state-size must be from 1MiB to %s", bytesize.Format(state.MaxSizeLimit))
			}
			if err := checkMirrors(cfg.OpenTofuMirror, cfg.TerraformMirror); err != nil {
				return err
			}
			if cfg.BuiltinWorkers < 0 || cfg.WorkerTimeout < time.Second/2 {
				return fmt.Errorf("--builtin-workers must be >= 0 and --worker-timeout >= 500ms")
			}
			log.Info("configuration", configAttrs(cfg)...)
			warnSecretFlags(cmd.Flags(), cfg, log)
			// The built-in workers' jobs run as this process's user: keep
			// them from reading its memory and environment (the encryption
			// key, the database's password...), and what they start from
			// outliving them (package jobprocs).
			if err := hideSecrets(); err != nil {
				log.Warn("could not hide this process's memory and environment from the runs of the built-in workers", "err", err)
			}
			// Read: nothing this process starts (git) inherits them.
			dropGantryEnv()
			if cfg.BuiltinWorkers > 0 {
				jobprocs.Subreap(log)
			}
			return server.Run(cmd.Context(), cfg, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", "./gantry-data", "data directory (SQLite database, encryption key, admin token)")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "empty for SQLite in the data directory, or postgres://... for PostgreSQL")
	f.IntVar(&cfg.BuiltinWorkers, "builtin-workers", 2, "number of built-in workers (0: none)")
	f.BoolVar(&cfg.Dev, "dev", false, "development mode: a temporary data directory unless --data-dir is given")
	f.BoolVar(&cfg.Demo, "demo", false, "create the demo space and stack from examples/demo and deploy it")
	f.StringVar(&cfg.EncryptionKey, "encryption-key", "", "AES-256 key (64 hex characters or base64) for data at rest; default: generated into <data-dir>/encryption.key")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "pre-seed the first admin API token instead of generating one")
	f.DurationVar(&cfg.WorkerTimeout, "worker-timeout", 60*time.Second, "a run whose worker sent no heartbeat for this long fails")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 2*time.Minute, "on SIGTERM, how long running jobs may take to finish")
	f.DurationVar(&cfg.CheckoutTimeout, "checkout-timeout", 10*time.Minute, "a built-in worker fails a run whose code it could not check out within this long")
	f.StringVar(&cfg.ToolsDir, "tools-dir", "", "where downloaded tool versions are kept (default <data-dir>/tools)")
	f.StringVar(&cfg.OpenTofuMirror, "opentofu-mirror", "", "base URL of OpenTofu releases (default: the official GitHub releases)")
	f.StringVar(&cfg.TerraformMirror, "terraform-mirror", "", "base URL of Terraform releases (default: releases.hashicorp.com)")
	f.StringVar(&cfg.DebugListen, "debug-listen", "", "serve Go's profiler (/debug/pprof) on this address, e.g. 127.0.0.1:6060 (off by default)")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the address users reach the server at, for links in notifications (default: the listen address)")
	f.IntVar(&cfg.PolicySamples, "policy-samples", 10, "keep the newest N evaluations of every policy as samples for simulate and replay (0: only those a policy asks for)")
	f.Float64Var(&cfg.PolicyTimeoutScale, "policy-timeout-scale", 1, "multiply the policy evaluation timeouts (plan 45s, push and notification 10s, others 5s)")
	f.StringVar(&cfg.OIDCIssuer, "oidc-issuer", "", "single sign-on: the OpenID Provider's issuer URL (off when empty)")
	f.StringVar(&cfg.OIDCClientID, "oidc-client-id", "", "single sign-on: Gantry's client id at the provider")
	f.StringVar(&cfg.OIDCClientSecret, "oidc-client-secret", "", "single sign-on: Gantry's client secret (prefer GANTRY_OIDC_CLIENT_SECRET_FILE)")
	f.StringSliceVar(&cfg.OIDCScopes, "oidc-scopes", []string{"openid", "profile", "email", "groups"}, "single sign-on: scopes asked for")
	f.StringVar(&cfg.OIDCGroupsClaim, "oidc-groups-claim", "groups", "single sign-on: the ID token claim holding the user's groups")
	f.StringVar(&cfg.TokenIssuer, "token-issuer", "", "iss of the runs' OIDC tokens, where /.well-known/openid-configuration is served (default: --public-url, else the listen address)")
	f.StringVar(&cfg.TokenAudience, "token-audience", "", "default aud of the runs' OIDC tokens (default: the issuer's host name)")
	f.StringVar(&cfg.TokenSubject, "token-subject-template", "space:{spaceId}:stack:{stackId}:run_type:{runType}:scope:{scope}", "sub of the runs' OIDC tokens; placeholders {spaceId} {spacePath} {stackId} {runId} {runType} {scope}")
	f.DurationVar(&cfg.TokenLifetime, "token-lifetime", time.Hour, "how long a run's OIDC token is valid")
	f.StringVar(&cfg.TokenAlg, "token-signing-alg", "RS256", "algorithm of new token signing keys: RS256 or ES256")
	f.StringVar(&cfg.AzureGraphTenantID, "azure-graph-tenant-id", "", "Azure managed integrations: the tenant of the server's Microsoft Graph credential")
	f.StringVar(&cfg.AzureGraphClientID, "azure-graph-client-id", "", "Azure managed integrations: the application Gantry uses to manage client secrets through Microsoft Graph (off when empty)")
	f.StringVar(&cfg.AzureGraphClientSecret, "azure-graph-client-secret", "", "its client secret (prefer GANTRY_AZURE_GRAPH_CLIENT_SECRET_FILE)")
	f.StringVar(&cfg.AzureAuthority, "azure-authority", "https://login.microsoftonline.com", "Microsoft Entra's authority for that credential")
	f.StringVar(&cfg.AzureGraphEndpoint, "azure-graph-endpoint", "https://graph.microsoft.com", "Microsoft Graph's address")
	f.DurationVar(&cfg.AzureSecretRotation, "azure-secret-rotation", 24*time.Hour, "how often managed Azure client secrets are rotated (the previous one is removed after twice this)")
	f.StringSliceVar(&denyCIDRs, "notification-deny-cidrs", nil, "addresses or CIDR ranges notification deliveries (webhooks, Slack, Teams, email) may not connect to, e.g. 127.0.0.0/8,10.0.0.0/8 (link-local and cloud metadata addresses are always refused)")
	f.StringSliceVar(&trustedProxies, "trusted-proxies", nil, "addresses or CIDR ranges of reverse proxies whose X-Forwarded-For names the client (audit trail, brute-force throttle); none by default")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", 12*time.Hour, "how long a browser session lasts")
	f.DurationVar(&cfg.CLITokenTTL, "cli-token-ttl", 7*24*time.Hour, `how long a token from "gantry login --sso" lasts`)
	f.DurationVar(&cfg.SSOGrantsMaxAge, "sso-grants-max-age", 30*24*time.Hour, "a user's own API keys keep what single sign-on granted (IdP groups, login policy) only this long after the user's last sign-in; then only roles bound to the user apply until they sign in again (0: no limit)")
	f.DurationVar(&cfg.ScheduleJitter, "schedule-jitter", 2*time.Minute, "spread schedules due at the same time (drift detection of many stacks on one cron expression) over this window; never more than half the time to a schedule's next due time (0: no spread)")
	f.DurationVar(&cfg.SchedulerInterval, "scheduler-interval", time.Second, "how often the scheduler looks for due schedules")
	f.IntVar(&cfg.BuiltinDriftRunLimit, "builtin-drift-run-limit", 0, "at most this many drift detection runs of the built-in pool at once; due ones beyond are skipped with a note (0: no limit)")
	cfg.MaxRequestMemory, cfg.MaxStateSize, cfg.MaxRunLogSize = 512<<20, state.DefaultMaxSize, runpkg.DefaultLogLimit
	f.Var(sizeValue{&cfg.MaxRequestMemory}, "max-request-memory", "memory the large requests and answers (states, plans, artifacts) may hold at once; past it they wait their turn (e.g. 512MiB, 2GiB)")
	f.Var(sizeValue{&cfg.MaxStateSize}, "max-state-size", "largest state document accepted, at most 1000MiB (a larger state is refused with 413)")
	f.Var(sizeValue{&cfg.MaxRunLogSize}, "max-run-log-size", "how much of a run's log is stored; past it, output is dropped (the run goes on) and the log says how much")
	f.DurationVar(&cfg.RunRetention, "run-retention", 0, "delete the runs that ended longer ago than this (e.g. 720h), with their logs and plans; the newest of each type per stack and others stay (0: keep every run; at least 1h)")
	f.IntVar(&cfg.StateRetentionVersions, "state-retention-versions", 0, "keep the newest N state versions of each stack, the current one always (0: keep every version)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error")
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json")
}

// configAttrs is the effective configuration with secrets redacted.
func configAttrs(c server.Config) []any {
	set := func(s string) string {
		if s == "" {
			return ""
		}
		return "(set)"
	}
	return []any{"listen", c.Listen, "data_dir", c.DataDir, "database_url", db.RedactURL(c.DatabaseURL), "builtin_workers", c.BuiltinWorkers,
		"dev", c.Dev, "demo", c.Demo, "encryption_key", set(c.EncryptionKey), "admin_token", set(c.AdminToken),
		"worker_timeout", c.WorkerTimeout, "shutdown_timeout", c.ShutdownTimeout, "checkout_timeout", c.CheckoutTimeout, "tools_dir", c.ToolsDir,
		"opentofu_mirror", redact.URL(c.OpenTofuMirror), "terraform_mirror", redact.URL(c.TerraformMirror), "debug_listen", c.DebugListen,
		"public_url", c.PublicURL, "policy_samples", c.PolicySamples, "policy_timeout_scale", c.PolicyTimeoutScale,
		"oidc_issuer", c.OIDCIssuer, "oidc_client_id", c.OIDCClientID, "oidc_client_secret", set(c.OIDCClientSecret),
		"oidc_groups_claim", c.OIDCGroupsClaim, "trusted_proxies", fmt.Sprint(c.TrustedProxies), "notification_deny_cidrs", fmt.Sprint(c.NotificationDenyCIDRs),
		"azure_graph_client_id", c.AzureGraphClientID, "azure_graph_client_secret", set(c.AzureGraphClientSecret), "azure_secret_rotation", c.AzureSecretRotation,
		"token_issuer", c.TokenIssuer, "token_audience", c.TokenAudience, "token_lifetime", c.TokenLifetime, "token_signing_alg", c.TokenAlg, "session_ttl", c.SessionTTL, "cli_token_ttl", c.CLITokenTTL, "sso_grants_max_age", c.SSOGrantsMaxAge,
		"max_request_memory", c.MaxRequestMemory, "max_state_size", c.MaxStateSize, "max_run_log_size", c.MaxRunLogSize,
		"run_retention", c.RunRetention, "state_retention_versions", c.StateRetentionVersions}
}

// sizeValue is a flag of a size in bytes, written as people do: 512MiB,
// 2GiB, 100MB, 1048576 (see package bytesize).
type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strings.ReplaceAll(bytesize.Format(*v.p), " ", "")
}

func (v sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v sizeValue) Type() string { return "size" }

// dropGantryEnv removes Gantry's own variables (GANTRY_*, read into the
// configuration) from this process's environment, so that the processes
// it starts for itself (git), readable by the runs of the same user, do
// not carry them. (The runs never get them: see worker.inheritedEnv.)
func dropGantryEnv() {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "GANTRY_") {
			_ = os.Unsetenv(name)
		}
	}
}

// warnSecretFlags warns of secrets given on the command line, which every
// process of the host can read in /proc/<pid>/cmdline, the runs of the
// built-in workers included (a flag set from its GANTRY_ variable is not
// on the command line).
func warnSecretFlags(fs *pflag.FlagSet, cfg server.Config, log *slog.Logger) {
	onCommandLine := func(name string) bool {
		f := fs.Lookup(name)
		env := envName(name)
		return f != nil && f.Changed && os.Getenv(env) == "" && os.Getenv(env+"_FILE") == ""
	}
	for _, name := range []string{"admin-token", "encryption-key", "oidc-client-secret", "azure-graph-client-secret"} {
		if onCommandLine(name) {
			log.Warn("a secret is on the command line, which every process of this host can read (/proc/<pid>/cmdline), the built-in workers' runs included: pass it in its environment variable instead", "flag", "--"+name, "variable", envName(name))
		}
	}
	if onCommandLine("database-url") {
		if u, err := url.Parse(cfg.DatabaseURL); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				log.Warn("the database password is on the command line, which every process of this host can read (/proc/<pid>/cmdline), the built-in workers' runs included: pass the URL in GANTRY_DATABASE_URL instead", "flag", "--database-url")
			}
		}
	}
}
