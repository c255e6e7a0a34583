package run

import (
	"context"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// MaxLogChunk is the largest log chunk a worker may append at once.
const MaxLogChunk = 1 << 20

// AppendLog adds data at byte offset of the run's log. Appending a chunk
// that is already stored (same offset) is a no-op, so workers can retry.
// The offset counts the worker's bytes only: a closing line the server
// put in the log (see closeLog) shifts the worker's bytes after it.
func (s *Service) AppendLog(ctx context.Context, runID string, offset int64, data []byte) (int64, error) {
	if len(data) > MaxLogChunk {
		return 0, errs.E(errs.TooLarge, "log chunk larger than %d bytes", MaxLogChunk)
	}
	var size int64
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		// store moves the end of the log from offset (and locks the run),
		// then stores the chunk: false when the log does not end at offset.
		store := func() (bool, error) {
			end := offset + int64(len(data))
			res, err := s.db.Exec(ctx, `UPDATE runs SET log_size = $3 WHERE id = $1 AND log_size = $2`, runID, offset, end)
			if err != nil {
				return false, err
			}
			if k, _ := res.RowsAffected(); k != 1 {
				return false, nil
			}
			if _, err := s.db.Exec(ctx, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)`, runID, offset, data); err != nil {
				return false, err
			}
			size = end
			n.add(LogKey(runID))
			return true, nil
		}
		if len(data) > 0 {
			// The usual case: the next chunk in order.
			if ok, err := store(); ok || err != nil {
				return err
			}
		}
		// (The fast path above never matches once the server closed the
		// log: the worker's offsets then stay short of the log's end.)
		var closingAt, closingSize int64
		if err := s.db.QueryRow(ctx, `SELECT log_size, closing_log_at, closing_log_size FROM runs WHERE id = $1`, runID).
			Scan(&size, &closingAt, &closingSize); err != nil {
			if isNoRows(err) {
				return errs.E(errs.NotFound, "run %q not found", runID)
			}
			return err
		}
		if closingAt >= 0 {
			switch {
			case offset >= closingAt:
				offset += closingSize
			case offset+int64(len(data)) > closingAt:
				// Bytes stored before the closing line, then new ones.
				data, offset = data[closingAt-offset:], closingAt+closingSize
			}
		}
		if offset < size && offset+int64(len(data)) > size {
			// A retry that resends stored bytes and more: keep the new part.
			data, offset = data[size-offset:], size
		}
		switch {
		case offset < size:
			return nil // already stored
		case offset > size:
			return errs.E(errs.Conflict, "log offset %d is past the end of the log (%d bytes)", offset, size)
		case len(data) == 0:
			return nil
		}
		ok, err := store()
		if err == nil && !ok {
			err = errs.E(errs.Conflict, "the log of run %s grew while appending; retry", runID)
		}
		return err
	})
	return size, err
}

// closeLog appends Gantry's closing line to the log of a run the server
// ended itself, at the log's end, in the transaction that ended it (the
// run's row is locked: no append comes in between). A worker that is
// still writing does not know of the line: where it is is recorded, so
// that the worker's later appends go after it (see AppendLog).
func (s *Service) closeLog(ctx context.Context, n *notes, runID, line string) error {
	var size, closingAt int64
	if err := s.db.QueryRow(ctx, `SELECT log_size, closing_log_at FROM runs WHERE id = $1`, runID).Scan(&size, &closingAt); err != nil {
		return err
	}
	if closingAt >= 0 {
		return nil // closed already
	}
	data := []byte("[gantry] " + line + "\n")
	if size > 0 {
		// A log cut in mid-line (a worker lost while writing one) gets
		// the closing line on a line of its own.
		var last []byte
		err := s.db.QueryRow(ctx, `SELECT SUBSTR(data, LENGTH(data), 1) FROM run_logs WHERE run_id = $1 AND byte_offset + LENGTH(data) = $2`,
			runID, size).Scan(&last)
		if err != nil && !isNoRows(err) {
			return err
		}
		if len(last) == 1 && last[0] != '\n' {
			data = append([]byte("\n"), data...)
		}
	}
	if _, err := s.db.Exec(ctx, `UPDATE runs SET log_size = $2, closing_log_at = $3, closing_log_size = $4 WHERE id = $1`,
		runID, size+int64(len(data)), size, len(data)); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)`, runID, size, data); err != nil {
		return err
	}
	n.add(LogKey(runID))
	return nil
}

// ReadLog returns up to max bytes of the log from offset, and whether the run
// is terminal with nothing more to read. With wait > 0 it waits that long for
// new data when offset is at the end.
func (s *Service) ReadLog(ctx context.Context, runID string, offset int64, max int, wait time.Duration) ([]byte, bool, error) {
	return s.readLogWait(ctx, runID, nil, offset, max, wait)
}

// ReadRunLog is ReadLog for a run the caller has just loaded: when that
// copy already answers (bytes past offset, or the run has ended), the run
// is not read again. Otherwise it waits as ReadLog does.
func (s *Service) ReadRunLog(ctx context.Context, r Run, offset int64, max int, wait time.Duration) ([]byte, bool, error) {
	return s.readLogWait(ctx, r.ID, &r, offset, max, wait)
}

func (s *Service) readLogWait(ctx context.Context, runID string, known *Run, offset int64, max int, wait time.Duration) ([]byte, bool, error) {
	deadline := time.Now().Add(wait)
	for {
		var size int64
		var state string
		// The channel is taken before the log's end is read, so an append
		// in between wakes the wait below. A run loaded by the caller was
		// read before the channel existed: it is trusted only when it
		// answers at once (the log only grows; an ended run stays ended).
		c := s.hub.Chan(LogKey(runID))
		if known != nil && (offset < known.LogSize || Terminal(known.State)) {
			size, state = known.LogSize, known.State
		} else if err := s.db.QueryRow(ctx, `SELECT log_size, state FROM runs WHERE id = $1`, runID).Scan(&size, &state); err != nil {
			if isNoRows(err) {
				return nil, false, errs.E(errs.NotFound, "run %q not found", runID)
			}
			return nil, false, err
		}
		known = nil
		if offset < size {
			data, err := s.readLog(ctx, runID, offset, max)
			return data, false, err
		}
		if Terminal(state) {
			return nil, true, nil
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return nil, false, nil
		}
		// Poll at least every second: another replica may have appended.
		events.Wait(ctx, c, min(left, time.Second))
	}
}

func (s *Service) readLog(ctx context.Context, runID string, offset int64, max int) ([]byte, error) {
	rows, err := s.db.Query(ctx, `SELECT byte_offset, data FROM run_logs WHERE run_id = $1 AND byte_offset + LENGTH(data) > $2 ORDER BY byte_offset`, runID, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() && len(out) < max {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return nil, err
		}
		if off < offset {
			data = data[offset-off:]
		}
		out = append(out, data...)
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, rows.Err()
}

// Artifact names.
const (
	ArtifactPlanJSON  = "plan.json"
	ArtifactWorkspace = "workspace"
	// ArtifactMetadata holds the <key>.custom.spacelift.json (and
	// .custom.gantry.json) files of the project root, as one JSON object
	// by key, for input.third_party_metadata.custom of plan policies.
	ArtifactMetadata = "metadata.json"
)

// MaxArtifact is the largest artifact a worker may upload.
const MaxArtifact = 512 << 20

func artifactAAD(runID, name string) string { return "artifact:" + runID + ":" + name }

// PutArtifact stores an artifact of the run, encrypted.
func (s *Service) PutArtifact(ctx context.Context, runID, name string, data []byte) error {
	return s.putArtifact(ctx, runID, name, s.box.Seal(data, artifactAAD(runID, name)))
}

// PutArtifactPlain is PutArtifact of an artifact read into p, which it
// seals where it lies (a large plan is held once): p is used up.
func (s *Service) PutArtifactPlain(ctx context.Context, runID, name string, p *secrets.Plaintext) error {
	return s.putArtifact(ctx, runID, name, s.box.SealPlaintext(p, artifactAAD(runID, name)))
}

func (s *Service) putArtifact(ctx context.Context, runID, name string, sealed []byte) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		// Touching the run row locks it (PostgreSQL) until the artifact is
		// stored, so a run cannot end, and drop its workspace, in between.
		res, err := s.db.Exec(ctx, `UPDATE runs SET updated_at = updated_at WHERE id = $1 AND state NOT IN `+TerminalSQL, runID)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			if _, err := s.Get(ctx, runID); err != nil {
				return err
			}
			return errs.E(errs.Conflict, "run %s has ended: artifacts are no longer accepted", runID)
		}
		_, err = s.db.Exec(ctx, `INSERT INTO run_artifacts (run_id, name, data, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (run_id, name) DO UPDATE SET data = excluded.data, created_at = excluded.created_at`, runID, name, sealed, time.Now().UnixNano())
		return err
	})
}

// ArtifactSize returns the size of an artifact of the run as stored
// (sealed: a few bytes more than its content), 0 when there is none: what
// loading it will hold.
func (s *Service) ArtifactSize(ctx context.Context, runID, name string) (int64, error) {
	var size int64
	err := s.db.QueryRow(ctx, `SELECT LENGTH(data) FROM run_artifacts WHERE run_id = $1 AND name = $2`, runID, name).Scan(&size)
	if isNoRows(err) {
		return 0, nil
	}
	return size, err
}

// Artifact returns an artifact of the run.
func (s *Service) Artifact(ctx context.Context, runID, name string) ([]byte, error) {
	var sealed []byte
	err := s.db.QueryRow(ctx, `SELECT data FROM run_artifacts WHERE run_id = $1 AND name = $2`, runID, name).Scan(&sealed)
	if isNoRows(err) {
		return nil, errs.E(errs.NotFound, "run %s has no %s", runID, name)
	}
	if err != nil {
		return nil, err
	}
	data, err := s.box.OpenInPlace(sealed, artifactAAD(runID, name))
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "artifact %s of run %s cannot be decrypted", name, runID)
	}
	return data, nil
}
