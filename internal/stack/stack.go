// Package stack keeps stacks: one root module in one repository, run by one
// tool, with its environment and hooks.
package stack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Tools a stack can run.
const (
	OpenTofu  = "opentofu"
	Terraform = "terraform"
)

// Hooks are shell commands run in the workspace around each phase.
type Hooks struct {
	BeforeInit  []string `json:"before_init,omitempty"`
	AfterInit   []string `json:"after_init,omitempty"`
	BeforePlan  []string `json:"before_plan,omitempty"`
	AfterPlan   []string `json:"after_plan,omitempty"`
	BeforeApply []string `json:"before_apply,omitempty"`
	AfterApply  []string `json:"after_apply,omitempty"`
}

// Stack is one root module.
type Stack struct {
	ID    string
	Name  string
	Space string
	// Repository is the git URL or absolute path as shown: a credential
	// the URL carries (https://user:password@host/...) is replaced by
	// redact.Hidden (see redact.Repository) and kept sealed; the URL to
	// clone is Service.CloneURL's. Given to Create or Update, it is the
	// URL itself, credential included, or (Update) the URL as shown to
	// keep the stored one.
	Repository   string
	Branch       string
	ProjectRoot  string
	Tool         string
	ToolVersion  string
	Labels       []string
	Description  string
	Autodeploy   bool
	ManagedState bool
	Hooks        Hooks
	WorkerPool   string // empty: the built-in pool
	// RawPolicyInput turns off the sanitization of sensitive values in
	// the plan policy input.
	RawPolicyInput bool
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// repoSealed is the URL with its credential, sealed (repoAAD);
	// repoClear is such a URL stored before they were sealed (see
	// SealRepositories).
	repoSealed, repoClear string
}

// Service stores stacks and their environment.
type Service struct {
	db  *db.DB
	box *secrets.Box
	// Audit records every change in its transaction.
	Audit audit.Hook
}

// NewService returns a stack service; box encrypts secret values.
func NewService(d *db.DB, box *secrets.Box) *Service { return &Service{db: d, box: box} }

const cols = `id, name, space_id, repository, branch, project_root, tool, tool_version, labels, description, autodeploy, managed_state, hooks, worker_pool, raw_policy_input, created_at, updated_at, repository_sealed`

func scan(row interface{ Scan(...any) error }) (Stack, error) {
	var s Stack
	var lbl, hooks string
	var c, u int64
	err := row.Scan(&s.ID, &s.Name, &s.Space, &s.Repository, &s.Branch, &s.ProjectRoot, &s.Tool, &s.ToolVersion,
		&lbl, &s.Description, &s.Autodeploy, &s.ManagedState, &hooks, &s.WorkerPool, &s.RawPolicyInput, &c, &u, &s.repoSealed)
	if err != nil {
		return s, err
	}
	if shown, secret := redact.Repository(s.Repository); s.repoSealed == "" && len(secret) > 0 {
		// Stored in the clear by an older version: never shown.
		s.repoClear, s.Repository = s.Repository, shown
	}
	if s.Labels, err = labels.Decode(lbl); err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(hooks), &s.Hooks); err != nil {
		return s, err
	}
	s.CreatedAt, s.UpdatedAt = time.Unix(0, c).UTC(), time.Unix(0, u).UTC()
	return s, nil
}

var (
	// versionRE is a semantic version, MAJOR.MINOR.PATCH without leading
	// zeros and an optional -PRERELEASE of dot-separated identifiers (no
	// build metadata: no release of either tool has any).
	versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?$`)
	// rangeRE is what a version range or constraint looks like: ~> 1.10.0,
	// >= 1.6, 1.10, 1, latest.
	rangeRE  = regexp.MustCompile(`^(latest|[~<>=!^ ].*|.*[,*xX].*|\d+(\.\d+)?)$`)
	branchRE = id.MustPattern(`^[A-Za-z0-9._/-]+$`, 1, 255)
)

// Validate checks a stack and fills defaults.
func Validate(s *Stack) error {
	if !id.ValidSlug(s.ID) {
		return errs.E(errs.Invalid, "stack id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", s.ID)
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if s.Space == "" {
		s.Space = "root"
	}
	if s.Branch == "" {
		s.Branch = "main"
	}
	if s.Tool == "" {
		s.Tool = OpenTofu
	}
	// v1.10.7, as release tags are written, is stored as 1.10.7.
	if v, ok := strings.CutPrefix(s.ToolVersion, "v"); ok && versionRE.MatchString(v) {
		s.ToolVersion = v
	}
	switch {
	case len(s.Name) > 255 || len(s.Description) > 4096:
		return errs.E(errs.Invalid, "stack name (255) or description (4096 bytes) too long")
	case strings.TrimSpace(s.Repository) == "":
		return errs.E(errs.Invalid, "repository is required")
	case strings.HasPrefix(s.Repository, "-") || strings.ContainsAny(s.Repository, "\n\r\x00") || len(s.Repository) > 2048:
		return errs.E(errs.Invalid, "repository %q is not a valid git URL or path", s.Repository)
	case !branchRE.MatchString(s.Branch) || strings.HasPrefix(s.Branch, "-") || strings.Contains(s.Branch, ".."):
		return errs.E(errs.Invalid, "branch %q is not a valid branch name", s.Branch)
	case s.Tool != OpenTofu && s.Tool != Terraform:
		return errs.E(errs.Invalid, "tool must be %q or %q, got %q", OpenTofu, Terraform, s.Tool)
	case s.ToolVersion != "" && !versionRE.MatchString(s.ToolVersion) && rangeRE.MatchString(strings.TrimSpace(s.ToolVersion)):
		return errs.E(errs.Invalid, "tool version %q is a range: Gantry needs an exact version like 1.10.7 "+
			"(ranges and constraints such as ~> 1.10.0, >= 1.6, 1.10 or latest are not supported)", s.ToolVersion)
	case s.ToolVersion != "" && !versionRE.MatchString(s.ToolVersion):
		return errs.E(errs.Invalid, "tool version %q is not a version like 1.10.7 "+
			"(MAJOR.MINOR.PATCH without leading zeros, optionally -PRERELEASE such as 1.11.0-beta1)", s.ToolVersion)
	}
	if s.ProjectRoot != "" {
		clean := path.Clean(strings.TrimPrefix(s.ProjectRoot, "./"))
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(clean, "\x00\n") {
			return errs.E(errs.Invalid, "project root %q must be a relative path inside the repository", s.ProjectRoot)
		}
		if clean == "." {
			clean = ""
		}
		s.ProjectRoot = clean
	}
	for _, list := range [][]string{s.Hooks.BeforeInit, s.Hooks.AfterInit, s.Hooks.BeforePlan, s.Hooks.AfterPlan, s.Hooks.BeforeApply, s.Hooks.AfterApply} {
		if len(list) > 50 {
			return errs.E(errs.Invalid, "at most 50 commands per hook")
		}
		for _, c := range list {
			if strings.TrimSpace(c) == "" || len(c) > 8192 {
				return errs.E(errs.Invalid, "hook commands must be non-empty and at most 8192 bytes")
			}
		}
	}
	l, err := labels.Normalize(s.Labels)
	s.Labels = l
	return err
}

func hooksJSON(h Hooks) string {
	b, _ := json.Marshal(h)
	return string(b)
}

// checkSpace checks that the stack's space exists and keeps it until the
// transaction ends (its row shared: space.Service.Delete locks it before
// checking that the space holds no stacks).
func (s *Service) checkSpace(ctx context.Context, spaceID string) error {
	ok, err := s.db.ShareRow(ctx, "spaces", spaceID)
	if err == nil && !ok {
		err = errs.E(errs.Invalid, "space %q does not exist", spaceID)
	}
	return err
}

// sharePool checks that a worker pool exists and keeps it until the
// transaction ends (its row shared: workerpool.Service.Delete locks it
// before checking that no stack names the pool), so that a stack never
// names a pool deleted meanwhile: a later pool of the same id, maybe of
// another team, would run its jobs. "" is the built-in pool. Which pools
// a stack may use is the caller's rule (workerpool.Service.Usable).
func (s *Service) sharePool(ctx context.Context, poolID string) error {
	if poolID == "" {
		return nil
	}
	ok, err := s.db.ShareRow(ctx, "worker_pools", poolID)
	if err == nil && !ok {
		err = errs.E(errs.Invalid, "worker pool %q does not exist", poolID)
	}
	return err
}

// Create adds a stack.
func (s *Service) Create(ctx context.Context, st Stack) (Stack, error) {
	if err := Validate(&st); err != nil {
		return st, err
	}
	if err := s.takeRepository(&st); err != nil {
		return st, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	st.CreatedAt, st.UpdatedAt = now, now
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.checkSpace(ctx, st.Space); err != nil {
			return err
		}
		if err := s.sharePool(ctx, st.WorkerPool); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO stacks (`+cols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$16,$15,$15,$17)`,
			st.ID, st.Name, st.Space, st.Repository, st.Branch, st.ProjectRoot, st.Tool, st.ToolVersion,
			labels.Encode(st.Labels), st.Description, st.Autodeploy, st.ManagedState, hooksJSON(st.Hooks), st.WorkerPool, now.UnixNano(), st.RawPolicyInput,
			st.repoSealed)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "stack %q already exists", st.ID)
		}
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "stack.create", "stack", st.ID, st.Space, nil, view(st))
	})
	return st, err
}

// Get returns one stack.
func (s *Service) Get(ctx context.Context, stackID string) (Stack, error) {
	st, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM stacks WHERE id = $1`, stackID))
	if errors.Is(err, sql.ErrNoRows) {
		return st, errs.E(errs.NotFound, "stack %q not found", stackID)
	}
	return st, err
}

// Share returns a stack for a transaction that attaches something to it
// (a context, policy or integration), its row shared until the
// transaction ends (see db.ShareRow): Delete locks it first, so the stack
// is not deleted from under the attachment.
func (s *Service) Share(ctx context.Context, stackID string) (Stack, error) {
	if _, err := s.db.ShareRow(ctx, "stacks", stackID); err != nil {
		return Stack{}, err
	}
	return s.Get(ctx, stackID)
}

// lock returns a stack for a transaction that changes it after reading
// it, its row locked until the transaction ends (see db.LockRow).
func (s *Service) lock(ctx context.Context, stackID string) (Stack, error) {
	if _, err := s.db.LockRow(ctx, "stacks", stackID); err != nil {
		return Stack{}, err
	}
	return s.Get(ctx, stackID)
}

// Filter selects stacks in List.
type Filter struct {
	Space  string
	Labels []string // all must be present
	Cursor string
	Limit  int
}

// List returns a page of stacks ordered by id and the next cursor.
func (s *Service) List(ctx context.Context, f Filter) ([]Stack, string, error) {
	q := `SELECT ` + cols + ` FROM stacks WHERE id > $1`
	args := []any{f.Cursor}
	if f.Space != "" {
		args = append(args, f.Space)
		q += ` AND space_id = $` + strconv.Itoa(len(args))
	}
	for _, l := range f.Labels {
		args = append(args, labels.LikePattern(l))
		q += ` AND labels LIKE $` + strconv.Itoa(len(args)) + ` ESCAPE '\'`
	}
	args = append(args, f.Limit+1)
	q += ` ORDER BY id LIMIT $` + strconv.Itoa(len(args))
	scanned, err := db.Collect(ctx, s.db, scan, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(scanned) > f.Limit {
		scanned = scanned[:f.Limit]
		next = scanned[f.Limit-1].ID
	}
	// LIKE narrows the rows (case-insensitively on SQLite); labels match
	// exactly. The cursor follows the rows scanned, so no page skips any.
	out := []Stack{}
	for _, st := range scanned {
		ok := true
		for _, l := range f.Labels {
			ok = ok && labels.Has(st.Labels, l)
		}
		if ok {
			out = append(out, st)
		}
	}
	return out, next, nil
}

// Update changes a stack with fn; the id cannot change. The stack's row is
// locked first (see db.LockRow): two updates at once (two PATCHes of
// different fields) apply one after the other, neither undoing the other.
func (s *Service) Update(ctx context.Context, stackID string, fn func(*Stack) error) (Stack, error) {
	var st Stack
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if st, err = s.lock(ctx, stackID); err != nil {
			return err
		}
		before, oldPool, oldRepo := view(st), st.WorkerPool, st.Repository
		if err := fn(&st); err != nil {
			return err
		}
		st.ID = stackID
		if err := Validate(&st); err != nil {
			return err
		}
		if st.Repository != oldRepo {
			if err := s.takeRepository(&st); err != nil {
				return err
			}
		} else if st.repoClear != "" {
			st.repoSealed, st.repoClear = s.box.SealString(st.repoClear, repoAAD(st.ID)), ""
		}
		if err := s.checkSpace(ctx, st.Space); err != nil {
			return err
		}
		if st.WorkerPool != oldPool {
			if err := s.sharePool(ctx, st.WorkerPool); err != nil {
				return err
			}
		}
		st.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		// Runs carry their stack's space (for listing runs by space).
		if _, err := s.db.Exec(ctx, `UPDATE runs SET space_id = $2 WHERE stack_id = $1 AND space_id <> $2`, st.ID, st.Space); err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, `UPDATE stacks SET name=$2, space_id=$3, repository=$4, branch=$5, project_root=$6, tool=$7,
			tool_version=$8, labels=$9, description=$10, autodeploy=$11, managed_state=$12, hooks=$13, worker_pool=$14, updated_at=$15, raw_policy_input=$16,
			repository_sealed=$17 WHERE id=$1`,
			st.ID, st.Name, st.Space, st.Repository, st.Branch, st.ProjectRoot, st.Tool, st.ToolVersion,
			labels.Encode(st.Labels), st.Description, st.Autodeploy, st.ManagedState, hooksJSON(st.Hooks), st.WorkerPool, st.UpdatedAt.UnixNano(), st.RawPolicyInput,
			st.repoSealed)
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "stack.update", "stack", st.ID, st.Space, before, view(st))
	})
	return st, err
}

// view is what the audit trail shows of a stack (its variables are
// recorded by name only).
func view(st Stack) map[string]any {
	return map[string]any{"name": st.Name, "space": st.Space, "repository": st.Repository, "branch": st.Branch,
		"project_root": st.ProjectRoot, "tool": st.Tool, "tool_version": st.ToolVersion, "labels": st.Labels,
		"description": st.Description, "autodeploy": st.Autodeploy, "managed_state": st.ManagedState,
		"hooks": st.Hooks, "worker_pool": st.WorkerPool, "raw_policy_input": st.RawPolicyInput}
}

// DeleteForce says how a CLI or API user deletes with force, for messages
// that suggest it.
const DeleteForce = "gantry stack delete --force, or DELETE with ?force=true in the API"

// Delete removes a stack with its runs and state versions. A stack with
// runs in progress is only deleted with force. The stack's row is locked
// before its runs are counted, as creating a run locks it (run.Service.
// Create, see db.LockRow): a run accepted at the same time is either
// counted, and a plain delete refused, or refused itself (404), never
// deleted silently with the stack.
func (s *Service) Delete(ctx context.Context, stackID string, force bool) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		old, err := s.lock(ctx, stackID)
		if err != nil {
			return err
		}
		var active int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM runs WHERE stack_id = $1 AND state NOT IN ('FINISHED','FAILED','DISCARDED','CANCELED','STOPPED')`, stackID).Scan(&active); err != nil {
			return err
		}
		if active > 0 && !force {
			return errs.E(errs.Conflict, "stack %q has %d run(s) in progress; wait for them, cancel them, or delete with force (%s)", stackID, active, DeleteForce)
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM stacks WHERE id = $1`, stackID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "stack.delete", "stack", stackID, old.Space, view(old), nil)
	})
}
