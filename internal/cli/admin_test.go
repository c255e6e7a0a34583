package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
	spacesvc "github.com/gantry-iac/gantry/internal/space"
	stacksvc "github.com/gantry-iac/gantry/internal/stack"
)

// adminEnv clears the variables rotate-key reads.
func adminEnv(t *testing.T) {
	t.Helper()
	isolate(t)
	for _, v := range []string{"GANTRY_DATABASE_URL", "GANTRY_DATA_DIR", "GANTRY_OLD_KEY", "GANTRY_NEW_KEY",
		"GANTRY_OLD_KEY_FILE", "GANTRY_NEW_KEY_FILE", "GANTRY_DATABASE_URL_FILE", "GANTRY_DATA_DIR_FILE"} {
		t.Setenv(v, "")
	}
}

// withDB opens the SQLite database in dir for fn.
func withDB(t *testing.T, dir string, fn func(d *db.DB)) {
	t.Helper()
	d, err := db.Open(context.Background(), "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fn(d)
}

func writeKey(t *testing.T, dir, name, key string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdminRotateKey(t *testing.T) {
	adminEnv(t)
	ctx := context.Background()
	dir, keys := t.TempDir(), t.TempDir()
	k1, k2, wrong := secrets.GenerateKey(), secrets.GenerateKey(), secrets.GenerateKey()
	k1File, k2File, wrongFile := writeKey(t, keys, "k1", k1), writeKey(t, keys, "k2", k2), writeKey(t, keys, "wrong", wrong)
	master := func(s string) []byte { k, _ := secrets.ParseKey(s); return k }

	var before string
	withDB(t, dir, func(d *db.DB) {
		box, _, err := secrets.UnlockDataKey(ctx, d, master(k1))
		if err != nil {
			t.Fatal(err)
		}
		if err := spacesvc.NewService(d).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		stacks := stacksvc.NewService(d, box)
		if _, err := stacks.Create(ctx, stacksvc.Stack{ID: "net", Name: "net", Space: "root", Repository: "https://example.com/net.git", Branch: "main", Tool: stacksvc.OpenTofu}); err != nil {
			t.Fatal(err)
		}
		if _, err := stacks.SetEnv(ctx, "net", stacksvc.EnvVar{Name: "PW", Value: "s3cret", Secret: true}); err != nil {
			t.Fatal(err)
		}
		if err := d.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'data_key'`).Scan(&before); err != nil {
			t.Fatal(err)
		}
	})

	usage := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no database", []string{"--old-key-file", k1File, "--new-key-file", k2File}, "--database-url or --data-dir is required"},
		{"no old key", []string{"--data-dir", dir, "--new-key-file", k2File}, "the old key is required"},
		{"no new key", []string{"--data-dir", dir, "--old-key-file", k1File}, "the new key is required"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runMain(append([]string{"admin", "rotate-key"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d stderr %q, want 2 and %q", code, errOut, tt.wantErr)
			}
		})
	}

	t.Run("no database in the data directory", func(t *testing.T) {
		empty := t.TempDir()
		code, _, errOut := runMain("admin", "rotate-key", "--data-dir", empty, "--old-key-file", k1File, "--new-key-file", k2File)
		if code != 1 || !strings.Contains(errOut, "no database at") {
			t.Errorf("exit %d stderr %q", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(empty, "gantry.db")); err == nil {
			t.Error("rotate-key created a database")
		}
	})

	t.Run("a wrong old key changes nothing", func(t *testing.T) {
		code, out, errOut := runMain("admin", "rotate-key", "--data-dir", dir, "--old-key-file", wrongFile, "--new-key-file", k2File)
		if code != 1 || !strings.Contains(errOut, "the old key does not match this database") || !strings.Contains(errOut, "nothing was changed") {
			t.Errorf("exit %d stderr %q", code, errOut)
		}
		if strings.Contains(out+errOut, k2) || strings.Contains(out+errOut, wrong) {
			t.Error("a key was printed")
		}
		withDB(t, dir, func(d *db.DB) {
			var after string
			if err := d.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'data_key'`).Scan(&after); err != nil || after != before {
				t.Errorf("data key row changed: %v", err)
			}
			if _, _, err := secrets.UnlockDataKey(ctx, d, master(k1)); err != nil {
				t.Errorf("the old key stopped working after a refused rotation: %v", err)
			}
		})
	})

	t.Run("rotate with keys from the environment", func(t *testing.T) {
		t.Setenv("GANTRY_DATA_DIR", dir)
		t.Setenv("GANTRY_OLD_KEY", k1)
		t.Setenv("GANTRY_NEW_KEY_FILE", k2File)
		code, out, errOut := runMain("admin", "rotate-key")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "master key version 2") || !strings.Contains(out, "Restart each with the new key") {
			t.Errorf("stdout %q", out)
		}
		if strings.Contains(out+errOut, k1) || strings.Contains(out+errOut, k2) {
			t.Error("a key was printed")
		}
	})

	withDB(t, dir, func(d *db.DB) {
		if _, _, err := secrets.UnlockDataKey(ctx, d, master(k1)); !errors.Is(err, secrets.ErrWrongKey) {
			t.Errorf("old key after rotation: %v, want ErrWrongKey", err)
		}
		box, _, err := secrets.UnlockDataKey(ctx, d, master(k2))
		if err != nil {
			t.Fatalf("new key: %v", err)
		}
		env, err := stacksvc.NewService(d, box).EnvForJob(ctx, "net")
		if err != nil || len(env) != 1 || env[0].Value != "s3cret" {
			t.Errorf("secret after rotation: %+v %v", env, err)
		}
		// The rotation is in the audit trail (never a key); the refused
		// attempts are not.
		var n int
		var change string
		if err := d.QueryRow(ctx, `SELECT COUNT(*), MAX(change) FROM audit_events WHERE action = 'encryption_key.rotate' AND actor = 'gantry'`).Scan(&n, &change); err != nil {
			t.Fatal(err)
		}
		if n != 1 || !strings.Contains(change, `"master_key_version":2`) || strings.Contains(change, k1) || strings.Contains(change, k2) {
			t.Errorf("%d encryption_key.rotate events (%s), want one with the master key version", n, change)
		}
	})
}

func TestAdminGenerateKey(t *testing.T) {
	adminEnv(t)
	code, out, errOut := runMain("admin", "generate-key")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	k := strings.TrimSpace(out)
	if _, err := secrets.ParseKey(k); err != nil || len(k) != 64 {
		t.Errorf("key %q: %v", k, err)
	}
	if _, again, _ := runMain("admin", "generate-key"); strings.TrimSpace(again) == k {
		t.Error("the same key twice")
	}
}

// rotate-signing-key keeps the current key's algorithm unless told
// otherwise, and however short its --grace, the servers publish the
// previous key for their whole token lifetime (the tokens it signed live
// that long).
func TestAdminRotateSigningKey(t *testing.T) {
	adminEnv(t)
	t.Setenv("GANTRY_ENCRYPTION_KEY", "")
	t.Setenv("GANTRY_ENCRYPTION_KEY_FILE", "")
	ctx := context.Background()
	dir := t.TempDir()
	k := secrets.GenerateKey()
	kFile := writeKey(t, t.TempDir(), "k", k)
	master, _ := secrets.ParseKey(k)
	var tokens *runtoken.Service
	withDB(t, dir, func(d *db.DB) {
		box, _, err := secrets.UnlockDataKey(ctx, d, master)
		if err != nil {
			t.Fatal(err)
		}
		if tokens, err = runtoken.New(d, box, runtoken.Config{Issuer: "https://gantry.example", Alg: runtoken.ES256, Lifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := tokens.EnsureKey(ctx); err != nil {
			t.Fatal(err)
		}
	})
	code, out, errOut := runMain("admin", "rotate-signing-key", "--data-dir", dir, "--encryption-key-file", kFile, "--grace", "1m")
	if code != 0 || !strings.Contains(out, "(ES256)") {
		t.Fatalf("rotate-signing-key = %d\n%s%s", code, out, errOut)
	}
	withDB(t, dir, func(d *db.DB) {
		server, err := runtoken.New(d, nil, runtoken.Config{Issuer: "https://gantry.example", Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var algs []string
		rows, err := d.Query(ctx, `SELECT alg FROM oidc_keys`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a string
			_ = rows.Scan(&a)
			algs = append(algs, a)
		}
		rows.Close()
		if len(algs) != 2 || algs[0] != runtoken.ES256 || algs[1] != runtoken.ES256 {
			t.Errorf("keys of %v, want two ES256", algs)
		}
		// Two minutes later, past the grace of one: still published.
		published := func(ago time.Duration) int {
			t.Helper()
			if _, err := d.Exec(ctx, `UPDATE oidc_keys SET retired_at = $1, not_after = $2 WHERE retired_at <> 0`,
				time.Now().Add(-ago).UnixNano(), time.Now().Add(-ago+time.Minute).UnixNano()); err != nil {
				t.Fatal(err)
			}
			jwks, err := server.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Count(string(jwks), `"kid"`)
		}
		if n := published(2 * time.Minute); n != 2 {
			t.Errorf("2 minutes after the rotation, %d keys published, want both", n)
		}
		if n := published(61 * time.Minute); n != 1 {
			t.Errorf("a token lifetime after the rotation, %d keys published, want the new one", n)
		}
	})
}

func TestAdminRotateDataKey(t *testing.T) {
	adminEnv(t)
	t.Setenv("GANTRY_ENCRYPTION_KEY", "")
	t.Setenv("GANTRY_ENCRYPTION_KEY_FILE", "")
	ctx := context.Background()
	dir, keys := t.TempDir(), t.TempDir()
	k1, wrong := secrets.GenerateKey(), secrets.GenerateKey()
	writeKey(t, dir, "encryption.key", k1)
	wrongFile := writeKey(t, keys, "wrong", wrong)
	master := func(s string) []byte { k, _ := secrets.ParseKey(s); return k }
	dataKeyID := func() string {
		var id string
		withDB(t, dir, func(d *db.DB) {
			_, info, err := secrets.UnlockDataKey(ctx, d, master(k1))
			if err != nil {
				t.Fatal(err)
			}
			id = info.ID
		})
		return id
	}
	withDB(t, dir, func(d *db.DB) {
		box, _, err := secrets.UnlockDataKey(ctx, d, master(k1))
		if err != nil {
			t.Fatal(err)
		}
		if err := spacesvc.NewService(d).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		stacks := stacksvc.NewService(d, box)
		if _, err := stacks.Create(ctx, stacksvc.Stack{ID: "net", Name: "net", Space: "root", Repository: "https://example.com/net.git", Branch: "main", Tool: stacksvc.OpenTofu}); err != nil {
			t.Fatal(err)
		}
		if _, err := stacks.SetEnv(ctx, "net", stacksvc.EnvVar{Name: "PW", Value: "s3cret", Secret: true}); err != nil {
			t.Fatal(err)
		}
	})
	before := dataKeyID()

	if code, _, errOut := runMain("admin", "rotate-key", "--data", "--data-dir", dir, "--old-key-file", wrongFile); code != 2 || !strings.Contains(errOut, "--data keeps the master key") {
		t.Errorf("--data with --old-key-file: exit %d stderr %q", code, errOut)
	}
	if code, _, errOut := runMain("admin", "rotate-key", "--data", "--data-dir", dir, "--encryption-key-file", wrongFile); code != 1 || !strings.Contains(errOut, "does not match this database: nothing was changed") {
		t.Errorf("wrong key: exit %d stderr %q", code, errOut)
	}
	unlock, err := dirlock.Lock(dir) // a server running there
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runMain("admin", "rotate-key", "--data", "--data-dir", dir)
	unlock()
	if code != 1 || !strings.Contains(errOut, "in use by a running gantry server") {
		t.Errorf("while a server holds the data directory: exit %d stderr %q", code, errOut)
	}
	if dataKeyID() != before {
		t.Fatal("a refused rotation changed the data key")
	}

	code, out, errOut := runMain("admin", "rotate-key", "--data", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "Re-encrypted every encrypted value under the new data key") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	after := dataKeyID()
	if after == before || !strings.Contains(out, after) || !strings.Contains(out, before) {
		t.Errorf("data key %s -> %s; output %q", before, after, out)
	}
	if strings.Contains(out+errOut, k1) {
		t.Error("a key was printed")
	}
	withDB(t, dir, func(d *db.DB) {
		box, _, err := secrets.UnlockDataKey(ctx, d, master(k1))
		if err != nil {
			t.Fatal(err)
		}
		env, err := stacksvc.NewService(d, box).EnvForJob(ctx, "net")
		if err != nil || len(env) != 1 || env[0].Value != "s3cret" {
			t.Errorf("secret after the rotation: %+v %v", env, err)
		}
		// The rotation is in the audit trail, naming both data keys; the
		// refused attempts are not.
		var n int
		var change string
		if err := d.QueryRow(ctx, `SELECT COUNT(*), MAX(change) FROM audit_events WHERE action = 'data_key.rotate' AND actor = 'gantry' AND subject_id = $1`, after).Scan(&n, &change); err != nil {
			t.Fatal(err)
		}
		if n != 1 || !strings.Contains(change, before) || !strings.Contains(change, after) {
			t.Errorf("%d data_key.rotate events (%s), want one naming %s and %s", n, change, before, after)
		}
	})
}
