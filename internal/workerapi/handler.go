package workerapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Prefix is where the protocol is served.
const Prefix = "/api/worker/v1"

// Handler serves the worker protocol.
type Handler struct {
	Runs     *run.Service
	Stacks   *stack.Service
	Registry *Registry
	// Contexts, when set, adds the environment, files and hooks of the
	// contexts that apply to the stack to every job.
	Contexts *contexts.Service
	Hub      *events.Hub
	// PoolForToken returns the pool a pool token admits to; an error means
	// the token could not be checked (the worker retries), not that it is
	// wrong.
	PoolForToken func(ctx context.Context, token string) (pool string, ok bool, err error)
	// Draining, when it returns true, makes claims return no job.
	Draining func() bool
	// PoolKey, when set, returns a pool's public key ("" for none): secret
	// values of its jobs are sealed to it and its workspaces must be.
	PoolKey func(ctx context.Context, pool string) (string, error)
	// Integrations, when set, mints the credentials of the stack's cloud
	// integrations for each job (read for plans, write for applies).
	// Discard revokes what was minted for a job no worker gets.
	Integrations interface {
		Credentials(ctx context.Context, st stack.Stack, r integration.Request) (integration.Minted, error)
		Discard(ctx context.Context, m integration.Minted) error
	}
	// SpacePath, when set, names a space by its path from the root
	// ("root/team/app"), for the spacePath claim.
	SpacePath func(ctx context.Context, spaceID string) (string, error)
	// Tokens, when set, issues every job an OpenID Connect token for its
	// run (see package runtoken).
	Tokens interface {
		Issue(ctx context.Context, r runtoken.Run) (string, time.Time, error)
		Hand(ctx context.Context, p runtoken.Prepared) (string, time.Time, error)
		Pend(ctx context.Context, r runtoken.Run) (runtoken.Pending, error)
		Record(ctx context.Context, p runtoken.Pending) error
	}
	Log *slog.Logger
	// AccountName is what jobs give runs as TF_VAR_spacelift_account_name:
	// the host of the server's public URL ("" if not set: the worker
	// uses the host of the URL it reaches the server at).
	AccountName string
	// MaxClaimWait bounds a claim's long poll.
	MaxClaimWait time.Duration
	// SeenEvery spares the database a write per claim: a worker seen less
	// than this long ago is not recorded as seen again (0: every claim).
	SeenEvery time.Duration
	// ReportTimeout is how long answering planned or handoff may take,
	// policy evaluations included; jobs tell workers (Job.ReportTimeoutMS).
	ReportTimeout time.Duration
	// HeartbeatFailed, if set, is called when a heartbeat could not be
	// recorded for a reason of the server's (the database down, a full
	// disk): the worker sending it is alive.
	HeartbeatFailed func()
	// Budget bounds the memory of artifacts uploaded and downloaded at
	// once (--max-request-memory); nil: no bound.
	Budget *httpx.Budget
	// MaxStateSize is the server's state size limit, told to workers
	// (Job.MaxStateSize) so that their advice about a state the server
	// refused can say to raise it (0: not told).
	MaxStateSize int64
}

// EndedGrace is how long after its run ended a job may still send its
// heartbeat and the last of its log: then its token is dead for good.
var EndedGrace = 5 * time.Minute

// Routes registers the protocol's routes on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	a := httpx.Adapter{Log: h.Log}
	mux.Handle("POST "+Prefix+"/register", a.H(h.register))
	mux.Handle("POST "+Prefix+"/claim", a.H(h.claim))
	mux.Handle("POST "+Prefix+"/deregister", a.H(h.deregister))
	mux.Handle("POST "+Prefix+"/drain", a.H(h.drain))
	job := func(method, path string, fn func(w http.ResponseWriter, r *http.Request, rn run.Run) error) {
		handle := func(w http.ResponseWriter, r *http.Request) error {
			// A job whose run ended may still send its heartbeat (to learn it must
			// stop), the last of its log, and its plan report again (the answer
			// that ended the run was lost: it gets it again).
			rn, err := h.Runs.Authenticate(r.Context(), httpx.BearerToken(r), path == "heartbeat" || path == "logs" || path == "planned")
			if err != nil {
				return err
			}
			if run.Terminal(rn.State) && time.Since(rn.UpdatedAt) > EndedGrace {
				return errs.E(errs.Unauthenticated, "run token expired: run %s ended %s ago", rn.ID, time.Since(rn.UpdatedAt).Round(time.Second))
			}
			if rn.ID != r.PathValue("run") {
				return errs.E(errs.Forbidden, "this job token is for run %s", rn.ID)
			}
			return fn(w, r, rn)
		}
		mux.Handle(method+" "+Prefix+"/jobs/{run}/"+path, a.H(func(w http.ResponseWriter, r *http.Request) error {
			err := handle(w, r)
			if path == "heartbeat" && err != nil && errs.KindOf(err) == errs.Internal && h.HeartbeatFailed != nil {
				h.HeartbeatFailed() // a store failure, not a refusal
			}
			return err
		}))
	}
	job("POST", "phase", h.phase)
	job("POST", "logs", h.logs)
	job("PUT", "artifacts/{name}", h.putArtifact)
	job("GET", "artifacts/{name}", h.getArtifact)
	job("POST", "planned", h.planned)
	job("POST", "handoff", h.handoff)
	job("POST", "delta", h.delta)
	job("POST", "heartbeat", h.heartbeat)
	job("POST", "finish", h.finish)
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) error {
	poolToken := httpx.BearerToken(r)
	pool, ok, err := h.PoolForToken(r.Context(), poolToken)
	if err != nil {
		return err
	}
	if !ok {
		return errs.E(errs.Unauthenticated, "invalid pool token")
	}
	// Unknown fields are ignored, not refused: a worker of a newer release
	// may send fields this server does not know, and servers must accept
	// older and newer workers alike through an upgrade (fields that change
	// what a job means are negotiated with features, not by refusal).
	var req RegisterRequest
	unknown, err := httpx.DecodeJSONTolerant(w, r, &req, 64<<10)
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		h.Log.Warn("a worker registering sent fields this server does not know (it is of a newer release): they are ignored; upgrade the server",
			"pool", pool, "worker", req.Name, "release", req.Tools[ToolGantry], "fields", truncate.String(strings.Join(unknown, ","), 200))
	}
	if req.Version != Version {
		return errs.E(errs.Invalid, "worker protocol version %d is not supported: this server speaks version %d; upgrade the worker", req.Version, Version)
	}
	if req.Name == "" || len(req.Name) > 255 {
		return errs.E(errs.Invalid, "worker name must be 1 to 255 bytes")
	}
	if len(req.Labels) > 64 || len(req.Tools) > 64 || req.Concurrency < 0 || req.Concurrency > 256 {
		return errs.E(errs.Invalid, "at most 64 labels and 64 tools, and a concurrency from 1 to 256")
	}
	// The token and the pool's key are checked again in the transaction
	// that registers the worker, with the pool's row shared (Registry.
	// Register): a reset of the pool's token (which disconnects its
	// workers), a new key pair, or the pool's deletion, done meanwhile on
	// any replica, is either seen here or sees this worker.
	poolKey := ""
	admitted := func(ctx context.Context) error {
		again, ok, err := h.PoolForToken(ctx, poolToken)
		if err != nil {
			return err
		}
		if !ok || again != pool {
			return errs.E(errs.Unauthenticated, "invalid pool token (the pool's token was reset, or the pool deleted, meanwhile)")
		}
		// A worker without the pool's key pair could open none of its
		// jobs: it is refused before it is registered (it would show as
		// idle).
		if h.PoolKey != nil {
			if poolKey, err = h.PoolKey(ctx, pool); err != nil {
				return err
			}
		}
		switch {
		case poolKey == "":
		case strings.TrimSpace(req.PublicKey) == "":
			return errs.E(errs.Conflict, "worker pool %s seals its secrets and workspaces to a key pair: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)", pool)
		case strings.TrimSpace(req.PublicKey) != strings.TrimSpace(poolKey):
			return errs.E(errs.Conflict, "the worker's private key does not match worker pool %s's public key (was `gantry workerpool keygen` run again? use the new key)", pool)
		}
		return nil
	}
	wk, token, err := h.Registry.Register(r.Context(), pool, req, admitted)
	if err != nil {
		return err
	}
	resp := RegisterResponse{WorkerID: wk.ID, Token: token, Pool: pool, PublicKey: poolKey}
	httpx.WriteJSON(w, http.StatusCreated, resp)
	return nil
}

func (h *Handler) claim(w http.ResponseWriter, r *http.Request) error {
	wk, err := h.Registry.Authenticate(r.Context(), httpx.BearerToken(r))
	if err != nil {
		return err
	}
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	if wait > h.MaxClaimWait {
		wait = h.MaxClaimWait
	}
	if time.Since(wk.LastSeen) >= h.SeenEvery {
		if err := h.Registry.Seen(r.Context(), wk.ID); err != nil {
			return err
		}
	}
	if err := h.checkWorkerKey(r.Context(), wk); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	drainChecked := time.Now() // wk.Drained is fresh
	for {
		if wk.Drained {
			// A drained worker gets no new jobs; it waits, so that it does
			// not spin, and learns nothing else.
			events.Wait(r.Context(), make(chan struct{}), wait)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if h.Draining != nil && h.Draining() {
			// No jobs while the server drains; make remote workers wait a
			// little so that they do not spin against a closing server.
			events.Wait(r.Context(), make(chan struct{}), min(time.Until(deadline), 2*time.Second))
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		c := h.Hub.Chan(run.PoolKey(wk.Pool))
		// The job's OpenID Connect token: its claims are fixed, and its
		// issuance recorded, in the claim's transaction; it is signed while
		// the rest of the job is read.
		var pending *runtoken.Pending
		record := func(ctx context.Context, cl *run.Claimed) error {
			pending = nil
			if h.Tokens == nil {
				return nil
			}
			p, err := h.pendToken(ctx, cl.Run, cl.Run.SpaceID, jobScope(cl))
			if err != nil {
				return nil // buildJob asks again, and fails the run with the reason
			}
			if err := h.Tokens.Record(ctx, p); err != nil {
				return err
			}
			pending = &p
			return nil
		}
		cl, err := h.Runs.Claim(r.Context(), wk.Pool, wk.ID, record)
		if err != nil {
			return err
		}
		if cl != nil {
			// The worker may have gone (SIGTERM, network) while the claim
			// committed: build the job regardless, and give the run back
			// rather than lose it when nobody is there to take it.
			bctx := context.WithoutCancel(r.Context())
			job, minted, err := h.buildJob(bctx, cl, pending)
			if err == nil {
				err = h.sealJob(bctx, wk.Pool, job)
			}
			if err != nil {
				// The run fails, not the worker: a cloud refusing the run's
				// credentials says nothing about the worker, which is answered
				// as if the run had never been there and goes on claiming.
				h.discard(bctx, cl.Run, minted)
				h.failPreparing(bctx, cl.Run, wk.ID, err)
				if r.Context().Err() != nil {
					return r.Context().Err()
				}
				continue
			}
			if r.Context().Err() != nil {
				h.discard(bctx, cl.Run, minted)
				if _, uerr := h.Runs.Unclaim(bctx, cl.Run.ID, wk.ID); uerr != nil {
					h.Log.Warn("giving back a run claimed by a worker that left failed", "run_id", cl.Run.ID, "worker", wk.ID, "err", uerr)
				}
				return r.Context().Err()
			}
			httpx.WriteJSON(w, http.StatusOK, job)
			return nil
		}
		// Nothing for this worker: maybe because it was drained (Claim
		// gives a drained worker nothing). Asked at most once a second: a
		// wake-up that another worker won costs no extra query.
		if time.Since(drainChecked) >= time.Second {
			drainChecked = time.Now()
			if drained, err := h.Registry.Drained(r.Context(), wk.ID); err != nil {
				return err
			} else if drained {
				wk.Drained = true
				continue
			}
		}
		left := time.Until(deadline)
		if left <= 0 || r.Context().Err() != nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		// Re-read at least every second: another replica may have queued work.
		events.Wait(r.Context(), c, min(left, time.Second))
	}
}

// failPreparing fails a claimed run whose job could not be built, with the
// reason, and logs the cause.
func (h *Handler) failPreparing(ctx context.Context, rn run.Run, workerID string, cause error) {
	h.Log.Warn("preparing a job failed: the run fails", "run_id", rn.ID, "stack_id", rn.StackID, "worker_id", workerID, "err", cause)
	if _, err := h.Runs.FailJob(ctx, rn.ID, workerID, "preparing the job failed: "+errs.Public(cause)); err != nil {
		h.Log.Warn("failing a run whose job could not be prepared failed", "run_id", rn.ID, "worker_id", workerID, "err", err)
	}
}

// jobScope is the scope of a job's token: read for plans, write for
// applies and tasks.
func jobScope(cl *run.Claimed) string {
	if cl.Kind != "plan" {
		return runtoken.Write
	}
	return runtoken.Read
}

// pendToken fixes the claims of a run's token of scope in space.
func (h *Handler) pendToken(ctx context.Context, rn run.Run, space, scope string) (runtoken.Pending, error) {
	path := space
	if h.SpacePath != nil {
		p, err := h.SpacePath(ctx, space)
		if err != nil {
			return runtoken.Pending{}, err
		}
		path = p
	}
	return h.Tokens.Pend(ctx, runtoken.Run{SpaceID: space, SpacePath: path, StackID: rn.StackID, RunID: rn.ID, RunType: rn.Type, Scope: scope})
}

func (h *Handler) phase(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	var req PhaseRequest
	if err := httpx.DecodeJSON(w, r, &req, 64<<10); err != nil {
		return err
	}
	if req.CommitSHA != "" && !git.ValidSHA(req.CommitSHA) {
		return errs.E(errs.Invalid, "commit_sha must be a full commit id (40 or 64 lower-case hexadecimal digits), got %q", truncate.String(req.CommitSHA, 80))
	}
	if req.CommitAt < 0 {
		return errs.E(errs.Invalid, "commit_at must be Unix nanoseconds (0: unknown), got %d", req.CommitAt)
	}
	logAt := int64(-1)
	if req.LogOffset != nil {
		if *req.LogOffset < 0 {
			return errs.E(errs.Invalid, "log_offset must be a byte offset of the job's log (0 or more), got %d", *req.LogOffset)
		}
		logAt = *req.LogOffset
	}
	c := run.Commit{SHA: req.CommitSHA, Message: req.CommitMessage, Author: req.CommitAuthor}
	if req.CommitAt > 0 {
		c.At = time.Unix(0, req.CommitAt).UTC()
	}
	_, err := h.Runs.PhaseAt(r.Context(), rn.ID, rn.WorkerID, req.State, c, logAt)
	return noContent(w, err)
}

func (h *Handler) planned(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	var req PlannedRequest
	if err := httpx.DecodeJSON(w, r, &req, 64<<10); err != nil {
		return err
	}
	var writeToken func() (string, error)
	if req.HasChanges && (rn.Type == run.Tracked || rn.Type == run.Destroy) {
		// The run may go on to apply: sign its write token meanwhile.
		writeToken = h.prepareToken(context.WithoutCancel(r.Context()), rn, rn.SpaceID, runtoken.Write)
	}
	st, err := h.Stacks.Get(r.Context(), rn.StackID)
	if err != nil {
		return err
	}
	var next string
	var after run.Run
	if req.PlanPending {
		next, after, err = h.Runs.PlannedPending(r.Context(), rn.ID, rn.WorkerID, st.Autodeploy)
	} else {
		next, after, err = h.Runs.Planned(r.Context(), rn.ID, rn.WorkerID, req.HasChanges, run.Delta{Add: req.Add, Change: req.Change, Destroy: req.Destroy}, st.Autodeploy)
	}
	if err != nil {
		return err
	}
	resp := PlannedResponse{Next: next, Log: after.Notes}
	if next == "apply" {
		// The apply is the write stage: a fresh token of scope write.
		if writeToken == nil || st.Space != rn.SpaceID {
			writeToken = h.prepareToken(r.Context(), rn, st.Space, runtoken.Write)
		}
		return h.answerApply(w, r, rn, st, writeToken, resp)
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// answerApply answers planned with next apply: the apply's write token
// and credentials, sealed to the worker's pool when it has a key pair.
// Credentials that cannot be minted fail the run, and the job is over
// (done), which is no fault of the worker's; credentials minted but not
// sent are revoked.
func (h *Handler) answerApply(w http.ResponseWriter, r *http.Request, rn run.Run, st stack.Stack, writeToken func() (string, error), resp PlannedResponse) error {
	// The token is handed out (its issuance recorded) while the apply's
	// credentials and the worker's pool are read. (If the credentials
	// fail, the trail may show a token the failed apply never got.)
	type handed struct {
		token string
		err   error
	}
	tokc := make(chan handed, 1)
	go func() {
		tok, err := writeToken()
		tokc <- handed{tok, err}
	}()
	creds, err := h.credentials(r.Context(), rn, st, runtoken.Write, nil)
	if err != nil {
		// Rather than apply without them: the cloud's reason.
		reason := "minting the apply's credentials failed: " + errs.Public(err)
		h.Log.Warn("minting the apply's credentials failed: the run fails", "run_id", rn.ID, "stack_id", rn.StackID, "worker_id", rn.WorkerID, "err", err)
		if _, ferr := h.Runs.Finish(r.Context(), rn.ID, rn.WorkerID, false, reason); ferr != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, PlannedResponse{Next: run.NextDone, Log: []string{reason}})
		return nil
	}
	resp.Env, resp.Revoke, resp.CredentialFiles, resp.Delegated = creds.env, creds.revoke, creds.files, creds.delegated
	err = h.sealApply(r.Context(), rn, &resp, func() (string, error) {
		tok := <-tokc
		return tok.token, tok.err
	})
	if err != nil {
		h.discard(context.WithoutCancel(r.Context()), rn, creds.minted)
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// sealApply puts the apply's write token in resp and seals it and the
// secret values of resp to the worker's pool's key, if it has one.
func (h *Handler) sealApply(ctx context.Context, rn run.Run, resp *PlannedResponse, token func() (string, error)) error {
	pool, err := h.jobPool(ctx, rn)
	if err != nil {
		return err
	}
	if resp.OIDCToken, err = token(); err != nil {
		return err
	}
	if resp.OIDCToken != "" {
		if resp.OIDCToken, resp.OIDCTokenSealed, err = h.sealValue(ctx, pool, "oidc-write:"+rn.ID, resp.OIDCToken); err != nil {
			return err
		}
	}
	for i := range resp.Env {
		v := &resp.Env[i]
		if !v.Secret {
			continue
		}
		if v.Value, v.Sealed, err = h.sealValue(ctx, pool, "env:"+rn.ID+":"+v.Name, v.Value); err != nil {
			return err
		}
	}
	for i := range resp.Delegated {
		d := &resp.Delegated[i]
		if d.Token, d.TokenSealed, err = h.sealValue(ctx, pool, "delegated:"+rn.ID+":"+d.ID, d.Token); err != nil {
			return err
		}
	}
	for i := range resp.CredentialFiles {
		f := &resp.CredentialFiles[i]
		var sealed string
		if sealed, f.Sealed, err = h.sealValue(ctx, pool, "credfile:"+rn.ID+":"+f.Path, string(f.Content)); err != nil {
			return err
		}
		f.Content = []byte(sealed)
	}
	return nil
}

// prepareToken starts signing the run's OpenID Connect token of scope in the
// background (RSA signing costs more than the database work it overlaps)
// and returns a function that waits for it and hands it out, recording it
// in the audit trail ("" when no issuer is configured); its error fails the
// job with the reason. A token prepared but never handed out is dropped
// unrecorded: nobody received it.
func (h *Handler) prepareToken(ctx context.Context, rn run.Run, space, scope string) func() (string, error) {
	if h.Tokens == nil {
		return func() (string, error) { return "", nil }
	}
	type result struct {
		p   runtoken.Prepared
		err error
	}
	done := make(chan result, 1)
	go func() {
		pend, err := h.pendToken(ctx, rn, space, scope)
		if err != nil {
			done <- result{err: err}
			return
		}
		p, err := pend.Sign()
		done <- result{p, err}
	}()
	return func() (string, error) {
		res := <-done
		if res.err != nil {
			return "", fmt.Errorf("issuing the run's OIDC token: %w", res.err)
		}
		tok, _, err := h.Tokens.Hand(ctx, res.p)
		if err != nil {
			return "", fmt.Errorf("issuing the run's OIDC token: %w", err)
		}
		return tok, nil
	}
}

// jobToken signs, in the background, the token of a job being claimed,
// which gets it unless building the job fails (then the trail shows a
// token the failed run never received, rather than missing one it did).
// pending, when set, was recorded in the claim's transaction; otherwise the
// token's issuance is recorded here while it is signed. The function
// returned waits for it ("" when no issuer is configured).
func (h *Handler) jobToken(ctx context.Context, rn run.Run, space, scope string, pending *runtoken.Pending) func() (string, error) {
	if h.Tokens == nil {
		return func() (string, error) { return "", nil }
	}
	type result struct {
		token string
		err   error
	}
	sign := func(p runtoken.Pending) result {
		signed, err := p.Sign()
		tok, _ := signed.Token()
		return result{tok, err}
	}
	done := make(chan result, 1)
	go func() {
		if pending != nil {
			done <- sign(*pending)
			return
		}
		p, err := h.pendToken(ctx, rn, space, scope)
		if err != nil {
			done <- result{err: err}
			return
		}
		signed := make(chan result, 1)
		go func() { signed <- sign(p) }()
		rerr := h.Tokens.Record(ctx, p)
		res := <-signed
		if res.err == nil {
			res.err = rerr
		}
		done <- res
	}()
	return func() (string, error) {
		res := <-done
		if res.err != nil {
			return "", fmt.Errorf("issuing the run's OIDC token: %w", res.err)
		}
		return res.token, nil
	}
}

func (h *Handler) delta(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	var req DeltaRequest
	if err := httpx.DecodeJSON(w, r, &req, 64<<10); err != nil {
		return err
	}
	_, err := h.Runs.RecordDelta(r.Context(), rn.ID, rn.WorkerID, run.Delta{Add: req.Add, Change: req.Change, Destroy: req.Destroy})
	return noContent(w, err)
}

func (h *Handler) handoff(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	_, err := h.Runs.HandOff(r.Context(), rn.ID, rn.WorkerID)
	return noContent(w, err)
}

func (h *Handler) heartbeat(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	if err := h.Registry.Seen(r.Context(), rn.WorkerID); err != nil {
		return err
	}
	b, err := h.Runs.Heartbeat(r.Context(), rn.ID, rn.WorkerID)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, HeartbeatResponse{Stop: b.Stop, Reason: b.Reason, State: b.State})
	return nil
}

func (h *Handler) finish(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	var req FinishRequest
	if err := httpx.DecodeJSON(w, r, &req, 64<<10); err != nil {
		return err
	}
	req.Reason = truncate.String(req.Reason, 4096)
	_, err := h.Runs.Finish(r.Context(), rn.ID, rn.WorkerID, req.OK, req.Reason)
	return noContent(w, err)
}

func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
