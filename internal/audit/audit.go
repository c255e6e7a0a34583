// Package audit keeps Gantry's tamper-evident audit trail: who did what to
// which subject in which space, when, from where, and with what outcome.
//
// Events are numbered by a gap-free sequence per database and hash-chained:
// each event's hash covers the previous event's hash and every other field
// of the event (see [Event.ComputeHash]), so editing, deleting or reordering
// a stored event breaks the chain, and [Service.Verify] names the first
// broken link.
//
// [Service.Record] writes an event in the transaction the context carries
// (package db keeps it in the context), so a change that rolls back leaves
// no event and a change that commits always has its event. Writers are
// serialized by one row, audit_head, which each Record updates in its
// transaction: on PostgreSQL its row lock orders the writers of every
// replica; on SQLite the single writer does. Call Record last in a
// transaction, so that the head row is held as briefly as possible. A
// process that wrote the head last moves it with one compare-and-set
// (two statements per event); otherwise Record locks and reads it first.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Outcomes of an event.
const (
	Success = "success"
	Denied  = "denied"
	Failed  = "failed"
)

// Actors that are not principals.
const (
	// System is the actor of what Gantry does by itself (scheduler,
	// reaper, policies).
	System = "gantry"
	// Unknown is the actor of a request whose credentials did not work.
	Unknown = "unknown"
)

// ZeroHash is the prev_hash of the first event.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Event is one audit event.
type Event struct {
	Seq         int64     // 1, 2, 3... per database, without gaps
	At          time.Time // when it was recorded, to the nanosecond
	Actor       string    // "api_key::ci", "run::run-...", "worker:wrk-...", "gantry", "unknown"
	Roles       []string  // the actor's roles at the time: "admin", then role@space
	SourceIP    string
	RequestID   string
	Action      string // "<subject>.<verb>", e.g. "stack.create"
	SubjectType string // e.g. "stack"
	SubjectID   string
	Space       string
	// Change is JSON (see [NewChange]: before/after with secrets redacted)
	// or empty. It is hashed exactly as stored.
	Change   json.RawMessage
	Outcome  string // Success, Denied or Failed
	PrevHash string // hex SHA-256 of the previous event, ZeroHash for the first
	Hash     string // hex SHA-256, see ComputeHash
}

// Service records, lists and verifies audit events.
type Service struct {
	db       *db.DB
	log      *slog.Logger
	now      func() time.Time
	failures failureLimiter
	forward  *Forwarder // set by NewForwarder

	hintMu   sync.Mutex
	hintSeq  int64  // the head this process last wrote (see Record)
	hintHash string // "" when unknown
}

// NewService returns the audit service over d. A nil log discards.
func NewService(d *db.DB, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: d, log: log, now: time.Now}
}

var actionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`)

// complete completes ev from the request facts of ctx and checks it.
func (s *Service) complete(ctx context.Context, ev *Event) error {
	if st := stateFrom(ctx); st != nil {
		req := st.request()
		if ev.Actor == "" {
			ev.Actor = req.Actor
		}
		if ev.Roles == nil {
			ev.Roles = req.Roles
		}
		if ev.SourceIP == "" {
			ev.SourceIP = req.SourceIP
		}
		if ev.RequestID == "" {
			ev.RequestID = req.RequestID
		}
	}
	if ev.Actor == "" {
		if p, ok := auth.From(ctx); ok {
			ev.Actor = p.String()
		} else {
			ev.Actor = System
		}
	}
	if ev.Roles == nil {
		ev.Roles = []string{}
	}
	if ev.Outcome == "" {
		ev.Outcome = Success
	}
	// Text a caller controls (paths, request ids, names) must never keep an
	// event out of the trail: PostgreSQL refuses NUL and invalid UTF-8.
	for _, f := range []*string{&ev.Actor, &ev.SourceIP, &ev.RequestID, &ev.SubjectType, &ev.SubjectID, &ev.Space} {
		*f = cleanText(*f)
	}
	for i := range ev.Roles {
		ev.Roles[i] = cleanText(ev.Roles[i])
	}
	switch {
	case !actionRE.MatchString(ev.Action):
		return errs.E(errs.Invalid, "audit action %q is not of the form <subject>.<verb>", ev.Action)
	case ev.Outcome != Success && ev.Outcome != Denied && ev.Outcome != Failed:
		return errs.E(errs.Invalid, "audit outcome %q is not success, denied or failed", ev.Outcome)
	}
	if len(ev.Change) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, ev.Change); err != nil {
			return errs.E(errs.Invalid, "audit change of %s is not valid JSON: %v", ev.Action, err)
		}
		ev.Change = buf.Bytes()
	}
	return nil
}

// Record writes ev as the next event of the chain, in the transaction ctx
// carries (or in its own if none), and returns it as stored. Fields left
// empty are taken from the request facts of ctx ([WithRequest]): actor
// (else the principal of ctx, else [System]), roles, source IP and request
// id; the outcome defaults to [Success]. Seq, At, PrevHash and Hash are set
// here.
//
// If the transaction rolls back, the event is gone with the change. Once it
// commits, [Recorded] reports true for the request of ctx, so that the API
// middleware does not add a generic event for the same request.
func (s *Service) Record(ctx context.Context, ev Event) (Event, error) {
	if err := s.complete(ctx, &ev); err != nil {
		return Event{}, err
	}
	given := !ev.At.IsZero()
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		stamp := func() {
			if !given {
				ev.At = s.now()
			}
			ev.At = db.FromNanos(db.Nanos(ev.At))
		}
		roles, err := json.Marshal(ev.Roles)
		if err != nil {
			return err
		}
		// Fast path: the head this process last wrote is still the head,
		// so the event follows it and the head moves to it in one
		// compare-and-set (which takes the head's row lock, held until the
		// transaction ends). The hint is only a guess: if another writer
		// (replica, rolled back transaction, other process) moved the head,
		// nothing matches and the slow path below locks and reads it.
		advanced := false
		if seq, hash, ok := s.headHint(); ok {
			stamp()
			ev.Seq, ev.PrevHash = seq+1, hash
			ev.Hash = ev.ComputeHash()
			res, err := s.db.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4`, ev.Seq, ev.Hash, seq, hash)
			if err != nil {
				return fmt.Errorf("audit: advance head: %w", err)
			}
			n, _ := res.RowsAffected()
			advanced = n == 1
		}
		if !advanced {
			// The row lock taken here is held until the transaction ends:
			// every other writer waits, so seq and prev_hash follow one line.
			if err := s.db.QueryRow(ctx, `UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash`).
				Scan(&ev.Seq, &ev.PrevHash); err != nil {
				return fmt.Errorf("audit: advance head: %w", err)
			}
			stamp() // under the lock: times follow the sequence
			ev.Hash = ev.ComputeHash()
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO audit_events (seq, at, actor, roles, source_ip, request_id, action,
			subject_type, subject_id, space, change, outcome, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			ev.Seq, db.Nanos(ev.At), ev.Actor, string(roles), ev.SourceIP, ev.RequestID, ev.Action,
			ev.SubjectType, ev.SubjectID, ev.Space, string(ev.Change), ev.Outcome, ev.PrevHash, ev.Hash); err != nil {
			return fmt.Errorf("audit: insert event: %w", err)
		}
		if !advanced {
			if _, err := s.db.Exec(ctx, `UPDATE audit_head SET hash = $1 WHERE id = 1`, ev.Hash); err != nil {
				return fmt.Errorf("audit: update head: %w", err)
			}
		}
		s.setHeadHint(ev.Seq, ev.Hash)
		if st := stateFrom(ctx); st != nil {
			s.db.AfterCommit(ctx, st.markRecorded)
		}
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// headHint returns the head this process last wrote, if any.
func (s *Service) headHint() (seq int64, hash string, ok bool) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	return s.hintSeq, s.hintHash, s.hintHash != ""
}

// setHeadHint remembers the head this process just wrote (committed or
// not: a wrong hint only sends the next writer down the slow path).
func (s *Service) setHeadHint(seq int64, hash string) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	s.hintSeq, s.hintHash = seq, hash
}

// cleanText drops NUL bytes, replaces invalid UTF-8 and bounds the length
// (on a rune boundary).
func cleanText(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	return truncate.String(s, 1024)
}
