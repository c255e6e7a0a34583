package server_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/server"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

const (
	encAdminToken = "gnt_encryption-test-admin-token"
	encState      = `{"version":4,"terraform_version":"1.9.0","serial":3,"lineage":"lin-1","outputs":{},"resources":[]}`
)

// eachDatabase runs fn on SQLite (url "") and on a fresh, empty
// PostgreSQL database: the server-level twin of dbtest.Each, for tests that
// start whole servers.
func eachDatabase(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) { fn(t, dbtest.PostgresURL(t)) })
}

// withDB opens the server's database (while no server runs) for fn.
func withDB(t *testing.T, url, dir string, fn func(d *db.DB)) {
	t.Helper()
	d, err := db.Open(context.Background(), url, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fn(d)
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := secrets.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeData stores a stack secret and a state version through the
// services, sealed by box.
func writeData(t *testing.T, d *db.DB, box *secrets.Box) {
	t.Helper()
	ctx := context.Background()
	if err := space.NewService(d).EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	stacks := stack.NewService(d, box)
	if _, err := stacks.Create(ctx, stack.Stack{ID: "net", Name: "net", Space: "root", Repository: "https://example.com/net.git", Branch: "main", Tool: stack.OpenTofu}); err != nil {
		t.Fatal(err)
	}
	if _, err := stacks.SetEnv(ctx, "net", stack.EnvVar{Name: "PW", Value: "s3cret-pw", Secret: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := state.NewService(d, box).Write(ctx, "net", []byte(encState), "", "", "test"); err != nil {
		t.Fatal(err)
	}
}

// checkData reads the secret and the state back through the services with
// the data key unwrapped by master.
func checkData(t *testing.T, url, dir string, master []byte) {
	t.Helper()
	ctx := context.Background()
	withDB(t, url, dir, func(d *db.DB) {
		box, _, err := secrets.UnlockDataKey(ctx, d, master)
		if err != nil {
			t.Fatalf("unlock: %v", err)
		}
		env, err := stack.NewService(d, box).EnvForJob(ctx, "net")
		if err != nil || len(env) != 1 || env[0].Value != "s3cret-pw" {
			t.Errorf("stack secret: %+v %v", env, err)
		}
		if _, data, err := state.NewService(d, box).Current(ctx, "net"); err != nil || string(data) != encState {
			t.Errorf("state: %q %v", data, err)
		}
	})
}

// checkServedState reads the state through a running server's API.
func checkServedState(t *testing.T, s *running) {
	t.Helper()
	if status, body := s.get(t, "/api/v1/stacks/net/state/versions/current", encAdminToken); status != 200 || body != encState {
		t.Errorf("served state: %d %.200q", status, body)
	}
}

func settingsRows(t *testing.T, url, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	withDB(t, url, dir, func(d *db.DB) {
		rows, err := d.Query(context.Background(), `SELECT name, value FROM settings`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n, v string
			if err := rows.Scan(&n, &v); err != nil {
				t.Fatal(err)
			}
			out[n] = v
		}
	})
	return out
}

// storedDataKey unwraps the data key with master, as an operator could.
func storedDataKey(t *testing.T, url, dir string, master []byte) []byte {
	t.Helper()
	var sk struct{ Wrapped string }
	if err := json.Unmarshal([]byte(settingsRows(t, url, dir)["data_key"]), &sk); err != nil {
		t.Fatalf("data_key setting: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sk.Wrapped)
	mbox, _ := secrets.NewBox(master)
	k, err := mbox.Open(raw, "gantry-data-key")
	if err != nil {
		t.Fatalf("unwrap the data key: %v", err)
	}
	return k
}

// noKeysIn fails if any form of the keys appears in text.
func noKeysIn(t *testing.T, text string, keys ...[]byte) {
	t.Helper()
	for _, k := range keys {
		for _, form := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k), string(k)} {
			if strings.Contains(text, form) {
				t.Errorf("a key appears in the logs or output")
			}
		}
	}
}

func encConfig(dir, url, key string) server.Config {
	cfg := config(dir)
	cfg.DatabaseURL, cfg.EncryptionKey, cfg.AdminToken = url, key, encAdminToken
	return cfg
}

func startStop(t *testing.T, cfg server.Config, logs *strings.Builder) *running {
	t.Helper()
	s, err := start(t, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	s.stop(t)
	logs.WriteString(s.logs.String() + s.out.String())
	return s
}

func TestEncryptionKeyRotation(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		ctx := context.Background()
		dir := t.TempDir()
		k1, k2, wrong := secrets.GenerateKey(), secrets.GenerateKey(), secrets.GenerateKey()
		var logs strings.Builder

		startStop(t, encConfig(dir, url, k1), &logs)
		withDB(t, url, dir, func(d *db.DB) {
			box, _, err := secrets.UnlockDataKey(ctx, d, mustKey(t, k1))
			if err != nil {
				t.Fatal(err)
			}
			writeData(t, d, box)
		})

		before := settingsRows(t, url, dir)
		withDB(t, url, dir, func(d *db.DB) {
			if _, err := secrets.RotateMasterKey(ctx, d, mustKey(t, wrong), mustKey(t, k2)); !errors.Is(err, secrets.ErrWrongKey) {
				t.Fatalf("rotate with a wrong old key = %v, want ErrWrongKey", err)
			}
		})
		if after := settingsRows(t, url, dir); after["data_key"] != before["data_key"] || after["encryption_check"] != before["encryption_check"] {
			t.Fatal("a refused rotation changed the keys")
		}
		startStop(t, encConfig(dir, url, k1), &logs) // the old key still works

		withDB(t, url, dir, func(d *db.DB) {
			if _, err := secrets.RotateMasterKey(ctx, d, mustKey(t, k1), mustKey(t, k2)); err != nil {
				t.Fatalf("rotate: %v", err)
			}
		})

		if _, err := start(t, encConfig(dir, url, k1)); err == nil || !strings.Contains(err.Error(), "the encryption key does not match this database: was it rotated?") {
			t.Fatalf("start with the old key after rotation = %v, want a refusal", err)
		}

		s, err := start(t, encConfig(dir, url, k2))
		if err != nil {
			t.Fatalf("start with the new key: %v", err)
		}
		checkServedState(t, s)
		s.stop(t)
		logs.WriteString(s.logs.String() + s.out.String())
		checkData(t, url, dir, mustKey(t, k2))

		noKeysIn(t, logs.String(), storedDataKey(t, url, dir, mustKey(t, k2)), mustKey(t, k1), mustKey(t, k2))
	})
}

func TestEncryptionAdoptsExistingDatabase(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		ctx := context.Background()
		dir := t.TempDir()
		k1, k2 := secrets.GenerateKey(), secrets.GenerateKey()
		var logs strings.Builder

		// What a release that sealed with the master key directly left.
		withDB(t, url, dir, func(d *db.DB) {
			old, err := secrets.NewBox(mustKey(t, k1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('encryption_check', $1)`, old.SealString("gantry", "encryption-check")); err != nil {
				t.Fatal(err)
			}
			writeData(t, d, old)
		})

		startStop(t, encConfig(dir, url, k1), &logs)
		if !strings.Contains(logs.String(), "adopted the encryption key as the data key") {
			t.Errorf("no adoption in the logs:\n%s", logs.String())
		}
		if string(storedDataKey(t, url, dir, mustKey(t, k1))) != string(mustKey(t, k1)) {
			t.Fatal("the adopted data key is not the old master key")
		}
		s, err := start(t, encConfig(dir, url, k1)) // adopted once, then kept
		if err != nil {
			t.Fatalf("second start: %v", err)
		}
		checkServedState(t, s)
		s.stop(t)
		logs.WriteString(s.logs.String())
		checkData(t, url, dir, mustKey(t, k1))

		withDB(t, url, dir, func(d *db.DB) {
			if _, err := secrets.RotateMasterKey(ctx, d, mustKey(t, k1), mustKey(t, k2)); err != nil {
				t.Fatalf("rotate: %v", err)
			}
		})
		if _, err := start(t, encConfig(dir, url, k1)); err == nil || !strings.Contains(err.Error(), "was it rotated?") {
			t.Fatalf("start with the old key after rotation = %v, want a refusal", err)
		}
		s, err = start(t, encConfig(dir, url, k2))
		if err != nil {
			t.Fatalf("start with the new key: %v", err)
		}
		checkServedState(t, s)
		s.stop(t)
		logs.WriteString(s.logs.String() + s.out.String())
		checkData(t, url, dir, mustKey(t, k2))
		noKeysIn(t, logs.String(), mustKey(t, k1), mustKey(t, k2))
	})
}
