package workerapi

import (
	"context"
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/seal"
)

// sealJob seals the secret values of a job to its pool's public key, when
// the pool has one: in transit and in the worker's hands they open only
// with the pool's private key.
func (h *Handler) sealJob(ctx context.Context, pool string, job *Job) error {
	if h.PoolKey == nil {
		return nil
	}
	key, err := h.PoolKey(ctx, pool)
	if err != nil || key == "" {
		return err
	}
	pk, err := seal.ParsePublicKey(key)
	if err != nil {
		return errs.E(errs.Internal, "worker pool %s has a broken public key: %v", pool, err)
	}
	job.Sealed = true
	if job.OIDCToken != "" && !job.OIDCTokenSealed {
		if job.OIDCToken, err = pk.SealString("oidc:"+job.RunID, job.OIDCToken); err != nil {
			return err
		}
		job.OIDCTokenSealed = true
	}
	for i := range job.Env {
		v := &job.Env[i]
		if !v.Secret || v.Sealed {
			continue
		}
		sealed, err := pk.SealString("env:"+job.RunID+":"+v.Name, v.Value)
		if err != nil {
			return err
		}
		v.Value, v.Sealed = sealed, true
	}
	for i := range job.Delegated {
		d := &job.Delegated[i]
		if d.Token == "" || d.TokenSealed {
			continue
		}
		if d.Token, err = pk.SealString("delegated:"+job.RunID+":"+d.ID, d.Token); err != nil {
			return err
		}
		d.TokenSealed = true
	}
	for i := range job.CredentialFiles {
		f := &job.CredentialFiles[i]
		if f.Sealed {
			continue
		}
		sealed, err := pk.SealString("credfile:"+job.RunID+":"+f.Path, string(f.Content))
		if err != nil {
			return err
		}
		f.Content, f.Sealed = []byte(sealed), true
	}
	for i := range job.Files {
		f := &job.Files[i]
		if !f.Secret || f.Sealed {
			continue
		}
		sealed, err := pk.Seal("file:"+job.RunID+":"+f.Path, f.Content)
		if err != nil {
			return err
		}
		f.Content, f.Sealed = sealed, true
	}
	return nil
}

// jobPool is the pool of the worker that holds rn's job (the stack may
// have moved to another pool since the job was claimed), or, once a pool
// reset forgot that worker, the run's: a reset does not stop the jobs in
// progress, which go on with their own tokens.
func (h *Handler) jobPool(ctx context.Context, rn run.Run) (string, error) {
	pool, err := h.Registry.Pool(ctx, rn.WorkerID)
	if errs.Is(err, errs.Unauthenticated) {
		return rn.Pool, nil
	}
	return pool, err
}

// checkSealed refuses a workspace that a pool with a key did not seal.
func (h *Handler) checkSealed(ctx context.Context, rn run.Run, data []byte) error {
	if h.PoolKey == nil {
		return nil
	}
	pool, err := h.jobPool(ctx, rn)
	if err != nil {
		return err
	}
	key, err := h.PoolKey(ctx, pool)
	if err != nil || key == "" {
		return err
	}
	if !seal.IsSealed(data) {
		return errs.E(errs.Invalid, "worker pool %s seals workspaces to its key: this worker sent a plain one (start it with the pool's private key)", pool)
	}
	return nil
}

// checkWorkerKey refuses work to a worker whose key pair is not its
// pool's (the pool's key was replaced while it ran): it could not open
// the pool's jobs. The 409 stops the worker with the reason.
func (h *Handler) checkWorkerKey(ctx context.Context, wk Worker) error {
	if h.PoolKey == nil {
		return nil
	}
	key, err := h.PoolKey(ctx, wk.Pool)
	if err != nil || key == "" || strings.TrimSpace(key) == wk.PublicKey {
		return err
	}
	return errs.E(errs.Conflict, "this worker's key pair is not its pool's (was `gantry workerpool keygen --replace` run?): restart it with the pool's current private key")
}

// sealValue seals v to pool's public key when the pool has one.
func (h *Handler) sealValue(ctx context.Context, pool, info, v string) (string, bool, error) {
	if h.PoolKey == nil {
		return v, false, nil
	}
	key, err := h.PoolKey(ctx, pool)
	if err != nil || key == "" {
		return v, false, err
	}
	pk, err := seal.ParsePublicKey(key)
	if err != nil {
		return "", false, errs.E(errs.Internal, "worker pool %s has a broken public key: %v", pool, err)
	}
	sealed, err := pk.SealString(info, v)
	return sealed, err == nil, err
}
