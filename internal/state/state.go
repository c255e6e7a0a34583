// Package state is the managed state backend of stacks: versions kept with
// serial, lineage and checksum, encrypted at rest, locks, rollback. The HTTP
// side (OpenTofu's `backend "http"` protocol) lives in the api package.
package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// DefaultMaxSize is the largest state document accepted unless the
// server says otherwise (Service.MaxSize, --max-state-size).
const DefaultMaxSize = 256 << 20

// MaxSizeLimit is the most --max-state-size may be: PostgreSQL keeps no
// value larger than 1 GB, and a state is stored sealed in one.
const MaxSizeLimit = 1000 << 20

// Version describes one stored state version.
type Version struct {
	StackID   string
	Serial    int64
	Lineage   string
	Checksum  string // hex SHA-256 of the document
	Size      int64
	RunID     string
	CreatedBy string
	CreatedAt time.Time
}

// Service stores state versions and locks.
type Service struct {
	db  *db.DB
	box *secrets.Box
	// Audit records writes, rollbacks, locks and unlocks in their
	// transaction (never the state's content).
	Audit audit.Hook
	// MaxSize is the largest state document accepted (0: DefaultMaxSize).
	MaxSize int64
}

// Limit returns the largest state document accepted.
func (s *Service) Limit() int64 {
	if s.MaxSize > 0 {
		return s.MaxSize
	}
	return DefaultMaxSize
}

// TooLarge is the error refusing a state of size bytes (-1: unknown, read
// past the limit): it names the limit and how the server's operator
// raises it.
func (s *Service) TooLarge(size int64) error {
	what := "the state is larger than"
	if size >= 0 {
		what = fmt.Sprintf("the state (%d bytes, %s) is larger than", size, bytesize.Format(size))
	}
	return errs.E(errs.TooLarge, "%s this server's state size limit of %d bytes (%s): "+
		"the server's operator can raise it with `gantry server --max-state-size` (GANTRY_MAX_STATE_SIZE), up to %s",
		what, s.Limit(), bytesize.Format(s.Limit()), bytesize.Format(MaxSizeLimit))
}

// record records a state event of a stack, in the stack's space.
func (s *Service) record(ctx context.Context, action, stackID string, before, after any) error {
	if s.Audit == nil {
		return nil
	}
	var space string
	if err := s.db.QueryRow(ctx, `SELECT space_id FROM stacks WHERE id = $1`, stackID).Scan(&space); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return s.Audit.Record(ctx, action, "stack", stackID, space, before, after)
}

// versionView is what the audit trail shows of a state version.
func versionView(v Version) map[string]any {
	return map[string]any{"serial": v.Serial, "lineage": v.Lineage, "checksum": v.Checksum, "size": v.Size, "run": v.RunID}
}

// NewService returns a state service.
func NewService(d *db.DB, box *secrets.Box) *Service { return &Service{db: d, box: box} }

func aad(stackID string, serial int64) string {
	return "state:" + stackID + ":" + strconv.FormatInt(serial, 10)
}

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{{Table: "state_versions", Column: "data", Keys: []string{"stack_id", "serial"},
	Encoding: secrets.Raw, AAD: func(v []any) string { return "state:" + fmt.Sprint(v[0]) + ":" + fmt.Sprint(v[1]) }}}

type header struct {
	Version *int    `json:"version"`
	Serial  *int64  `json:"serial"`
	Lineage *string `json:"lineage"`
}

func parseHeader(data []byte) (serial int64, lineage string, err error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return 0, "", errs.E(errs.Invalid, "the state must be a JSON object, got %s", te.Value)
		case errors.As(err, &te) && te.Field == "serial":
			return 0, "", errs.E(errs.Invalid, "state serial must be a non-negative integer, got %s", te.Value)
		case errors.As(err, &te):
			return 0, "", errs.E(errs.Invalid, "state field %q must be %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return 0, "", errs.E(errs.Invalid, "state is not valid JSON: %v", err)
	}
	// OpenTofu's client-side encrypted state has serial and lineage but no
	// version: accept it as it is.
	switch {
	case h.Serial == nil || h.Lineage == nil || *h.Lineage == "":
		return 0, "", errs.E(errs.Invalid, "state must have serial and lineage")
	case *h.Serial < 0:
		return 0, "", errs.E(errs.Invalid, "state serial must be a non-negative integer, got %d", *h.Serial)
	}
	return *h.Serial, *h.Lineage, nil
}

// clientEncrypted tells whether a state document is encrypted by
// OpenTofu's client-side state encryption (`terraform { encryption {} }`),
// as OpenTofu decides it (IsEncryptionPayload and decrypt in its
// internal/encryption/base.go): the document decodes as the encrypted
// envelope and its encryption_version is not empty. The envelope keeps
// serial and lineage in clear beside encrypted_data, and OpenTofu refuses
// the state when they differ from the ones inside.
func clientEncrypted(data []byte) bool {
	var env struct {
		Meta    map[string][]byte `json:"meta"`
		Data    []byte            `json:"encrypted_data"`
		Version string            `json:"encryption_version"`
	}
	return json.Unmarshal(data, &env) == nil && env.Version != ""
}

// jsonKind names a Go kind as JSON does.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int64":
		return "an integer"
	}
	return k
}

const cols = `stack_id, serial, lineage, checksum, size, run_id, created_by, created_at`

func scan(row interface{ Scan(...any) error }) (Version, error) {
	var v Version
	var c int64
	err := row.Scan(&v.StackID, &v.Serial, &v.Lineage, &v.Checksum, &v.Size, &v.RunID, &v.CreatedBy, &c)
	v.CreatedAt = time.Unix(0, c).UTC()
	return v, err
}

// Current returns the newest version of a stack's state and its document.
// It returns a NotFound error when the stack has no state yet.
func (s *Service) Current(ctx context.Context, stackID string) (Version, []byte, error) {
	return s.get(ctx, stackID, fmt.Sprintf("stack %s has no state yet", stackID),
		`SELECT `+cols+`, data FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1`, stackID)
}

// CurrentUpTo is Current for a caller that reserves memory before it
// loads a large document: in one query, it returns the newest version and
// its document when the document is at most max bytes; when it is larger,
// no document (nil) and its size, to reserve before calling Current.
func (s *Service) CurrentUpTo(ctx context.Context, stackID string, max int64) (Version, []byte, error) {
	v, sealed, err := s.getSealed(ctx, `SELECT `+cols+`, CASE WHEN size <= $2 THEN data END FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1`, stackID, max)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil, errs.E(errs.NotFound, "stack %s has no state yet", stackID)
	}
	if err != nil || sealed == nil {
		return v, nil, err
	}
	return s.open(stackID, v, sealed)
}

// CurrentVersion returns the newest version of a stack's state, without
// its document. It returns a NotFound error when the stack has no state yet.
func (s *Service) CurrentVersion(ctx context.Context, stackID string) (Version, error) {
	v, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1`, stackID))
	if errors.Is(err, sql.ErrNoRows) {
		return v, errs.E(errs.NotFound, "stack %s has no state yet", stackID)
	}
	return v, err
}

// VersionSize returns the size of one version's document (serial < 0: the
// current one); 0 when there is none.
func (s *Service) VersionSize(ctx context.Context, stackID string, serial int64) (int64, error) {
	var size int64
	var err error
	if serial < 0 {
		err = s.db.QueryRow(ctx, `SELECT size FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1`, stackID).Scan(&size)
	} else {
		err = s.db.QueryRow(ctx, `SELECT size FROM state_versions WHERE stack_id = $1 AND serial = $2`, stackID, serial).Scan(&size)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return size, err
}

// Get returns one version and its document.
func (s *Service) Get(ctx context.Context, stackID string, serial int64) (Version, []byte, error) {
	return s.get(ctx, stackID, fmt.Sprintf("stack %s has no state version %d", stackID, serial),
		`SELECT `+cols+`, data FROM state_versions WHERE stack_id = $1 AND serial = $2`, stackID, serial)
}

func (s *Service) get(ctx context.Context, stackID, notFound, q string, args ...any) (Version, []byte, error) {
	v, sealed, err := s.getSealed(ctx, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil, errs.E(errs.NotFound, "%s", notFound)
	}
	if err != nil {
		return v, nil, err
	}
	return s.open(stackID, v, sealed)
}

// getSealed reads one version and its sealed document (q selects cols and
// the document).
func (s *Service) getSealed(ctx context.Context, q string, args ...any) (Version, []byte, error) {
	var v Version
	var c int64
	var sealed []byte
	err := s.db.QueryRow(ctx, q, args...).Scan(&v.StackID, &v.Serial, &v.Lineage, &v.Checksum, &v.Size, &v.RunID, &v.CreatedBy, &c, &sealed)
	v.CreatedAt = time.Unix(0, c).UTC()
	return v, sealed, err
}

// open decrypts the document of version v.
func (s *Service) open(stackID string, v Version, sealed []byte) (Version, []byte, error) {
	data, err := s.box.OpenInPlace(sealed, aad(stackID, v.Serial))
	if err != nil {
		return v, nil, errs.Wrap(errs.Internal, err, "state version %d of stack %s cannot be decrypted", v.Serial, stackID)
	}
	return v, data, nil
}

// ResourceCount returns how many resources the current state holds (0 when
// the stack has no state, -1 when the state cannot be inspected, for
// example because OpenTofu encrypted it client-side).
func (s *Service) ResourceCount(ctx context.Context, stackID string) (int, error) {
	_, data, err := s.Current(ctx, stackID)
	if errs.Is(err, errs.NotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var doc struct {
		Resources json.RawMessage `json:"resources"`
	}
	var list []json.RawMessage
	if json.Unmarshal(data, &doc) != nil || (len(doc.Resources) > 0 && json.Unmarshal(doc.Resources, &list) != nil) {
		return -1, nil
	}
	if len(doc.Resources) == 0 {
		// No resources key: encrypted, or not a state OpenTofu wrote.
		var enc struct {
			Encrypted json.RawMessage `json:"encrypted_data"`
		}
		if json.Unmarshal(data, &enc) == nil && len(enc.Encrypted) > 0 {
			return -1, nil
		}
	}
	return len(list), nil
}

// Versions lists a stack's state versions, newest first.
func (s *Service) Versions(ctx context.Context, stackID string) ([]Version, error) {
	return db.Collect(ctx, s.db, scan, `SELECT `+cols+` FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC`, stackID)
}

// LastOfRun returns the serial of the newest state version run saved on
// the stack; saved is false when it saved none.
func (s *Service) LastOfRun(ctx context.Context, stackID, runID string) (serial int64, saved bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT serial FROM state_versions WHERE stack_id = $1 AND run_id = $2 ORDER BY serial DESC LIMIT 1`,
		stackID, runID).Scan(&serial)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return serial, err == nil, err
}

// Write stores a new state version. lockID is the lock the writer holds
// ("" for none); a write to a state locked by someone else is refused, and
// so is a stale serial or a different lineage. Writing the current version
// again is a no-op.
func (s *Service) Write(ctx context.Context, stackID string, data []byte, lockID, runID, actor string) (Version, error) {
	return s.write(ctx, stackID, data, func(aad string) []byte { return s.box.Seal(data, aad) }, lockID, runID, actor)
}

// WritePlain is Write of a document read into p, which it seals where it
// lies (a large state is held once): p is used up.
func (s *Service) WritePlain(ctx context.Context, stackID string, p *secrets.Plaintext, lockID, runID, actor string) (Version, error) {
	return s.write(ctx, stackID, p.Bytes(), func(aad string) []byte { return s.box.SealPlaintext(p, aad) }, lockID, runID, actor)
}

// write stores data, sealed by seal (once its serial is known; outside the
// transaction, which may run more than once).
func (s *Service) write(ctx context.Context, stackID string, data []byte, seal func(aad string) []byte, lockID, runID, actor string) (Version, error) {
	if int64(len(data)) > s.Limit() {
		return Version{}, s.TooLarge(int64(len(data)))
	}
	serial, lineage, err := parseHeader(data)
	if err != nil {
		return Version{}, err
	}
	sum := sha256.Sum256(data)
	v := Version{StackID: stackID, Serial: serial, Lineage: lineage, Checksum: hex.EncodeToString(sum[:]), Size: int64(len(data)),
		RunID: runID, CreatedBy: actor, CreatedAt: time.Now().UTC()}
	sealed := seal(aad(stackID, serial)) // data may be gone from here on
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		if err := s.checkWriteLock(ctx, stackID, lockID, runID); err != nil {
			return err
		}
		cur, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1`, stackID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur.Lineage != lineage:
			return errs.E(errs.Conflict, "state lineage %q does not match the stored lineage %q", lineage, cur.Lineage)
		case serial < cur.Serial:
			return errs.E(errs.Conflict, "state serial %d is older than the stored serial %d", serial, cur.Serial)
		case serial == cur.Serial && cur.Checksum == v.Checksum:
			v = cur
			return nil
		case serial == cur.Serial:
			return errs.E(errs.Conflict, "state serial %d is already stored with different content", serial)
		}
		if err := s.insert(ctx, v, sealed); err != nil {
			return err
		}
		return s.record(ctx, "state.write", stackID, nil, versionView(v))
	})
	return v, err
}

// lockStack takes the stack's row until the transaction ends, so that the
// state changes of one stack (writes, rollbacks) and the creation of its
// runs happen one at a time: on PostgreSQL (READ COMMITTED) two first
// writes would otherwise each see no state and both be stored, with their
// different lineages, and a rollback would not see a run created meanwhile.
// (SQLite's single writer already serializes them.)
func (s *Service) lockStack(ctx context.Context, stackID string) error {
	res, err := s.db.Exec(ctx, `UPDATE stacks SET lock_version = lock_version + 1 WHERE id = $1`, stackID)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return errs.E(errs.NotFound, "stack %q not found", stackID)
	}
	return nil
}

// insert stores a version, sealed with aad(v.StackID, v.Serial).
func (s *Service) insert(ctx context.Context, v Version, sealed []byte) error {
	_, err := s.db.Exec(ctx, `INSERT INTO state_versions (`+cols+`, data) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		v.StackID, v.Serial, v.Lineage, v.Checksum, v.Size, v.RunID, v.CreatedBy, v.CreatedAt.UnixNano(), sealed)
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "state serial %d was written concurrently", v.Serial)
	}
	if db.IsForeignKeyViolation(err) {
		return errs.E(errs.NotFound, "stack %q not found", v.StackID)
	}
	return err
}

// Rollback makes the document of an earlier version current again, as a new
// version with the next serial. The stack must have no run in progress and
// its state must not be locked.
func (s *Service) Rollback(ctx context.Context, stackID string, serial int64, actor string) (Version, error) {
	var v Version
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// First: a run being created now is either seen below or
		// created after the rollback (run.Service.Create takes the row too).
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		var active int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM runs WHERE stack_id = $1 AND state NOT IN ('FINISHED','FAILED','DISCARDED','CANCELED','STOPPED')`, stackID).Scan(&active); err != nil {
			return err
		}
		if active > 0 {
			return errs.E(errs.Conflict, "stack %q has %d run(s) in progress; roll back when it has none", stackID, active)
		}
		if l, err := s.lock(ctx, stackID); err == nil {
			return errs.E(errs.Locked, "state of stack %q is locked by %s (lock %s)", stackID, l.Who, l.ID)
		} else if !errs.Is(err, errs.NotFound) {
			return err
		}
		old, data, err := s.Get(ctx, stackID, serial)
		if err != nil {
			return err
		}
		if clientEncrypted(data) {
			// Only the outer serial could be rewritten; OpenTofu compares it
			// with the one inside the ciphertext and refuses the state.
			return errs.E(errs.Conflict, "state version %d of stack %s is encrypted by OpenTofu (client-side state encryption): "+
				"its serial is inside the ciphertext, which Gantry cannot rewrite, so OpenTofu would refuse the rolled-back state. "+
				"Roll back with your own OpenTofu instead: download the version (gantry stack state show --id %s --serial %d), "+
				"decrypt it, set its serial above the current one and push it (tofu state push); see \"Rolling back an encrypted state\" in docs/state.md",
				serial, stackID, stackID, serial)
		}
		cur, _, err := s.Current(ctx, stackID)
		if err != nil {
			return err
		}
		if old.Serial == cur.Serial {
			return errs.E(errs.Conflict, "serial %d is already the current state", serial)
		}
		if cur.Serial == math.MaxInt64 {
			return errs.E(errs.Conflict, "the current state serial of stack %s is %d, the largest there is: a rollback needs a higher one", stackID, cur.Serial)
		}
		doc := map[string]json.RawMessage{}
		if err := json.Unmarshal(data, &doc); err != nil {
			return errs.Wrap(errs.Internal, err, "stored state %d is not JSON", serial)
		}
		doc["serial"] = json.RawMessage(strconv.FormatInt(cur.Serial+1, 10))
		out, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		out = append(out, '\n')
		sum := sha256.Sum256(out)
		v = Version{StackID: stackID, Serial: cur.Serial + 1, Lineage: old.Lineage, Checksum: hex.EncodeToString(sum[:]), Size: int64(len(out)),
			CreatedBy: actor + " (rollback to serial " + strconv.FormatInt(serial, 10) + ")", CreatedAt: time.Now().UTC()}
		if err := s.insert(ctx, v, s.box.Seal(out, aad(stackID, v.Serial))); err != nil {
			return err
		}
		after := versionView(v)
		after["rolled_back_to"] = serial
		return s.record(ctx, "state.rollback", stackID, versionView(cur), after)
	})
	return v, err
}
