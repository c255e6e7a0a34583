// Package integration keeps cloud integrations: a space's trust in a cloud
// account (AWS today), attached to stacks for reading (planning) and/or
// writing (applying). When a job is claimed, each integration that applies
// mints short-lived credentials for that run only, from the run's OIDC
// token or the server's own identity; they reach the run's environment,
// are never stored, and every issuance is audited.
package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Types of integration (Vault is in vault.go).
const (
	AWS = "aws"
)

// AutoattachPrefix marks a label attaching the integration (read and
// write) to stacks with that label; autoattach:* to every stack that
// sees its space.
const AutoattachPrefix = labels.AutoattachPrefix

// Integration is one cloud trust.
type Integration struct {
	ID, Name, Space, Type string
	Config                map[string]string // non-secret settings, per type
	Labels                []string
	Description           string
	CreatedAt, UpdatedAt  time.Time
}

// Attachment is a stack an integration applies to.
type Attachment struct {
	IntegrationID, StackID string
	Read, Write            bool
	Via                    string // "explicit" or the autoattach label
	// NotApplied says why runs of the stack do not get the integration's
	// credentials although it is attached explicitly ("": they do): the
	// stack's space no longer sees the integration's space (it moved, or a
	// space on the way stopped inheriting).
	NotApplied string
}

// Explicit is the Via of an attachment made by hand.
const Explicit = "explicit"

// Service stores integrations and mints their credentials.
type Service struct {
	db     *db.DB
	spaces *space.Service
	stacks *stack.Service
	// Audit records changes and every credential issuance.
	Audit audit.Hook
	// Minters by type; New installs the built-in ones.
	Minters map[string]Minter
	// Box seals the secrets Gantry manages (Azure managed mode); Graph is
	// the server's Microsoft Graph credential for that mode (nil: off).
	Box   *secrets.Box
	Graph *GraphAdmin
}

// New returns the integration service with the built-in minters.
func New(d *db.DB, spaces *space.Service, stacks *stack.Service) *Service {
	return &Service{db: d, spaces: spaces, stacks: stacks, Minters: Builtin()}
}

const cols = `id, name, space_id, type, config, labels, description, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Integration, error) {
	var in Integration
	var cfg, lbl string
	var cr, up int64
	if err := row.Scan(&in.ID, &in.Name, &in.Space, &in.Type, &cfg, &lbl, &in.Description, &cr, &up); err != nil {
		return in, err
	}
	if err := json.Unmarshal([]byte(cfg), &in.Config); err != nil {
		return in, err
	}
	var err error
	in.Labels, err = labels.Decode(lbl)
	in.CreatedAt, in.UpdatedAt = time.Unix(0, cr).UTC(), time.Unix(0, up).UTC()
	return in, err
}

// view is what the audit trail shows of an integration (its settings are
// not secret).
func view(in Integration) map[string]any {
	return map[string]any{"name": in.Name, "space": in.Space, "type": in.Type, "config": in.Config, "labels": in.Labels, "description": in.Description}
}

func (s *Service) validate(in *Integration) error {
	if !id.ValidSlug(in.ID) {
		return errs.E(errs.Invalid, "integration id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", in.ID)
	}
	if in.Name == "" {
		in.Name = in.ID
	}
	if in.Space == "" {
		in.Space = space.Root
	}
	if len(in.Name) > 255 || len(in.Description) > 4096 {
		return errs.E(errs.Invalid, "integration name (255) or description (4096 bytes) too long")
	}
	m, ok := s.Minters[in.Type]
	if !ok {
		var known []string
		for t := range s.Minters {
			known = append(known, t)
		}
		sort.Strings(known)
		return errs.E(errs.Invalid, "integration type %q is not supported: want one of %s", in.Type, strings.Join(known, ", "))
	}
	if in.Config == nil {
		in.Config = map[string]string{}
	}
	if len(in.Config) > 64 {
		return errs.E(errs.Invalid, "at most 64 settings")
	}
	cfg := make(map[string]string, len(in.Config))
	for k, v := range in.Config {
		if k != OnWorker {
			cfg[k] = v
		}
	}
	if v, ok := in.Config[OnWorker]; ok && v != "true" && v != "false" {
		return errs.E(errs.Invalid, "%s must be true or false", OnWorker)
	}
	if err := m.Validate(cfg); err != nil {
		return err
	}
	if in.Type == Azure && cfg[AzureMode] == AzureModeManaged {
		if in.Config[OnWorker] == "true" {
			return errs.E(errs.Invalid, "managed mode keeps the secret on the server: it cannot be generated on the worker")
		}
		if s.Graph == nil {
			return errs.E(errs.Invalid, "managed mode needs the server's Microsoft Graph credential (gantry server --azure-graph-tenant-id, --azure-graph-client-id, --azure-graph-client-secret)")
		}
	}
	l, err := labels.Normalize(in.Labels)
	in.Labels = l
	return err
}

// Create adds an integration.
func (s *Service) Create(ctx context.Context, in Integration) (Integration, error) {
	if err := s.validate(&in); err != nil {
		return in, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	in.CreatedAt, in.UpdatedAt = now, now
	cfg, _ := json.Marshal(in.Config)
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.spaces.Share(ctx, in.Space); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO integrations (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
			in.ID, in.Name, in.Space, in.Type, string(cfg), labels.Encode(in.Labels), in.Description, now.UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "integration %q already exists", in.ID)
		}
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "integration.create", "integration", in.ID, in.Space, nil, view(in))
	})
	return in, err
}

// Get returns one integration.
func (s *Service) Get(ctx context.Context, integrationID string) (Integration, error) {
	in, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM integrations WHERE id = $1`, integrationID))
	if errors.Is(err, sql.ErrNoRows) {
		return in, errs.E(errs.NotFound, "integration %q not found", integrationID)
	}
	return in, err
}

// lock returns an integration for a transaction that changes it after
// reading it: its row is locked until the transaction ends (see
// db.LockRow), and Attach (which shares the row) never attaches an
// integration being deleted.
func (s *Service) lock(ctx context.Context, integrationID string) (Integration, error) {
	if _, err := s.db.LockRow(ctx, "integrations", integrationID); err != nil {
		return Integration{}, err
	}
	return s.Get(ctx, integrationID)
}

// List returns the integrations of a space ("" for all), by id.
func (s *Service) List(ctx context.Context, spaceID string) ([]Integration, error) {
	q, args := `SELECT `+cols+` FROM integrations ORDER BY id`, []any{}
	if spaceID != "" {
		q, args = `SELECT `+cols+` FROM integrations WHERE space_id = $1 ORDER BY id`, []any{spaceID}
	}
	return s.query(ctx, q, args...)
}

func (s *Service) query(ctx context.Context, q string, args ...any) ([]Integration, error) {
	return db.Collect(ctx, s.db, scan, q, args...)
}

// Update changes an integration with fn; its id, space and type stay.
func (s *Service) Update(ctx context.Context, integrationID string, fn func(*Integration) error) (Integration, error) {
	var in Integration
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if in, err = s.lock(ctx, integrationID); err != nil {
			return err
		}
		old := in
		if err := fn(&in); err != nil {
			return err
		}
		in.ID, in.Space, in.Type = old.ID, old.Space, old.Type
		if err := s.validate(&in); err != nil {
			return err
		}
		in.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		cfg, _ := json.Marshal(in.Config)
		if _, err := s.db.Exec(ctx, `UPDATE integrations SET name = $2, config = $3, labels = $4, description = $5, updated_at = $6 WHERE id = $1`,
			in.ID, in.Name, string(cfg), labels.Encode(in.Labels), in.Description, in.UpdatedAt.UnixNano()); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "integration.update", "integration", in.ID, in.Space, view(old), view(in))
	})
	return in, err
}

// Delete removes an integration and its attachments.
//
// A managed Azure integration's client secrets are removed at Microsoft
// first: if that fails, nothing is deleted and the error says why (a
// secret nobody knows of must not live on).
func (s *Service) Delete(ctx context.Context, integrationID string) error {
	in, err := s.Get(ctx, integrationID)
	if err != nil {
		return err
	}
	if in.Type != Azure || in.Config[AzureMode] != AzureModeManaged {
		return s.delete(ctx, integrationID)
	}
	return s.db.WithLock(ctx, secretsLock, func(ctx context.Context) error {
		keys, err := s.secretKeys(ctx, in.ID, time.Unix(0, math.MaxInt64))
		if err != nil {
			return err
		}
		if len(keys) > 0 && s.Graph == nil {
			return errs.E(errs.Unavailable, "integration %s: its %d client secret(s) at Microsoft can only be removed with the server's Microsoft Graph credential (--azure-graph-*): nothing was deleted", in.ID, len(keys))
		}
		if err := s.removeSecrets(ctx, in, keys); err != nil {
			return errs.Wrap(errs.KindOf(err), err, "%s (the integration was not deleted: try again)", errs.Public(err))
		}
		return s.delete(ctx, integrationID)
	})
}

func (s *Service) delete(ctx context.Context, integrationID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		in, err := s.lock(ctx, integrationID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM integrations WHERE id = $1`, integrationID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "integration.delete", "integration", in.ID, in.Space, view(in), nil)
	})
}

// lineage returns the ids of the spaces a space sees.
func (s *Service) lineage(ctx context.Context, spaceID string) ([]string, error) {
	lin, err := s.spaces.Lineage(ctx, spaceID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(lin))
	for i, sp := range lin {
		ids[i] = sp.ID
	}
	return ids, nil
}

// Attach attaches an integration to a stack for read and/or write. The
// integration must be in the stack's space or an ancestor it inherits
// from.
func (s *Service) Attach(ctx context.Context, integrationID, stackID string, read, write bool) (Attachment, error) {
	if !read && !write {
		return Attachment{}, errs.E(errs.Invalid, "attach for read, write or both")
	}
	at := Attachment{IntegrationID: integrationID, StackID: stackID, Read: read, Write: write, Via: Explicit}
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// Both rows shared until the attachment is stored (see
		// db.ShareRow): neither is deleted from under it.
		if _, err := s.db.ShareRow(ctx, "integrations", integrationID); err != nil {
			return err
		}
		in, err := s.Get(ctx, integrationID)
		if err != nil {
			return err
		}
		st, err := s.stacks.Share(ctx, stackID)
		if err != nil {
			return err
		}
		ids, err := s.lineage(ctx, st.Space)
		if err != nil {
			return err
		}
		if !labels.Has(ids, in.Space) {
			return errs.E(errs.Invalid, "integration %q is in space %q, which stack %q (space %q) does not inherit from", in.ID, in.Space, st.ID, st.Space)
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO integration_attachments (integration_id, stack_id, read, write, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (integration_id, stack_id) DO UPDATE SET read = excluded.read, write = excluded.write`, in.ID, st.ID, read, write, time.Now().UnixNano()); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "integration.attach", "integration", in.ID, st.Space, nil, map[string]any{"stack": st.ID, "read": read, "write": write})
	})
	return at, err
}

// Detach removes an explicit attachment.
func (s *Service) Detach(ctx context.Context, integrationID, stackID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		in, err := s.Get(ctx, integrationID)
		if err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `DELETE FROM integration_attachments WHERE integration_id = $1 AND stack_id = $2`, integrationID, stackID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "integration %q is not attached to stack %q explicitly", integrationID, stackID)
		}
		return s.Audit.Record(ctx, "integration.detach", "integration", in.ID, in.Space, map[string]any{"stack": stackID}, nil)
	})
}

// Attachments returns the stacks an integration applies to, as runs
// decide (ForStack): its explicit attachments by stack id (one whose
// stack's space no longer sees the integration's space listed with the
// reason runs do not use it), then the stacks it reaches through an
// autoattach label (read and write, Via the label), by stack id.
func (s *Service) Attachments(ctx context.Context, integrationID string) ([]Attachment, error) {
	in, err := s.Get(ctx, integrationID)
	if err != nil {
		return nil, err
	}
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (Attachment, error) {
		a := Attachment{IntegrationID: integrationID, Via: Explicit}
		err := row.Scan(&a.StackID, &a.Read, &a.Write)
		return a, err
	}, `SELECT stack_id, read, write FROM integration_attachments WHERE integration_id = $1 ORDER BY stack_id`, integrationID)
	if err != nil {
		return nil, err
	}
	explicit := map[string]bool{}
	for i, at := range out {
		explicit[at.StackID] = true
		st, err := s.stacks.Get(ctx, at.StackID)
		if err != nil {
			return nil, err
		}
		lin, err := s.spaces.Lineage(ctx, st.Space)
		if err != nil {
			return nil, err
		}
		if seesSpace(lin, in.Space) {
			continue
		}
		if out[i].NotApplied, err = s.spaces.NotApplied(ctx, lin, st.ID, st.Space, in.Space, "integration"); err != nil {
			return nil, err
		}
	}
	return s.autoattached(ctx, in, explicit, out)
}

// autoattached appends to out the stacks in reaches by an autoattach label
// (those not in explicit, whose space sees in's), as ForStack decides.
func (s *Service) autoattached(ctx context.Context, in Integration, explicit map[string]bool, out []Attachment) ([]Attachment, error) {
	if !labels.HasAutoattach(in.Labels) {
		return out, nil
	}
	for cursor := ""; ; {
		page, next, err := s.stacks.List(ctx, stack.Filter{Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, st := range page {
			via := labels.AutoattachMatch(in.Labels, st.Labels)
			if explicit[st.ID] || via == "" {
				continue
			}
			lin, err := s.spaces.Lineage(ctx, st.Space)
			if err != nil {
				return nil, err
			}
			if seesSpace(lin, in.Space) {
				out = append(out, Attachment{IntegrationID: in.ID, StackID: st.ID, Read: true, Write: true, Via: via})
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// seesSpace reports whether a lineage (what a stack's space sees) holds
// space id: ForStack considers only the integrations of those spaces.
func seesSpace(lin []space.Space, id string) bool {
	for _, sp := range lin {
		if sp.ID == id {
			return true
		}
	}
	return false
}

// Applied is an integration that applies to a stack.
type Applied struct {
	Integration Integration
	Attachment  Attachment
}

// Attaching returns the ids of the integrations that apply to st because
// of its labels or its space, by id: through one of its labels
// (`autoattach:<label>`), or through an explicit attachment, which applies
// only while the stack's space sees the integration's (one made before the
// stack moved away applies again when it moves back). Not those labelled
// `autoattach:*`, which apply to every stack that sees their space (setting
// that label took integration:attach in the integration's space). A change of st's labels or space that makes one apply
// that did not is attaching it.
func (s *Service) Attaching(ctx context.Context, st stack.Stack) ([]string, error) {
	applied, err := s.ForStack(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ap := range applied {
		if !labels.Has(ap.Integration.Labels, AutoattachPrefix+"*") {
			out = append(out, ap.Integration.ID)
		}
	}
	return out, nil
}

// ForStack returns the integrations that apply to a stack: explicit
// attachments, then those auto-attached by label (read and write), of
// the stack's space and the ancestors it inherits from, by id.
func (s *Service) ForStack(ctx context.Context, st stack.Stack) ([]Applied, error) {
	ids, err := s.lineage(ctx, st.Space)
	if err != nil {
		return nil, err
	}
	in, args := db.InList(ids, 0)
	cands, err := s.query(ctx, `SELECT `+cols+` FROM integrations WHERE space_id IN (`+in+`) ORDER BY id`, args...)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	explicit := map[string]Attachment{}
	rows, err := s.db.Query(ctx, `SELECT integration_id, read, write FROM integration_attachments WHERE stack_id = $1`, st.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		a := Attachment{StackID: st.ID, Via: Explicit}
		if err := rows.Scan(&a.IntegrationID, &a.Read, &a.Write); err != nil {
			rows.Close()
			return nil, err
		}
		explicit[a.IntegrationID] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []Applied
	for _, in := range cands {
		if a, ok := explicit[in.ID]; ok {
			out = append(out, Applied{Integration: in, Attachment: a})
			continue
		}
		if l := labels.AutoattachMatch(in.Labels, st.Labels); l != "" {
			out = append(out, Applied{Integration: in, Attachment: Attachment{IntegrationID: in.ID, StackID: st.ID, Read: true, Write: true, Via: l}})
		}
	}
	return out, nil
}
