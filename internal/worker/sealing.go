package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Sealing: a pool with a key pair gets its secret values sealed to the
// pool's public key, and its workers seal the workspace handed from plan to
// apply, so that the server's database and keys alone cannot open them.

func envInfo(runID, name string) string { return "env:" + runID + ":" + name }
func workspaceInfo(runID string) string { return "workspace:" + runID }

// openSecrets opens the job's sealed values in place.
func (w *Worker) openSecrets(job *workerapi.Job) error {
	if job.OIDCTokenSealed {
		tok, err := w.openValue("oidc:"+job.RunID, job.OIDCToken)
		if err != nil {
			return err
		}
		job.OIDCToken, job.OIDCTokenSealed = tok, false
	}
	for i := range job.Env {
		v := &job.Env[i]
		if !v.Sealed {
			continue
		}
		if w.cfg.PrivateKey == nil {
			return fail("this pool seals its secrets to its key: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
		}
		pt, err := w.cfg.PrivateKey.OpenString(envInfo(job.RunID, v.Name), v.Value)
		if err != nil {
			return fail("opening the sealed value of %s: %v", v.Name, err)
		}
		v.Value, v.Sealed = pt, false
	}
	for i := range job.CredentialFiles {
		f := &job.CredentialFiles[i]
		if !f.Sealed {
			continue
		}
		pt, err := w.openValue("credfile:"+job.RunID+":"+f.Path, string(f.Content))
		if err != nil {
			return err
		}
		f.Content, f.Sealed = []byte(pt), false
	}
	for i := range job.Files {
		f := &job.Files[i]
		if !f.Sealed {
			continue
		}
		if w.cfg.PrivateKey == nil {
			return fail("this pool seals its secret files to its key: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
		}
		pt, err := w.cfg.PrivateKey.Open("file:"+job.RunID+":"+f.Path, f.Content)
		if err != nil {
			return fail("opening the sealed file %s: %v", f.Path, err)
		}
		f.Content, f.Sealed = pt, false
	}
	return nil
}

// putWorkspace packs the workspace into a file without a name (see
// privateFile) and uploads it from there, the saved plan checked as it is
// packed; only a workspace sealed to the pool's key is held in memory, to
// be sealed.
func (j *jobRun) putWorkspace(ctx context.Context) error {
	f, err := privateFile(filepath.Dir(j.dir))
	if err != nil {
		return fail("packing the workspace: %v", err)
	}
	defer f.Close()
	want := map[string][]byte{j.planRel(): j.planSum}
	err = packWorkspace(filepath.Join(j.dir, "src"), f, want, func(string) error { return errPlanChanged("saving") })
	if err != nil {
		var fl *failure
		if errors.As(err, &fl) {
			return err
		}
		return fail("packing the workspace: %v", err)
	}
	if j.job.Sealed {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fail("packing the workspace: %v", err)
		}
		data, err := io.ReadAll(f)
		if err != nil {
			return fail("packing the workspace: %v", err)
		}
		if data, err = j.sealWorkspace(data); err != nil {
			return err
		}
		err = j.w.proto.PutArtifact(ctx, j.job, "workspace", bytes.NewReader(data), int64(len(data)))
	} else {
		err = j.putFile(ctx, "workspace", f)
	}
	if err != nil {
		return fmt.Errorf("uploading the workspace: %w", err)
	}
	return nil
}

// sealWorkspace seals a packed workspace when the pool asks for it.
func (j *jobRun) sealWorkspace(data []byte) ([]byte, error) {
	if !j.job.Sealed {
		return data, nil
	}
	key := j.w.cfg.PrivateKey
	if key == nil {
		return nil, fail("this pool seals workspaces to its key: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
	}
	out, err := key.PublicKey().Seal(workspaceInfo(j.job.RunID), data)
	if err != nil {
		return nil, fail("sealing the workspace: %v", err)
	}
	return out, nil
}

// openWorkspace opens a saved workspace sealed by the pool's worker.
func (j *jobRun) openWorkspace(data []byte) ([]byte, error) {
	if !seal.IsSealed(data) {
		if j.job.Sealed {
			return nil, fail("the saved workspace is not sealed although the pool has a key: refusing it")
		}
		return data, nil
	}
	key := j.w.cfg.PrivateKey
	if key == nil {
		return nil, fail("the saved workspace is sealed to the pool's key: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
	}
	out, err := key.Open(workspaceInfo(j.job.RunID), data)
	if err != nil {
		return nil, fail("opening the saved workspace: %v", err)
	}
	return out, nil
}

// openValue opens one sealed value (the run's OIDC token, an apply's
// credentials).
func (w *Worker) openValue(info, v string) (string, error) {
	if w.cfg.PrivateKey == nil {
		return "", fail("this pool seals its secrets to its key: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
	}
	pt, err := w.cfg.PrivateKey.OpenString(info, v)
	if err != nil {
		return "", fail("opening a sealed value (%s): %v", info, err)
	}
	return pt, nil
}
