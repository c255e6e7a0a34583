package stack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/runenv"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// EnvVar is one environment variable of a stack.
type EnvVar struct {
	Name   string
	Value  string // empty for secrets unless read with EnvForJob
	Secret bool
}

var envNameRE = id.MustPattern(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 255)

func aad(stackID, name string) string { return "stack-env:" + stackID + ":" + name }

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{{Table: "stack_env", Column: "value", Keys: []string{"stack_id", "name"},
	Where: "secret", Encoding: secrets.Base64, AAD: func(v []any) string { return aad(fmt.Sprint(v[0]), fmt.Sprint(v[1])) }},
	repositoryColumn}

// SetEnv creates or replaces a variable. Secret values are encrypted. A
// secret variable is never replaced by a plain one (a rotation that forgot
// the secret flag would store the new value in the clear): that takes
// deleting it first.
func (s *Service) SetEnv(ctx context.Context, stackID string, v EnvVar) (EnvVar, error) {
	if !envNameRE.MatchString(v.Name) {
		return v, errs.E(errs.Invalid, "environment variable name %q is not valid (letters, digits, underscores; not starting with a digit)", v.Name)
	}
	if why := runenv.Reserved(v.Name); why != "" {
		return v, errs.E(errs.Invalid, "environment variable %q uses %s (Gantry sets it in every run)", v.Name, why)
	}
	if len(v.Value) > 256*1024 {
		return v, errs.E(errs.TooLarge, "environment variable value is larger than 256 KiB")
	}
	stored := v.Value
	if v.Secret {
		stored = s.box.SealString(v.Value, aad(stackID, v.Name))
	}
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// Locked: the check that a secret stays secret holds until the
		// value is written (see db.LockRow).
		st, err := s.lock(ctx, stackID)
		if err != nil {
			return err
		}
		if !v.Secret {
			var secret bool
			err := s.db.QueryRow(ctx, `SELECT secret FROM stack_env WHERE stack_id = $1 AND name = $2`, stackID, v.Name).Scan(&secret)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if secret {
				return errs.E(errs.Conflict, "environment variable %s is secret: set it with --secret (\"secret\": true), or delete it first to store it as plain text", v.Name)
			}
		}
		_, err = s.db.Exec(ctx, `INSERT INTO stack_env (stack_id, name, value, secret) VALUES ($1, $2, $3, $4)
			ON CONFLICT (stack_id, name) DO UPDATE SET value = excluded.value, secret = excluded.secret`, stackID, v.Name, stored, v.Secret)
		if err != nil {
			return err
		}
		// The name only: never a value, secret or not.
		return s.Audit.Record(ctx, "stack.env.set", "stack", stackID, st.Space, nil, map[string]any{"name": v.Name, "secret": v.Secret})
	})
	if v.Secret {
		v.Value = ""
	}
	return v, err
}

// ListEnv returns the variables with secret values blanked.
func (s *Service) ListEnv(ctx context.Context, stackID string) ([]EnvVar, error) {
	vars, err := s.env(ctx, stackID, false)
	return vars, err
}

// EnvForJob returns the variables with secret values decrypted, for a job
// of a stack the caller has read (an unknown stack has none).
func (s *Service) EnvForJob(ctx context.Context, stackID string) ([]EnvVar, error) {
	return s.vars(ctx, stackID, true)
}

func (s *Service) env(ctx context.Context, stackID string, reveal bool) ([]EnvVar, error) {
	if _, err := s.Get(ctx, stackID); err != nil {
		return nil, err
	}
	return s.vars(ctx, stackID, reveal)
}

func (s *Service) vars(ctx context.Context, stackID string, reveal bool) ([]EnvVar, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (EnvVar, error) {
		var v EnvVar
		err := row.Scan(&v.Name, &v.Value, &v.Secret)
		if err != nil {
			return EnvVar{}, err
		}
		if v.Secret {
			if reveal {
				if v.Value, err = s.box.OpenString(v.Value, aad(stackID, v.Name)); err != nil {
					return EnvVar{}, errs.Wrap(errs.Internal, err, "secret %s of stack %s cannot be decrypted", v.Name, stackID)
				}
			} else {
				v.Value = ""
			}
		}
		return v, nil
	}, `SELECT name, value, secret FROM stack_env WHERE stack_id = $1 ORDER BY name`, stackID)
}

// DeleteEnv removes a variable.
func (s *Service) DeleteEnv(ctx context.Context, stackID, name string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		st, err := s.Get(ctx, stackID)
		if err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `DELETE FROM stack_env WHERE stack_id = $1 AND name = $2`, stackID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "stack %q has no environment variable %q", stackID, name)
		}
		return s.Audit.Record(ctx, "stack.env.delete", "stack", stackID, st.Space, map[string]any{"name": name}, nil)
	})
}
