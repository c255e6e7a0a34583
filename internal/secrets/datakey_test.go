package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 32)
	key3 = bytes.Repeat([]byte{3}, 32)
)

// settings returns the settings rows that hold keys.
func settings(t *testing.T, d *db.DB) map[string]string {
	t.Helper()
	rows, err := d.Query(context.Background(), `SELECT name, value FROM settings WHERE name IN ('data_key', 'encryption_check')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dataKey unwraps the stored data key with master, as an operator with the
// master key could.
func dataKey(t *testing.T, d *db.DB, master []byte) []byte {
	t.Helper()
	var sk struct{ Wrapped string }
	if err := json.Unmarshal([]byte(settings(t, d)["data_key"]), &sk); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sk.Wrapped)
	mbox, _ := secrets.NewBox(master)
	k, err := mbox.Open(raw, "gantry-data-key")
	if err != nil {
		t.Fatalf("unwrap the data key: %v", err)
	}
	return k
}

func unlock(t *testing.T, d *db.DB, master []byte) (*secrets.Box, secrets.DataKeyInfo) {
	t.Helper()
	box, info, err := secrets.UnlockDataKey(context.Background(), d, master)
	if err != nil {
		t.Fatalf("unlock: %v", err)
	}
	return box, info
}

func TestDataKeyNewDatabase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		box, info := unlock(t, d, key1)
		if !info.Created || info.Adopted || info.MasterVersion != 1 || info.ID == "" {
			t.Fatalf("first unlock: %+v", info)
		}
		if k := dataKey(t, d, key1); bytes.Equal(k, key1) {
			t.Fatal("a new database's data key is the master key")
		}
		if stored := settings(t, d); bytes.Contains([]byte(stored["data_key"]), []byte(hex.EncodeToString(dataKey(t, d, key1)))) {
			t.Fatal("the data key is stored in the clear")
		}
		sealed := box.SealString("s3cret", "stack-env:a:B")

		again, info2 := unlock(t, d, key1)
		if info2.Created || info2.ID != info.ID {
			t.Fatalf("second unlock: %+v, want the same key %s", info2, info.ID)
		}
		if v, err := again.OpenString(sealed, "stack-env:a:B"); err != nil || v != "s3cret" {
			t.Fatalf("open with the reloaded data key: %q %v", v, err)
		}
		if _, _, err := secrets.UnlockDataKey(ctx, d, key2); !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("unlock with another key = %v, want ErrWrongKey", err)
		}
	})
}

func TestDataKeyConcurrentFirstStart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		const n = 4
		boxes := make([]*secrets.Box, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { boxes[i], _, errs[i] = secrets.UnlockDataKey(context.Background(), d, key1) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("unlock %d: %v", i, errs[i])
			}
		}
		sealed := boxes[0].Seal([]byte("x"), "")
		for i := 1; i < n; i++ {
			if _, err := boxes[i].Open(sealed, ""); err != nil {
				t.Errorf("server %d got another data key", i)
			}
		}
	})
}

// oldInstall writes what a release without data keys left: the encryption
// check and a value sealed directly with the master key.
func oldInstall(t *testing.T, d *db.DB, master []byte, check bool) string {
	t.Helper()
	ctx := context.Background()
	old, _ := secrets.NewBox(master)
	if check {
		if _, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('encryption_check', $1)`, old.SealString("gantry", "encryption-check")); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('root', 'root', 1, 1)`,
		`INSERT INTO stacks (id, name, space_id, repository, branch, tool, created_at, updated_at) VALUES ('net', 'net', 'root', 'r', 'main', 'opentofu', 1, 1)`,
	} {
		if _, err := d.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	sealed := old.SealString("pw", "stack-env:net:PW")
	if _, err := d.Exec(ctx, `INSERT INTO stack_env (stack_id, name, value, secret) VALUES ('net', 'PW', $1, TRUE)`, sealed); err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestDataKeyAdoptsExistingDatabase(t *testing.T) {
	for _, check := range []bool{true, false} {
		name := "with encryption check"
		if !check {
			name = "only encrypted rows"
		}
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				sealed := oldInstall(t, d, key1, check)
				if check {
					if _, _, err := secrets.UnlockDataKey(context.Background(), d, key2); !errors.Is(err, secrets.ErrWrongKey) {
						t.Fatalf("adoption with another key = %v, want ErrWrongKey", err)
					}
					if _, ok := settings(t, d)["data_key"]; ok {
						t.Fatal("a wrong key stored a data key")
					}
				}
				box, info := unlock(t, d, key1)
				if !info.Created || !info.Adopted {
					t.Fatalf("info %+v, want created and adopted", info)
				}
				if !bytes.Equal(dataKey(t, d, key1), key1) {
					t.Fatal("the adopted data key is not the old master key")
				}
				if v, err := box.OpenString(sealed, "stack-env:net:PW"); err != nil || v != "pw" {
					t.Fatalf("old data after adoption: %q %v", v, err)
				}
				if _, info := unlock(t, d, key1); info.Created || !info.Adopted {
					t.Fatalf("second start: %+v", info)
				}
			})
		})
	}
}

func TestRotateMasterKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := secrets.RotateMasterKey(ctx, d, key1, key2); !errors.Is(err, secrets.ErrNoDataKey) {
			t.Fatalf("rotate on an empty database = %v, want ErrNoDataKey", err)
		}
		box, info := unlock(t, d, key1)
		sealed := box.Seal([]byte("state"), "state:net:1")
		before := settings(t, d)

		if _, err := secrets.RotateMasterKey(ctx, d, key3, key2); !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("rotate with a wrong old key = %v, want ErrWrongKey", err)
		}
		if _, err := secrets.RotateMasterKey(ctx, d, key1, key1); err == nil {
			t.Fatal("rotated to the same key")
		}
		if after := settings(t, d); after["data_key"] != before["data_key"] || after["encryption_check"] != before["encryption_check"] {
			t.Fatal("a refused rotation changed the settings")
		}

		rot, err := secrets.RotateMasterKey(ctx, d, key1, key2)
		if err != nil {
			t.Fatal(err)
		}
		if rot.ID != info.ID || rot.MasterVersion != 2 {
			t.Fatalf("after rotation: %+v, want the same data key %s at master version 2", rot, info.ID)
		}
		if _, _, err := secrets.UnlockDataKey(ctx, d, key1); !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("old key after rotation = %v, want ErrWrongKey", err)
		}
		if _, err := secrets.RotateMasterKey(ctx, d, key1, key3); !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("rotate again from the old key = %v, want ErrWrongKey", err)
		}
		box2, info2 := unlock(t, d, key2)
		if info2.ID != info.ID || info2.MasterVersion != 2 || info2.Created {
			t.Fatalf("unlock with the new key: %+v", info2)
		}
		if v, err := box2.Open(sealed, "state:net:1"); err != nil || string(v) != "state" {
			t.Fatalf("data after rotation: %q %v", v, err)
		}
		// The check follows the master key.
		mbox, _ := secrets.NewBox(key2)
		if v, err := mbox.OpenString(settings(t, d)["encryption_check"], "encryption-check"); err != nil || v != "gantry" {
			t.Fatalf("encryption check after rotation: %q %v", v, err)
		}
	})
}

func TestRotateAdoptsExistingDatabase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		sealed := oldInstall(t, d, key1, true)
		if _, err := secrets.RotateMasterKey(ctx, d, key2, key3); !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("rotate with a wrong old key = %v", err)
		}
		if _, ok := settings(t, d)["data_key"]; ok {
			t.Fatal("a refused rotation stored a data key")
		}
		info, err := secrets.RotateMasterKey(ctx, d, key1, key2)
		if err != nil || !info.Adopted || info.MasterVersion != 2 {
			t.Fatalf("rotate: %+v %v", info, err)
		}
		box, _ := unlock(t, d, key2)
		if v, err := box.OpenString(sealed, "stack-env:net:PW"); err != nil || v != "pw" {
			t.Fatalf("old data after rotation: %q %v", v, err)
		}
	})
}

func TestGenerateKey(t *testing.T) {
	a, b := secrets.GenerateKey(), secrets.GenerateKey()
	if len(a) != 64 || a == b {
		t.Fatalf("keys %q %q", a, b)
	}
	if k, err := secrets.ParseKey(a); err != nil || len(k) != 32 {
		t.Fatalf("parse: %v", err)
	}
}
