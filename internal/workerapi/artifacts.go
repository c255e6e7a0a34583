package workerapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
)

// The log and artifact routes: the large bodies of the protocol.

// artifactCopies is what an artifact upload or download holds, as a
// multiple of its size: the artifact, and the database driver's copy.
const artifactCopies = 2

func (h *Handler) logs(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		return errs.E(errs.Invalid, "offset must be a non-negative integer")
	}
	if err := httpx.CheckLength(r, run.MaxLogChunk, "log chunk", ""); err != nil {
		return err
	}
	data, err := httpx.ReadBody(w, r, run.MaxLogChunk, "log chunk")
	if err != nil {
		return err
	}
	_, err = h.Runs.AppendLog(r.Context(), rn.ID, offset, data)
	return noContent(w, err)
}

func artifactName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name != run.ArtifactPlanJSON && name != run.ArtifactWorkspace && name != run.ArtifactMetadata {
		return "", errs.E(errs.Invalid, "unknown artifact %q", name)
	}
	return name, nil
}

// putArtifact stores an artifact. One announced larger than the limit is
// refused before it is read; the body is read once, into memory the
// budget grants, and sealed where it lies.
func (h *Handler) putArtifact(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	name, err := artifactName(r)
	if err != nil {
		return err
	}
	if err := httpx.CheckLength(r, run.MaxArtifact, "artifact "+name, ""); err != nil {
		return err
	}
	want := r.ContentLength
	if want < 0 {
		want = run.MaxArtifact
	}
	release, err := h.Budget.AcquireFor(r.Context(), "worker:"+rn.WorkerID, artifactCopies*want)
	if err != nil {
		return err
	}
	defer release()
	body, err := httpx.ReadSealable(w, r, run.MaxArtifact)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "artifact %s larger than %d bytes", name, run.MaxArtifact)
		}
		return err
	}
	data := body.Bytes()
	if name == run.ArtifactWorkspace {
		if err := h.checkSealed(r.Context(), rn, data); err != nil {
			return err
		}
	}
	if (name == run.ArtifactPlanJSON || name == run.ArtifactMetadata) && !json.Valid(data) {
		return errs.E(errs.Invalid, "%s is not valid JSON", name)
	}
	return noContent(w, h.Runs.PutArtifactPlain(r.Context(), rn.ID, name, body))
}

func (h *Handler) getArtifact(w http.ResponseWriter, r *http.Request, rn run.Run) error {
	name, err := artifactName(r)
	if err != nil {
		return err
	}
	size, err := h.Runs.ArtifactSize(r.Context(), rn.ID, name)
	if err != nil {
		return err
	}
	release, err := h.Budget.AcquireFor(r.Context(), "worker:"+rn.WorkerID, artifactCopies*size)
	if err != nil {
		return err
	}
	defer release()
	data, err := h.Runs.Artifact(r.Context(), rn.ID, name)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, err = w.Write(data)
	return err
}
