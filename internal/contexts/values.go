package contexts

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/runenv"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// EnvVar is an environment variable of a context.
type EnvVar struct {
	Name        string
	Value       string // empty for secrets, except for jobs
	Secret      bool
	Description string
	Checksum    string // SHA-256 of the value, hex
}

// File is a file a context mounts into the workspace of runs.
type File struct {
	Path        string // relative to the workspace root
	Content     []byte // only for jobs, and for plain files when asked
	Size        int64
	Secret      bool
	Description string
	Checksum    string // SHA-256 of the content, hex
}

// Limits of values.
const (
	MaxValue    = 256 << 10
	MaxFile     = 2 << 20
	MaxFilePath = 1024
)

var envNameRE = id.MustPattern(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 255)

// Stage prefixes (Spacelift's): a variable named ro_X reaches only the
// read stages (everything but applying) as X, wo_X only the write stage
// (applying) as X.
const (
	ReadOnlyPrefix  = "ro_"
	WriteOnlyPrefix = "wo_"
)

// StripStage returns a variable's name without its stage prefix.
func StripStage(name string) string {
	if n, ok := strings.CutPrefix(name, ReadOnlyPrefix); ok {
		return n
	}
	if n, ok := strings.CutPrefix(name, WriteOnlyPrefix); ok {
		return n
	}
	return name
}

// Checksum is the hex SHA-256 of b.
func Checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func envAAD(contextID, name string) string { return "context-env:" + contextID + ":" + name }
func fileAAD(contextID, p string) string   { return "context-file:" + contextID + ":" + p }

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{
	{Table: "context_env", Column: "value", Keys: []string{"context_id", "name"}, Where: "secret", Encoding: secrets.Base64,
		AAD: func(v []any) string { return envAAD(fmt.Sprint(v[0]), fmt.Sprint(v[1])) }},
	{Table: "context_files", Column: "content", Keys: []string{"context_id", "path"}, Where: "secret", Encoding: secrets.Raw,
		AAD: func(v []any) string { return fileAAD(fmt.Sprint(v[0]), fmt.Sprint(v[1])) }},
}

func validateEnv(v EnvVar) error {
	if !envNameRE.MatchString(v.Name) {
		return errs.E(errs.Invalid, "environment variable name %q is not valid (letters, digits, underscores; not starting with a digit)", v.Name)
	}
	if why := runenv.Reserved(v.Name); why != "" {
		return errs.E(errs.Invalid, "environment variable %q uses %s (Gantry sets it in every run)", v.Name, why)
	}
	if StripStage(v.Name) == "" {
		return errs.E(errs.Invalid, "environment variable %q is only a stage prefix", v.Name)
	}
	if len(v.Value) > MaxValue {
		return errs.E(errs.TooLarge, "environment variable value is larger than 256 KiB")
	}
	if len(v.Description) > 4096 {
		return errs.E(errs.Invalid, "description longer than 4096 bytes")
	}
	return nil
}

// CleanPath checks a mounted file's path and returns it cleaned: relative
// to the workspace root, inside it, without .git and Gantry's own files.
func CleanPath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", errs.E(errs.Invalid, "file path %q %s", p, why)
	}
	switch {
	case p == "" || len(p) > MaxFilePath:
		return bad("must have 1 to 1024 bytes")
	case strings.ContainsAny(p, "\x00\n\r\\"):
		return bad("holds a NUL, newline or backslash")
	case path.IsAbs(p):
		return bad("must be relative to the workspace root")
	}
	clean := path.Clean(strings.TrimPrefix(p, "./"))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasSuffix(p, "/") {
		return bad("must name a file inside the workspace")
	}
	for _, part := range strings.Split(clean, "/") {
		if part == ".git" {
			return bad("must not be inside a .git directory")
		}
	}
	switch base := path.Base(clean); {
	case clean == "cli.tfrc", base == "gantry_backend_override.tf", base == "gantry.tfplan":
		return bad("is a file Gantry writes itself")
	}
	return clean, nil
}

func (s *Service) exists(ctx context.Context, contextID string) error {
	_, err := s.Get(ctx, contextID)
	return err
}

// isSecret reports whether query (of one secret column) finds a secret
// row; none is not secret.
func (s *Service) isSecret(ctx context.Context, query string, args ...any) (bool, error) {
	var secret bool
	err := s.db.QueryRow(ctx, query, args...).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return secret, err
}

// SetEnv creates or replaces a variable; a secret value is sealed and not
// returned. A secret variable is never replaced by a plain one (a rotation
// that forgot the secret flag would store the new value in the clear):
// that takes deleting it first.
func (s *Service) SetEnv(ctx context.Context, contextID string, v EnvVar) (EnvVar, error) {
	if err := validateEnv(v); err != nil {
		return EnvVar{}, err
	}
	v.Checksum = Checksum([]byte(v.Value))
	stored := v.Value
	if v.Secret {
		stored = s.box.SealString(v.Value, envAAD(contextID, v.Name))
		v.Value = ""
	}
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.lock(ctx, contextID)
		if err != nil {
			return err
		}
		if !v.Secret {
			if secret, err := s.isSecret(ctx, `SELECT secret FROM context_env WHERE context_id = $1 AND name = $2`, contextID, v.Name); err != nil || secret {
				if err == nil {
					err = errs.E(errs.Conflict, "environment variable %s is secret: set it with --secret (\"secret\": true), or delete it first to store it as plain text", v.Name)
				}
				return err
			}
		}
		_, err = s.db.Exec(ctx, `INSERT INTO context_env (context_id, name, value, secret, description) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (context_id, name) DO UPDATE SET value = excluded.value, secret = excluded.secret, description = excluded.description`,
			contextID, v.Name, stored, v.Secret, v.Description)
		if err != nil {
			return err
		}
		// The name only: never a value, secret or not.
		return s.Audit.Record(ctx, "context.env.set", "context", contextID, c.Space, nil, map[string]any{"name": v.Name, "secret": v.Secret})
	})
	return v, err
}

// ListEnv returns a context's variables, secret values blanked.
func (s *Service) ListEnv(ctx context.Context, contextID string) ([]EnvVar, error) {
	if err := s.exists(ctx, contextID); err != nil {
		return nil, err
	}
	return s.env(ctx, contextID, false)
}

// env reads the variables of a context; reveal keeps secret values.
func (s *Service) env(ctx context.Context, contextID string, reveal bool) ([]EnvVar, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (EnvVar, error) {
		var v EnvVar
		err := row.Scan(&v.Name, &v.Value, &v.Secret, &v.Description)
		if err != nil {
			return EnvVar{}, err
		}
		if v.Secret {
			if v.Value, err = s.box.OpenString(v.Value, envAAD(contextID, v.Name)); err != nil {
				return EnvVar{}, errs.Wrap(errs.Internal, err, "secret %s of context %s cannot be decrypted", v.Name, contextID)
			}
		}
		v.Checksum = Checksum([]byte(v.Value))
		if v.Secret && !reveal {
			v.Value = ""
		}
		return v, nil
	}, `SELECT name, value, secret, description FROM context_env WHERE context_id = $1 ORDER BY name`, contextID)
}

// DeleteEnv removes a variable.
func (s *Service) DeleteEnv(ctx context.Context, contextID, name string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.lock(ctx, contextID)
		if err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `DELETE FROM context_env WHERE context_id = $1 AND name = $2`, contextID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "context %q has no environment variable %q", contextID, name)
		}
		return s.Audit.Record(ctx, "context.env.delete", "context", contextID, c.Space, map[string]any{"name": name}, nil)
	})
}

// SetFile creates or replaces a mounted file; a secret file's content is
// sealed. The file returned has no content. A secret file is never replaced
// by a plain one, as for variables.
func (s *Service) SetFile(ctx context.Context, contextID string, f File) (File, error) {
	clean, err := CleanPath(f.Path)
	if err != nil {
		return File{}, err
	}
	if len(f.Content) > MaxFile {
		return File{}, errs.E(errs.TooLarge, "file %s is larger than 2 MiB (%d bytes)", clean, len(f.Content))
	}
	if len(f.Description) > 4096 {
		return File{}, errs.E(errs.Invalid, "description longer than 4096 bytes")
	}
	f.Path, f.Size, f.Checksum = clean, int64(len(f.Content)), Checksum(f.Content)
	stored := f.Content
	if f.Secret {
		stored = s.box.Seal(f.Content, fileAAD(contextID, clean))
	}
	if stored == nil {
		stored = []byte{}
	}
	f.Content = nil
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.lock(ctx, contextID)
		if err != nil {
			return err
		}
		if !f.Secret {
			if secret, err := s.isSecret(ctx, `SELECT secret FROM context_files WHERE context_id = $1 AND path = $2`, contextID, f.Path); err != nil || secret {
				if err == nil {
					err = errs.E(errs.Conflict, "file %s is secret: set it with --secret (\"secret\": true), or delete it first to store it as plain text", f.Path)
				}
				return err
			}
		}
		_, err = s.db.Exec(ctx, `INSERT INTO context_files (context_id, path, content, size, secret, description) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (context_id, path) DO UPDATE SET content = excluded.content, size = excluded.size, secret = excluded.secret, description = excluded.description`,
			contextID, f.Path, stored, f.Size, f.Secret, f.Description)
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "context.file.set", "context", contextID, c.Space, nil, map[string]any{"path": f.Path, "size": f.Size, "secret": f.Secret})
	})
	return f, err
}

// ListFiles returns a context's files without their content.
func (s *Service) ListFiles(ctx context.Context, contextID string) ([]File, error) {
	if err := s.exists(ctx, contextID); err != nil {
		return nil, err
	}
	return s.files(ctx, contextID, false)
}

// files reads the files of a context; reveal keeps the contents (secret
// ones decrypted).
func (s *Service) files(ctx context.Context, contextID string, reveal bool) ([]File, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (File, error) {
		var f File
		err := row.Scan(&f.Path, &f.Content, &f.Size, &f.Secret, &f.Description)
		if err != nil {
			return File{}, err
		}
		if f.Secret {
			if f.Content, err = s.box.Open(f.Content, fileAAD(contextID, f.Path)); err != nil {
				return File{}, errs.Wrap(errs.Internal, err, "secret file %s of context %s cannot be decrypted", f.Path, contextID)
			}
		}
		f.Checksum = Checksum(f.Content)
		if !reveal {
			f.Content = nil
		}
		return f, nil
	}, `SELECT path, content, size, secret, description FROM context_files WHERE context_id = $1 ORDER BY path`, contextID)
}

// DeleteFile removes a mounted file.
func (s *Service) DeleteFile(ctx context.Context, contextID, p string) error {
	clean, err := CleanPath(p)
	if err != nil {
		return err
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.lock(ctx, contextID)
		if err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `DELETE FROM context_files WHERE context_id = $1 AND path = $2`, contextID, clean)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "context %q has no file %q", contextID, clean)
		}
		return s.Audit.Record(ctx, "context.file.delete", "context", contextID, c.Space, map[string]any{"path": clean}, nil)
	})
}
