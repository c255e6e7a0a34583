// Package server is the composition root of `gantry server`: it builds the
// services, starts the HTTP server, the built-in workers and the reaper, and
// shuts them down in order.
package server

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/release"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// batchEvents adds to keys what is waiting in events, without duplicates,
// while the payload stays well under PostgreSQL's 8000-byte limit.
func batchEvents(keys []string, events chan []string) []string {
	seen := map[string]bool{}
	out, size := keys[:0:0], 0
	add := func(ks []string) {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
				size += len(k) + 1
			}
		}
	}
	add(keys)
	for size < 4000 {
		select {
		case more := <-events:
			add(more)
		default:
			return out
		}
	}
	return out
}

// eventsChannel is the PostgreSQL NOTIFY channel that carries wake-ups
// between replicas.
const eventsChannel = "gantry_events"

// Config is the server's configuration; every field is a flag.
type Config struct {
	Listen          string
	DataDir         string
	DatabaseURL     string
	BuiltinWorkers  int
	Dev             bool
	Demo            bool
	EncryptionKey   string
	AdminToken      string
	WorkerTimeout   time.Duration
	ShutdownTimeout time.Duration
	// CheckoutTimeout bounds a built-in worker's checkout of a run's code
	// (0: worker.DefaultCheckoutTimeout).
	CheckoutTimeout time.Duration
	ToolsDir        string
	OpenTofuMirror  string
	TerraformMirror string
	// DebugListen, if set, serves Go's profiler (/debug/pprof) there: keep
	// it on loopback.
	DebugListen string
	// PublicURL is the address users reach the server at (links in
	// notifications); default: the listen address.
	PublicURL string
	// PolicySamples keeps the newest N evaluations of every policy as
	// samples for simulate and replay (besides those a policy asks for).
	PolicySamples int
	// PolicyTimeoutScale multiplies the per-type policy evaluation timeouts
	// (1 = plan 45s, push and notification 10s, others 5s).
	PolicyTimeoutScale float64
	// OIDC* configure single sign-on (off without an issuer): the
	// provider's issuer URL, Gantry's client id and secret there, the
	// scopes asked for and the claim holding the user's groups.
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCScopes       []string
	OIDCGroupsClaim  string
	// Token* configure the runs' OpenID Connect tokens (package runtoken):
	// the issuer URL (default: the public URL), the default audience
	// (default: its host name), the subject template, the lifetime and the
	// signing algorithm of new keys.
	TokenIssuer, TokenAudience, TokenSubject, TokenAlg string
	TokenLifetime                                      time.Duration
	// AzureGraph* are the server's Microsoft Graph credential for Azure
	// integrations in managed mode (off without a client id);
	// AzureSecretRotation is how often their client secrets are rotated.
	AzureGraphTenantID, AzureGraphClientID, AzureGraphClientSecret string
	AzureAuthority, AzureGraphEndpoint                             string
	AzureSecretRotation                                            time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client (for the audit trail and the brute-force throttle).
	TrustedProxies []netip.Prefix
	// NotificationDenyCIDRs are address ranges notification deliveries may
	// not connect to, on top of the link-local and metadata addresses
	// always refused.
	NotificationDenyCIDRs []netip.Prefix
	// SessionTTL bounds browser sessions; CLITokenTTL the tokens of
	// `gantry login --sso`.
	SessionTTL  time.Duration
	CLITokenTTL time.Duration
	// SSOGrantsMaxAge bounds how long a user's own API keys keep their
	// single sign-on grants without a new sign-in (0: forever).
	SSOGrantsMaxAge time.Duration
	// ScheduleJitter spreads schedules due at the same time over this
	// window (capped at half the time to each schedule's next due time);
	// SchedulerInterval is how often due schedules are looked for;
	// BuiltinDriftRunLimit caps the built-in pool's drift runs at once.
	ScheduleJitter       time.Duration
	SchedulerInterval    time.Duration
	BuiltinDriftRunLimit int
	// MaxRequestMemory bounds the memory that large requests and answers
	// (states, plans, artifacts) hold at once: past it they wait (0: no
	// bound). MaxStateSize is the largest state document accepted (0:
	// state.DefaultMaxSize).
	MaxRequestMemory int64
	MaxStateSize     int64
	// MaxRunLogSize is how much of a run's log is stored (0:
	// run.DefaultLogLimit): past it, output is dropped with a note.
	MaxRunLogSize int64
	// RunRetention deletes the runs that ended longer ago than this (0:
	// keep them all); StateRetentionVersions keeps the newest N state
	// versions of each stack (0: all). See package retention.
	RunRetention           time.Duration
	StateRetentionVersions int
	// EncryptionKeyFile is the file EncryptionKey was read from
	// (GANTRY_ENCRYPTION_KEY_FILE): messages name it and its permissions
	// are checked. Empty when the key was given directly.
	EncryptionKeyFile string
}

// Server is a running control plane.
type Server struct {
	cfg          Config
	log          *slog.Logger
	out          io.Writer
	db           *db.DB
	hub          *events.Hub
	box          *secrets.Box
	spaces       *space.Service
	stacks       *stack.Service
	runs         *run.Service
	state        *state.Service
	keys         *auth.Keys
	registry     *workerapi.Registry
	schedules    *schedule.Service
	scheduler    *schedule.Scheduler
	drift        *drift.Service
	notify       *notify.Service
	policies     *policy.Service
	pools        *workerpool.Service
	audit        *audit.Service
	tokens       *runtoken.Service
	integrations *integration.Service
	budget       *httpx.Budget // large requests' memory (--max-request-memory)
	instance     string
	url          string
	ready        atomic.Bool
	draining     atomic.Bool
	others       atomic.Bool  // another server shares the database (see replicas.go)
	replicas     atomic.Int64 // servers alive on the database, this one included
	published    atomic.Int64 // wake-ups sent to the others
	poolTok      string
	tempDir      bool          // --dev made the data directory: remove it at exit
	unlockDir    func()        // releases the data directory
	closed       chan struct{} // closed when Run returns
	now          func() time.Time
	live         *liveness // since when heartbeats could be recorded (see reaper.go)
	held         sync.Map  // run id -> struct{}: jobs this process's built-in workers run
}

// Run starts the server and blocks until ctx ends, then drains.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	// The configuration's form first, then the address: a server that
	// cannot start stops before it creates anything (a data directory,
	// database or keys; the first admin token is printed only by a start
	// that goes on to serve).
	if err := cfg.check(); err != nil {
		return err
	}
	s := &Server{cfg: cfg, log: log, out: out, hub: events.NewHub(), closed: make(chan struct{}), now: time.Now}
	defer close(s.closed)
	ln, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	err = s.open(ctx)
	if s.unlockDir != nil {
		defer s.unlockDir()
	}
	if err != nil {
		ln.Close()
		if s.db != nil {
			s.db.Close()
		}
		return err
	}
	defer s.db.Close()
	if s.tempDir {
		defer os.RemoveAll(s.cfg.DataDir)
		fmt.Fprintf(out, "Development mode: data in %s, removed at exit.\n", s.cfg.DataDir)
	}
	return s.serve(ctx, ln)
}

// listen binds --listen; a busy address says how to choose another.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listening on %s: %w: another process uses this address; "+
			"choose another with --listen or GANTRY_LISTEN (e.g. GANTRY_LISTEN=127.0.0.1:18483)", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w (set the address with --listen or GANTRY_LISTEN)", addr, err)
	}
	return ln, nil
}

func (s *Server) open(ctx context.Context) error {
	cfg := &s.cfg
	if cfg.DataDir == "" {
		if !cfg.Dev {
			return errors.New("--data-dir is required")
		}
		dir, err := os.MkdirTemp("", "gantry-dev-")
		if err != nil {
			return err
		}
		cfg.DataDir = dir
		s.tempDir = true
	}
	// Absolute, so that every path made from it (tools, workspaces, git
	// cache) still names the same place from a run's own directory.
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("the data directory: %w", err)
	}
	cfg.DataDir = abs
	// The tools too: a run's tool is started from the run's directory.
	if cfg.ToolsDir != "" {
		if cfg.ToolsDir, err = filepath.Abs(cfg.ToolsDir); err != nil {
			return fmt.Errorf("the tools directory: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	// One server per data directory: a second one would take the first's
	// runs for ones a crash left behind, and its workers' registrations.
	unlock, err := dirlock.Lock(cfg.DataDir)
	if errors.Is(err, dirlock.ErrInUse) {
		return fmt.Errorf("data directory %s is in use by another gantry server: stop it first, or give this one its own --data-dir "+
			"(replicas share a PostgreSQL database, not a data directory)", cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("locking the data directory: %w", err)
	}
	s.unlockDir = unlock
	key, err := s.loadKey()
	if err != nil {
		return err
	}
	if s.db, err = db.Open(ctx, cfg.DatabaseURL, cfg.DataDir, s.log); err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	if key == nil {
		if key, err = s.createKey(ctx); err != nil {
			return err
		}
	}
	err = s.checkKey(ctx, key)
	clear(key)
	if err != nil {
		return err
	}
	if s.db.Dialect == db.Postgres {
		// Wake waiters (claims, log followers) on every replica. Sending
		// happens off the request path: waiters here are already woken, and
		// the others also re-read every second.
		events := make(chan []string, 1024)
		s.hub.Publish = func(keys []string) {
			select {
			case events <- keys:
			default: // full: the other replicas fall back to their timers
			}
		}
		go func() {
			for {
				var keys []string
				select {
				case <-s.closed:
					return
				case keys = <-events:
				}
				// What piled up meanwhile goes in the same NOTIFY.
				keys = batchEvents(keys, events)
				if !s.others.Load() {
					continue // nobody else would read it
				}
				s.published.Add(1)
				pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := s.db.Notify(pctx, eventsChannel, s.hub.Payload(keys)); err != nil && !errors.Is(err, sql.ErrConnDone) {
					s.log.Warn("publishing an event failed", "err", err)
				}
				cancel()
			}
		}()
	}
	s.spaces = space.NewService(s.db)
	s.stacks = stack.NewService(s.db, s.box)
	s.runs = run.NewService(s.db, s.hub, s.box, s.log)
	s.runs.LogLimit = s.cfg.MaxRunLogSize
	s.state = state.NewService(s.db, s.box)
	s.state.MaxSize = s.cfg.MaxStateSize
	if s.cfg.MaxRequestMemory > 0 {
		s.budget = httpx.NewBudget(s.cfg.MaxRequestMemory)
	}
	s.schedules = schedule.New(s.db)
	s.schedules.Jitter = s.cfg.ScheduleJitter
	s.drift = drift.New(s.db, s.runs, s.schedules, s.log)
	s.runs.StateSaved = s.state.LastOfRun
	s.runs.OnTerminal = func(ctx context.Context, r run.Run) error {
		if err := s.state.ReleaseRun(ctx, r.ID); err != nil {
			return err
		}
		return s.drift.OnTerminal(ctx, r)
	}
	s.runs.OnPlanEnd = func(ctx context.Context, r run.Run) error { return s.state.ReleaseRun(ctx, r.ID) }
	s.scheduler = s.schedules.NewScheduler(s.runs, s.stacks, s.log.With("component", "scheduler"))
	if s.cfg.SchedulerInterval > 0 {
		s.scheduler.Interval = s.cfg.SchedulerInterval
	}
	s.scheduler.BuiltinDriftRunLimit = s.cfg.BuiltinDriftRunLimit
	s.keys = auth.NewKeys(s.db)
	s.registry = workerapi.NewRegistry(s.db)
	s.notify = notify.NewService(s.db, s.box, s.log)
	s.notify.DenyCIDRs = s.cfg.NotificationDenyCIDRs
	s.pools = workerpool.NewService(s.db, s.spaces, s.hub)
	s.pools.WorkerTimeout = s.cfg.WorkerTimeout
	s.policies = policy.NewService(s.db, s.spaces, s.stacks, s.runs, s.notify, s.hub, s.log)
	s.policies.SampleLast = s.cfg.PolicySamples
	// Alone on the database (SQLite, or PostgreSQL without another live
	// replica), the policy gates trust the type cache: every policy change
	// reaches it as it commits (another replica's, through NOTIFY).
	s.policies.Shared = func() bool { return s.db.Dialect == db.Postgres && s.others.Load() }
	policyContexts := contexts.NewService(s.db, s.box, s.spaces, s.stacks)
	s.policies.RuntimeConfig = runtimeConfig(policyContexts)
	s.policies.Contexts = policyContexts.IDsForStack
	scalePolicyTimeouts(s.cfg.PolicyTimeoutScale)
	s.runs.Policies = s.policies
	// Changes are audited in their own transaction (roles, bindings and
	// keys through the API's stores); the API adds a generic event for a
	// request whose domain recorded none.
	s.audit = audit.NewService(s.db, s.log)
	audit.NewForwarder(s.audit, s.box, s.log) // audit webhooks; started with the notification dispatcher
	s.runs.Audit = s.audit
	s.policies.Audit = s.audit
	hook := s.audit.Hook()
	s.spaces.Audit, s.stacks.Audit, s.state.Audit, s.pools.Audit, s.notify.Audit = hook, hook, hook, hook, hook
	s.schedules.Audit = hook
	s.integrations = integration.New(s.db, s.spaces, s.stacks)
	s.integrations.Audit, s.integrations.Box = hook, s.box
	if s.cfg.AzureGraphClientID != "" {
		s.integrations.Graph = &integration.GraphAdmin{TenantID: s.cfg.AzureGraphTenantID, ClientID: s.cfg.AzureGraphClientID,
			ClientSecret: s.cfg.AzureGraphClientSecret, Authority: s.cfg.AzureAuthority, Endpoint: s.cfg.AzureGraphEndpoint,
			RotateEvery: s.cfg.AzureSecretRotation}
	}
	if err := s.spaces.EnsureRoot(ctx); err != nil {
		return err
	}
	// Repository URLs with a credential stored by an older version are
	// sealed (a stack read before that already hides it).
	if n, err := s.stacks.SealRepositories(ctx); err != nil {
		return fmt.Errorf("sealing the credentials of repository URLs: %w", err)
	} else if n > 0 {
		s.log.Info("sealed the credentials of repository URLs", "stacks", n)
	}
	if err := s.bootstrapToken(ctx); err != nil {
		return err
	}
	if err := s.recoverInstance(ctx); err != nil {
		return err
	}
	s.replicas.Store(1)
	if s.db.Dialect == db.Postgres {
		return s.seeReplicas(ctx, time.Now())
	}
	return nil
}

// bootstrapToken creates the first admin API token on an empty store.
func (s *Server) bootstrapToken(ctx context.Context) error {
	n, err := s.keys.Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		if s.cfg.AdminToken != "" {
			if _, err := s.keys.Authenticate(ctx, s.cfg.AdminToken); err != nil {
				if _, err := s.keys.Create(ctx, "admin (GANTRY_ADMIN_TOKEN)", s.cfg.AdminToken); err != nil {
					// A revoked or expired key is never brought back: start
					// without it, and say so.
					s.log.Warn("the --admin-token (GANTRY_ADMIN_TOKEN) was revoked or has expired: it is not added again; remove it from the configuration or set a new one", "error", err)
				}
			}
		}
		return nil
	}
	token, err := s.keys.Create(ctx, "admin", s.cfg.AdminToken)
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, "admin-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	if s.cfg.AdminToken == "" {
		fmt.Fprintf(s.out, "Created the first admin API token (shown once; also in %s):\n  %s\n", path, token)
	}
	return nil
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() || s.draining.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", s.metricsHandler())
	a := &api.API{Spaces: s.spaces, Stacks: s.stacks, Runs: s.runs, State: s.state, Keys: s.keys, Log: s.log, Head: git.Head,
		Notify: s.notify, Policies: s.policies, Pools: s.pools, BuiltinWorkers: s.cfg.BuiltinWorkers, Audit: s.audit, Schedules: s.schedules, Drift: s.drift,
		Roles: auth.NewRoles(s.db), Users: s.users(), SSO: s.sso(), Integrations: s.integrations, PublicURL: s.cfg.PublicURL, Budget: s.budget,
		TokenSubject: func(ctx context.Context, spaceID, stackID string) (string, string, string) {
			path, err := s.spacePath(ctx, spaceID)
			if err != nil {
				path = spaceID
			}
			sub := func(scope string) string {
				return s.tokens.Subject(runtoken.Run{SpaceID: spaceID, SpacePath: path, StackID: stackID, RunID: "*", RunType: "*", Scope: scope})
			}
			return s.tokens.Config().Issuer, sub(runtoken.Read), sub(runtoken.Write)
		},
		SubjectFor: func(ctx context.Context, spaceID, stackID, runType, scope string) string {
			path, err := s.spacePath(ctx, spaceID)
			if err != nil {
				path = spaceID
			}
			return s.tokens.Subject(runtoken.Run{SpaceID: spaceID, SpacePath: path, StackID: stackID, RunID: "*", RunType: runType, Scope: scope})
		}}
	a.Routes(mux)
	wh := &workerapi.Handler{Runs: s.runs, Stacks: s.stacks, Registry: s.registry, Hub: s.hub, Log: s.log,
		MaxClaimWait: min(30*time.Second, max(s.cfg.WorkerTimeout/3, time.Second)), Draining: s.draining.Load,
		SeenEvery:     min(5*time.Second, s.cfg.WorkerTimeout/10),
		ReportTimeout: reportTimeout(), HeartbeatFailed: s.heartbeatFailed, Budget: s.budget, MaxStateSize: s.state.Limit(),
		PoolForToken: s.poolForToken, PoolKey: s.pools.PublicKey, Tokens: s.tokens, SpacePath: s.spacePath, Integrations: s.integrations,
		AccountName: urlHost(s.cfg.PublicURL)}
	// The runs' OIDC issuer: discovery and keys, without authentication.
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.tokens.Discovery())
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.tokens.JWKS(r.Context())
		if err != nil {
			s.log.Error("serving the JWKS failed", "err", err)
			http.Error(w, "internal error\n", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = w.Write(b)
	})
	a.Contexts = contexts.NewService(s.db, s.box, s.spaces, s.stacks)
	a.Contexts.Audit = s.audit.Hook()
	wh.Contexts = a.Contexts
	wh.Routes(mux)
	ad := httpx.Adapter{Log: s.log}
	return httpx.WithRequestID(httpx.WithClientIP(s.cfg.TrustedProxies, ad.Recover(countRequests(a.Audited(mux)))))
}

// openTokens starts the runs' OIDC token issuer, with a first signing
// key on a new database.
func (s *Server) openTokens(ctx context.Context) error {
	issuer := s.cfg.TokenIssuer
	if issuer == "" {
		issuer = s.cfg.PublicURL
	}
	if issuer == "" {
		issuer = s.url
	}
	t, err := runtoken.New(s.db, s.box, runtoken.Config{Issuer: issuer, Audience: s.cfg.TokenAudience, Subject: s.cfg.TokenSubject,
		Lifetime: s.cfg.TokenLifetime, Alg: s.cfg.TokenAlg})
	if err != nil {
		return err
	}
	t.Audit = s.audit.Hook()
	if err := t.EnsureKey(ctx); err != nil {
		return fmt.Errorf("token signing key: %w", err)
	}
	before, changed, err := t.RecordIdentity(ctx)
	if err != nil {
		return fmt.Errorf("recording the token issuer: %w", err)
	}
	if changed {
		now := t.Config()
		s.log.Warn("the runs' OIDC token issuer or audience changed since the last start: cloud trust set up for the old ones "+
			"(AWS IAM OIDC providers and role trust policies, Google workload identity pools, Azure federated credentials, Vault JWT roles) "+
			"now rejects the runs' tokens; to keep the old ones, start with --token-issuer and --token-audience set to them "+
			"(the old issuer URL must then reach this server: clouds fetch its /.well-known/openid-configuration and keys)",
			"old_issuer", before.Issuer, "new_issuer", now.Issuer, "old_audience", before.Audience, "new_audience", now.Audience)
	}
	s.tokens = t
	return nil
}

// spacePath names a space by its path from the root ("root/team/app").
func (s *Server) spacePath(ctx context.Context, spaceID string) (string, error) {
	var parts []string
	for id := spaceID; id != "" && len(parts) < 64; {
		sp, err := s.spaces.Get(ctx, id)
		if err != nil {
			return "", err
		}
		parts = append([]string{sp.ID}, parts...)
		id = sp.Parent
	}
	return strings.Join(parts, "/"), nil
}

// sso configures single sign-on, nil when no issuer is set.
func (s *Server) sso() *api.SSO {
	if s.cfg.OIDCIssuer == "" {
		return nil
	}
	public := s.url
	if s.cfg.PublicURL != "" {
		public = strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	roles := auth.NewRoles(s.db)
	return &api.SSO{Issuer: s.cfg.OIDCIssuer, ClientID: s.cfg.OIDCClientID, ClientSecret: s.cfg.OIDCClientSecret,
		RedirectURL: public + "/auth/callback", Scopes: s.cfg.OIDCScopes, GroupsClaim: s.cfg.OIDCGroupsClaim,
		SessionTTL: s.cfg.SessionTTL, CLITokenTTL: s.cfg.CLITokenTTL, DB: s.db,
		Login: func(ctx context.Context, in api.LoginInput) (api.LoginDecision, error) {
			all, err := roles.ListRoles(ctx)
			if err != nil {
				return api.LoginDecision{}, err
			}
			var rs []map[string]any
			for _, r := range all {
				rs = append(rs, map[string]any{"id": r.ID, "name": r.Name, "slug": r.ID, "ulid": r.ID})
			}
			out, err := s.policies.Login(ctx, policy.LoginRequest{Login: in.Login, Name: in.Name, Email: in.Email,
				RemoteIP: in.RemoteIP, Teams: in.Groups, Roles: rs})
			if out.DenyAdmin {
				// deny_admin: no admin by the back door of a root grant.
				out.Grants = auth.WithoutAdminGrants(out.Grants, all)
			}
			return api.LoginDecision{Applied: out.Applied, Deny: out.Deny, Admin: out.Admin, Teams: out.Teams, Grants: out.Grants}, err
		}}
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	s.url = "http://" + ln.Addr().String()
	// Before any run: runs may write the configuration (see git.LoadConfig).
	git.LoadConfig(s.log)
	s.policies.PublicURL = s.url
	if s.cfg.PublicURL != "" {
		s.policies.PublicURL = s.cfg.PublicURL
	}
	if s.cfg.DebugListen != "" {
		if err := s.serveDebug(); err != nil {
			ln.Close()
			return err
		}
	}
	if err := s.openTokens(ctx); err != nil {
		ln.Close()
		return err
	}
	// Heartbeats can be recorded from now on: no worker is lost before a
	// whole worker timeout has passed (see reaper.go).
	s.live = newLiveness(s.now())
	srv := httpx.NewServer(s.handler())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.ready.Store(true)
	if err := os.WriteFile(filepath.Join(s.cfg.DataDir, "url"), []byte(s.url+"\n"), 0o600); err != nil {
		return err
	}
	s.log.Info("server started", "version", release.String(), "url", s.url, "data_dir", s.cfg.DataDir, "database", s.db.Dialect.String(),
		"schema_version", s.db.SchemaVersion(), "builtin_workers", s.cfg.BuiltinWorkers, "instance", s.instance)
	fmt.Fprintf(s.out, "Gantry listening on %s\n", s.url)

	stopWorkers, cancelStop := context.WithCancel(context.Background())
	killWorkers, cancelKill := context.WithCancel(context.Background())
	defer cancelKill()
	var workers sync.WaitGroup
	closeIdle := s.startWorkers(stopWorkers, killWorkers, &workers)
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	go s.reaper(reaperCtx)
	go s.pruner(reaperCtx)
	go s.policies.RunEvents(reaperCtx, time.Second)
	go s.notify.Run(reaperCtx)
	go s.scheduler.Run(reaperCtx)
	go s.audit.Forwarder().Run(reaperCtx)
	// Starting (migrations, keys, policies) leaves garbage the heap would
	// otherwise keep for minutes: give it back to the system now (about
	// 1 MiB of an idle server's 40).
	debug.FreeOSMemory()
	if s.integrations.Graph != nil {
		// Managed Azure secrets: checked often enough for the rotation
		// interval, at most every minute.
		every := min(time.Minute, max(s.integrations.Graph.RotateEvery/4, time.Second))
		go s.integrations.RunRotation(reaperCtx, every, func(err error) {
			s.log.Warn("rotating managed Azure client secrets failed", "err", err)
		})
	}
	go func() {
		_ = s.db.Listen(reaperCtx, eventsChannel, s.hub.NotifyRemote)
	}()
	if s.db.Dialect == db.Postgres {
		go s.watchReplicas(reaperCtx)
	}
	if s.cfg.Demo {
		go func() {
			if err := s.demo(ctx); err != nil {
				s.log.Error("demo setup failed", "err", err)
				fmt.Fprintf(s.out, "Demo setup failed: %v\n", err)
			}
		}()
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		cancelStop()
		stopReaper()
		return err
	}
	// Drain: no new claims; running jobs finish within the shutdown timeout.
	s.log.Info("draining: no new jobs; waiting for running jobs", "timeout", s.cfg.ShutdownTimeout)
	s.draining.Store(true)
	cancelStop()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	timeout := time.After(s.cfg.ShutdownTimeout)
	select {
	case <-done:
		// Private workers' jobs too: they need the API, the state backend
		// and the log endpoints until they end (the reaper still fails the
		// runs of workers that went silent meanwhile).
		s.waitHeldRuns(timeout)
	case <-timeout:
		s.log.Warn("shutdown timeout: stopping running jobs")
		cancelKill()
		<-done
	}
	stopReaper()
	if s.db.Dialect == db.Postgres {
		s.leaveReplicas()
	}
	closeIdle() // the built-in workers' connections, so Shutdown need not wait for them
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		s.log.Warn("closing the connections still open at shutdown", "err", err)
	}
	// Logged once it is true: the HTTP server has closed.
	s.log.Info("server stopped")
	return err
}

// waitHeldRuns waits until no run is held by a worker in a job in
// progress, or timeout. With replicas on one database it waits for the
// runs of every replica's workers (bounded by the timeout all the same).
func (s *Server) waitHeldRuns(timeout <-chan time.Time) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	logged := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := s.runs.CountHeld(ctx)
		cancel()
		if err == nil && n == 0 {
			return
		}
		if err != nil {
			s.log.Warn("draining: counting the runs held by workers failed", "err", err)
		} else if !logged {
			s.log.Info("draining: waiting for jobs of workers", "runs", n)
			logged = true
		}
		select {
		case <-timeout:
			s.log.Warn("shutdown timeout: stopping with jobs of workers still running", "runs", n)
			return
		case <-t.C:
		}
	}
}

// baseTimeouts are the policy engine's timeouts before any scaling.
var baseTimeouts = maps.Clone(engine.Timeouts)

// scalePolicyTimeouts applies --policy-timeout-scale (0 means 1).
func scalePolicyTimeouts(f float64) {
	if f <= 0 {
		f = 1
	}
	for k, v := range baseTimeouts {
		engine.Timeouts[k] = time.Duration(float64(v) * f).Round(time.Millisecond) // "31.5s", not "31.499999999s"
	}
}

// reportTimeout is how long answering a worker's planned or handoff may
// take: the plan and approval policies they evaluate, under their (scaled)
// timeouts, one after the other, and 30 s for the rest.
func reportTimeout() time.Duration {
	return 30*time.Second + engine.Timeouts[engine.TypePlan] + engine.Timeouts[engine.TypeApproval]
}

// poolForToken returns the pool a worker's pool token belongs to: the
// built-in pool ("") for the server's own workers, or a worker pool.
func (s *Server) poolForToken(ctx context.Context, t string) (string, bool, error) {
	if t == "" {
		return "", false, nil
	}
	if s.poolTok != "" && subtle.ConstantTimeCompare([]byte(t), []byte(s.poolTok)) == 1 {
		return "", true, nil
	}
	return s.pools.Authenticate(ctx, t)
}

// users is the user store with the server's bound on single sign-on grants.
func (s *Server) users() *auth.Users {
	u := auth.NewUsers(s.db)
	u.GrantsMaxAge = s.cfg.SSOGrantsMaxAge
	return u
}
