package run

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// MaxLogChunk is the largest log chunk a worker may append at once.
const MaxLogChunk = 1 << 20

// DefaultLogLimit is how much of a run's log is stored unless the server
// says otherwise (Service.LogLimit, --max-run-log-size).
const DefaultLogLimit = 100 << 20

// lateLogRoom is how far past the limit a log may still grow once its run
// has ended and told how much was dropped: the last lines a worker sends
// after the end (the run's failure, what the policies said).
const lateLogRoom = 64 << 10

func (s *Service) logLimit() int64 {
	if s.LogLimit > 0 {
		return s.LogLimit
	}
	return DefaultLogLimit
}

// AppendLog adds data at byte offset of what workers sent of the run's
// log and returns where the next append starts. Appending a chunk that is
// already stored (same offset) is a no-op, so workers can retry. The
// lines the server puts in the log itself (a closing line, see closeLog;
// the notes below) do not move the workers' offsets.
//
// What is stored of a log stops at the log limit: past it, output is
// counted (Run.LogDropped) but not stored, and the run goes on. The log
// then gets a line saying so where it was cut, and, when the run ends, a
// line saying how much was dropped (see noteDropped).
func (s *Service) AppendLog(ctx context.Context, runID string, offset int64, data []byte) (int64, error) {
	if len(data) > MaxLogChunk {
		return 0, errs.E(errs.TooLarge, "log chunk larger than %d bytes", MaxLogChunk)
	}
	var received int64
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		// The usual case, the next chunk in order, under the limit: one
		// statement moves the end and says where the chunk goes.
		if ok, err := s.appendInOrder(ctx, n, runID, offset, data); ok || err != nil {
			received = offset + int64(len(data))
			return err
		}
		// Read, then move the end from where it was read: an append of the
		// same chunk committed in between (a retry racing the original)
		// makes the move fail, and the chunk is found stored on the next read.
		for range 3 {
			moved, end, err := s.appendLog(ctx, n, runID, offset, data)
			if err != nil || moved {
				received = end
				return err
			}
		}
		return errs.E(errs.Conflict, "the log of run %s grew while appending; retry", runID)
	})
	return received, err
}

// appendInOrder stores data when it is the next chunk of the log (offset
// is where the workers' log ends), nothing was dropped, and it fits under
// the limit; false (nothing done) otherwise, for appendLog to sort out.
func (s *Service) appendInOrder(ctx context.Context, n *notes, runID string, offset int64, data []byte) (bool, error) {
	if len(data) == 0 {
		return false, nil
	}
	size := int64(len(data))
	var at int64
	err := s.db.QueryRow(ctx, `UPDATE runs SET log_received = $3, log_size = log_size + $4
		WHERE id = $1 AND log_received = $2 AND log_dropped = 0 AND log_size + $4 <= $5 RETURNING log_size - $4`,
		runID, offset, offset+size, size, s.logLimit()).Scan(&at)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)`, runID, at, data); err != nil {
		return false, err
	}
	n.add(LogKey(runID))
	return true, nil
}

// appendLog is one attempt of AppendLog: false when the log's end moved
// since it was read.
func (s *Service) appendLog(ctx context.Context, n *notes, runID string, offset int64, data []byte) (bool, int64, error) {
	var received, size, dropped int64
	var state string
	if err := s.db.QueryRow(ctx, `SELECT log_received, log_size, log_dropped, state FROM runs WHERE id = $1`, runID).Scan(&received, &size, &dropped, &state); err != nil {
		if isNoRows(err) {
			return false, 0, errs.E(errs.NotFound, "run %q not found", runID)
		}
		return false, 0, err
	}
	if offset < received && offset+int64(len(data)) > received {
		// A retry that resends stored bytes and more: keep the new part.
		data, offset = data[received-offset:], received
	}
	switch {
	case offset < received:
		return true, received, nil // already stored
	case offset > received:
		return false, 0, errs.E(errs.Conflict, "log offset %d is past the end of the log (%d bytes)", offset, received)
	case len(data) == 0:
		return true, received, nil
	}
	room := s.logLimit() - size
	if Terminal(state) && dropped > 0 {
		room += lateLogRoom // the end was told: the last lines fit
	}
	chunk := data
	if room = max(room, 0); int64(len(data)) > room {
		kept := cutLog(data, room)
		chunk = kept
		if dropped == 0 { // the first cut: say so there, on a line of its own
			midLine := len(kept) > 0 && kept[len(kept)-1] != '\n'
			if len(kept) == 0 {
				ends, err := s.endsLine(ctx, runID, size)
				if err != nil {
					return false, 0, err
				}
				midLine = !ends
			}
			chunk = append(kept[:len(kept):len(kept)], s.limitNote(midLine)...)
		}
		dropped += int64(len(data) - len(kept))
	}
	end := offset + int64(len(data))
	res, err := s.db.Exec(ctx, `UPDATE runs SET log_received = $3, log_size = $4, log_dropped = $5 WHERE id = $1 AND log_received = $2`,
		runID, offset, end, size+int64(len(chunk)), dropped)
	if err != nil {
		return false, 0, err
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return false, 0, nil
	}
	if len(chunk) > 0 {
		if _, err := s.db.Exec(ctx, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)`, runID, size, chunk); err != nil {
			return false, 0, err
		}
		n.add(LogKey(runID))
	}
	return true, end, nil
}

// storedLogAt maps an offset of the workers' log stream (log_received's
// measure) to a position in the stored log (log_size's): the stored log
// holds what the workers sent plus Gantry's own lines, so the position is
// as far before the stored end as the offset is before what was received
// (or past it, for bytes not received yet). Once output was dropped past
// the limit, nothing more of the workers' is stored: the stored end. A
// negative offset (unknown) stays negative.
func (s *Service) storedLogAt(ctx context.Context, runID string, offset int64) (int64, error) {
	if offset < 0 {
		return -1, nil
	}
	var received, size, dropped int64
	if err := s.db.QueryRow(ctx, `SELECT log_received, log_size, log_dropped FROM runs WHERE id = $1`, runID).Scan(&received, &size, &dropped); err != nil {
		return 0, err
	}
	if dropped > 0 {
		return size, nil
	}
	return max(size+offset-received, 0), nil
}

// cutLog is the part of data that fits in room bytes: up to its last line
// break there, else up to its last whole UTF-8 character.
func cutLog(data []byte, room int64) []byte {
	keep := data[:room]
	if i := bytes.LastIndexByte(keep, '\n'); i >= 0 {
		return keep[:i+1]
	}
	for i := len(keep) - 1; i >= 0 && i >= len(keep)-utf8.UTFMax; i-- {
		if utf8.RuneStart(keep[i]) {
			if !utf8.FullRune(keep[i:]) {
				keep = keep[:i]
			}
			break
		}
	}
	return keep
}

// limitNote is the line a log gets where it reaches its limit (after a
// line break first when the log stops in mid-line).
func (s *Service) limitNote(midLine bool) []byte {
	note := fmt.Sprintf("[gantry] This run's log reached its limit of %s (--max-run-log-size): output past this point is not stored; the run goes on.\n",
		bytesize.Format(s.logLimit()))
	if midLine {
		note = "\n" + note
	}
	return []byte(note)
}

// endsLine tells whether the stored log of a run, of size bytes, ends at
// the end of a line (or is empty).
func (s *Service) endsLine(ctx context.Context, runID string, size int64) (bool, error) {
	if size == 0 {
		return true, nil
	}
	var last []byte
	err := s.db.QueryRow(ctx, `SELECT SUBSTR(data, LENGTH(data), 1) FROM run_logs WHERE run_id = $1 AND byte_offset + LENGTH(data) = $2`,
		runID, size).Scan(&last)
	if isNoRows(err) {
		return true, nil
	}
	return len(last) != 1 || last[0] == '\n', err
}

// noteDropped ends the stored log of a run that is ending with a line
// saying how much of its output was dropped past the limit, if any.
func (s *Service) noteDropped(ctx context.Context, n *notes, runID string) error {
	var size, dropped int64
	if err := s.db.QueryRow(ctx, `SELECT log_size, log_dropped FROM runs WHERE id = $1`, runID).Scan(&size, &dropped); err != nil || dropped == 0 {
		return err
	}
	amount := fmt.Sprintf("%d bytes", dropped)
	if dropped >= 1024 {
		amount += " (" + bytesize.Format(dropped) + ")"
	}
	note := fmt.Sprintf("[gantry] %s of this run's output were dropped past its log limit of %s (--max-run-log-size).\n",
		amount, bytesize.Format(s.logLimit()))
	if ends, err := s.endsLine(ctx, runID, size); err != nil {
		return err
	} else if !ends {
		note = "\n" + note
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)`, runID, size, []byte(note)); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, `UPDATE runs SET log_size = $2 WHERE id = $1`, runID, size+int64(len(note))); err != nil {
		return err
	}
	n.add(LogKey(runID))
	return nil
}

// closeLog appends Gantry's closing line to the log of a run the server
// ended itself, at the log's end, in the transaction that ended it (the
// run's row is locked: no append comes in between). A worker that is
// still writing does not know of the line: its later appends, at the
// offsets of what it sent (log_received, which the line does not move),
// go after it. Where the line is is recorded (closing_log_at).
func (s *Service) closeLog(ctx context.Context, n *notes, runID, line string) error {
	var size, closingAt int64
	if err := s.db.QueryRow(ctx, `SELECT log_size, closing_log_at FROM runs WHERE id = $1`, runID).Scan(&size, &closingAt); err != nil {
		return err
	}
	if closingAt >= 0 {
		return nil // closed already
	}
	data := []byte("[gantry] " + line + "\n")
	// A log cut in mid-line (a worker lost while writing one) gets the
	// closing line on a line of its own.
	if ends, err := s.endsLine(ctx, runID, size); err != nil {
		return err
	} else if !ends {
		data = append([]byte("\n"), data...)
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
	data, done, _, err := s.readLogWait(ctx, runID, nil, offset, max, wait)
	return data, done, err
}

// ReadRunLog is ReadLog for a run the caller has just loaded: when that
// copy already answers (bytes past offset, or the run has ended), the run
// is not read again. Otherwise it waits as ReadLog does. It also says
// whether it waited (the answer came after a wait, not at once).
func (s *Service) ReadRunLog(ctx context.Context, r Run, offset int64, max int, wait time.Duration) (data []byte, done, waited bool, err error) {
	return s.readLogWait(ctx, r.ID, &r, offset, max, wait)
}

func (s *Service) readLogWait(ctx context.Context, runID string, known *Run, offset int64, max int, wait time.Duration) ([]byte, bool, bool, error) {
	deadline := time.Now().Add(wait)
	for waited := false; ; waited = true {
		var size int64
		var state string
		// The channel is taken before the log's end is read, so an append
		// in between wakes the wait below. A run loaded by the caller was
		// read before the channel existed: it is trusted only when it
		// answers at once (the log only grows; an ended run stays ended).
		//
		// The channel is released whatever happens: the log of a run that
		// ended is never notified again, and its key would stay in the hub
		// for the life of the process.
		key := LogKey(runID)
		c := s.hub.Chan(key)
		if known != nil && (offset < known.LogSize || Terminal(known.State)) {
			size, state = known.LogSize, known.State
		} else if err := s.db.QueryRow(ctx, `SELECT log_size, state FROM runs WHERE id = $1`, runID).Scan(&size, &state); err != nil {
			s.hub.Release(key, c)
			if isNoRows(err) {
				return nil, false, waited, errs.E(errs.NotFound, "run %q not found", runID)
			}
			return nil, false, waited, err
		}
		known = nil
		if offset < size {
			s.hub.Release(key, c)
			data, err := s.readLog(ctx, runID, offset, max)
			return data, false, waited, err
		}
		left := time.Until(deadline)
		if Terminal(state) || left <= 0 || ctx.Err() != nil {
			s.hub.Release(key, c)
			return nil, Terminal(state), waited, nil
		}
		if s.OnLogWait != nil {
			s.OnLogWait()
		}
		// Poll at least every second: another replica may have appended.
		events.Wait(ctx, c, min(left, time.Second))
		s.hub.Release(key, c)
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

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{{Table: "run_artifacts", Column: "data", Keys: []string{"run_id", "name"},
	Encoding: secrets.Raw, AAD: func(v []any) string { return artifactAAD(fmt.Sprint(v[0]), fmt.Sprint(v[1])) }}}

// PutArtifact stores an artifact of the run, encrypted.
func (s *Service) PutArtifact(ctx context.Context, runID, name string, data []byte) error {
	return s.putArtifact(ctx, runID, name, planToolVersion(name, data), s.box.Seal(data, artifactAAD(runID, name)))
}

// PutArtifactPlain is PutArtifact of an artifact read into p, which it
// seals where it lies (a large plan is held once): p is used up.
func (s *Service) PutArtifactPlain(ctx context.Context, runID, name string, p *secrets.Plaintext) error {
	version := planToolVersion(name, p.Bytes())
	return s.putArtifact(ctx, runID, name, version, s.box.SealPlaintext(p, artifactAAD(runID, name)))
}

// planToolVersion is the version of the tool that made a plan JSON (its
// terraform_version, which `show -json` writes among its first keys: only
// the first 64 KiB are read); "" for other artifacts, or if not found.
func planToolVersion(name string, data []byte) string {
	if name != ArtifactPlanJSON {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(data[:min(len(data), 64<<10)]))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		if key == "terraform_version" {
			var version string
			if json.Unmarshal(v, &version) != nil || len(version) > 64 {
				return ""
			}
			return version
		}
	}
	return ""
}

func (s *Service) putArtifact(ctx context.Context, runID, name, toolVersion string, sealed []byte) error {
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
		if toolVersion != "" {
			if _, err := s.db.Exec(ctx, `UPDATE runs SET tool_version = $2 WHERE id = $1`, runID, toolVersion); err != nil {
				return err
			}
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

// PhaseLog returns the stored log of a run while it was in state (each
// time it was, in order): its last max bytes, and how many bytes before
// them were left out. A state ends where the next one begins, or, when
// the next one ends the run, at the log's end (a worker's last lines, its
// failure, come after). ok is false when where the state began or ended
// is not known (a phase reported by an older worker); a state the run
// never entered has an empty log.
func (s *Service) PhaseLog(ctx context.Context, runID, state string, max int) (data []byte, omitted int64, ok bool, err error) {
	ts, err := s.Transitions(ctx, runID)
	if err != nil {
		return nil, 0, false, err
	}
	var size int64
	if err := s.db.QueryRow(ctx, `SELECT log_size FROM runs WHERE id = $1`, runID).Scan(&size); err != nil {
		if isNoRows(err) {
			return nil, 0, false, errs.E(errs.NotFound, "run %q not found", runID)
		}
		return nil, 0, false, err
	}
	type span struct{ from, to int64 }
	var spans []span
	for i, t := range ts {
		if t.To != state {
			continue
		}
		end := size
		if i+1 < len(ts) && !Terminal(ts[i+1].To) {
			end = ts[i+1].LogOffset
		}
		if t.LogOffset < 0 || end < 0 {
			return nil, 0, false, nil
		}
		from, to := min(t.LogOffset, size), min(end, size)
		if to > from {
			spans = append(spans, span{from, to})
		}
	}
	// The last max bytes, from the last span back.
	left := int64(max)
	var parts [][]byte
	for i := len(spans) - 1; i >= 0; i-- {
		sp := spans[i]
		if left <= 0 {
			omitted += sp.to - sp.from
			continue
		}
		from := sp.to - min(left, sp.to-sp.from)
		omitted += from - sp.from
		b, err := s.readLog(ctx, runID, from, int(sp.to-from))
		if err != nil {
			return nil, 0, false, err
		}
		left -= int64(len(b))
		parts = append(parts, b)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		data = append(data, parts[i]...)
	}
	return data, omitted, true, nil
}
