package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/id"
)

// Envelope encryption: every encrypted column is sealed with the data key
// (a random AES-256 key); the data key is stored only wrapped (sealed) by
// the master key the operator holds, in the settings row "data_key".
// Rotating the master key re-wraps that one row: no data is re-encrypted,
// and servers already running, which hold the data key in memory, carry on.
//
// The settings row "encryption_check" holds a known value sealed by the
// master key. It predates the data key and is kept in step with it, so that
// a database and its master key can be checked without the data key.
const (
	dataKeySetting = "data_key"
	checkSetting   = "encryption_check"
	dataKeyAAD     = "gantry-data-key"
	checkAAD       = "encryption-check"
	checkValue     = "gantry"
)

// ErrWrongKey is returned when a master key does not unwrap the database's
// data key.
var ErrWrongKey = errors.New("the encryption key does not match this database: was it rotated?")

// ErrNoDataKey is returned by RotateMasterKey on a database no server has
// started on yet: there is no key to rotate.
var ErrNoDataKey = errors.New("this database has no encryption key yet: start the server on it once first")

// DataKeyInfo describes a database's data key without revealing it.
type DataKeyInfo struct {
	// ID names the data key (dk-...); it changes only with the data key.
	ID string
	// MasterVersion counts the master keys that wrapped the data key: 1
	// when it was created, one more per rotation.
	MasterVersion int
	// Adopted reports that the data key is the master key of a release
	// that encrypted with the master key directly: its bytes are those of
	// the first master key of this database.
	Adopted bool
	// Created reports that this call created (or adopted) the data key.
	Created bool
	// RotatedAt is when the data key was last wrapped.
	RotatedAt time.Time
}

// storedDataKey is the JSON of the "data_key" settings row.
type storedDataKey struct {
	ID            string `json:"id"`
	MasterVersion int    `json:"master_version"`
	Adopted       bool   `json:"adopted,omitempty"`
	Wrapped       string `json:"wrapped"` // base64 of the data key sealed by the master key, AAD dataKeyAAD
	WrappedAt     int64  `json:"wrapped_at"`
}

func (s storedDataKey) info() DataKeyInfo {
	return DataKeyInfo{ID: s.ID, MasterVersion: s.MasterVersion, Adopted: s.Adopted, RotatedAt: db.FromNanos(s.WrappedAt)}
}

// GenerateKey returns a new random 32-byte key written as 64 hex
// characters, as ParseKey reads it.
func GenerateKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return hex.EncodeToString(k)
}

// UnlockDataKey returns a Box of the database's data key, unwrapped with
// master. On a database without a data key it creates one: a random key on
// a new database, or, on a database written by a release that encrypted
// with the master key directly, the master key itself (adopted, so that the
// data already stored still opens). A master key that does not match the
// database gives ErrWrongKey.
func UnlockDataKey(ctx context.Context, d *db.DB, master []byte) (*Box, DataKeyInfo, error) {
	mbox, err := NewBox(master)
	if err != nil {
		return nil, DataKeyInfo{}, err
	}
	var key []byte
	var info DataKeyInfo
	err = d.Tx(ctx, func(ctx context.Context) error {
		var err error
		key, info, _, err = loadDataKey(ctx, d, mbox, master, true)
		return err
	})
	if err != nil {
		return nil, DataKeyInfo{}, err
	}
	defer clear(key)
	box, err := NewBox(key)
	return box, info, err
}

// RotateMasterKey re-wraps the database's data key, unwrapped with
// oldMaster, with newMaster, and re-seals the encryption check with it, in
// one transaction. The data key, and so all data, is unchanged. It returns
// ErrWrongKey, changing nothing, when oldMaster does not match.
func RotateMasterKey(ctx context.Context, d *db.DB, oldMaster, newMaster []byte) (DataKeyInfo, error) {
	oldBox, err := NewBox(oldMaster)
	if err != nil {
		return DataKeyInfo{}, fmt.Errorf("old key: %w", err)
	}
	newBox, err := NewBox(newMaster)
	if err != nil {
		return DataKeyInfo{}, fmt.Errorf("new key: %w", err)
	}
	if bytes.Equal(oldMaster, newMaster) {
		return DataKeyInfo{}, errors.New("the new key is the old key")
	}
	var info DataKeyInfo
	err = d.Tx(ctx, func(ctx context.Context) error {
		key, cur, raw, err := loadDataKey(ctx, d, oldBox, oldMaster, false)
		if err != nil {
			return err
		}
		defer clear(key)
		next := storedDataKey{ID: cur.ID, MasterVersion: cur.MasterVersion + 1, Adopted: cur.Adopted,
			Wrapped: wrap(newBox, key), WrappedAt: db.Nanos(time.Now())}
		if err := replaceDataKey(ctx, d, raw, next); err != nil {
			return err
		}
		if _, err := d.Exec(ctx, `UPDATE settings SET value = $1 WHERE name = $2`, newBox.SealString(checkValue, checkAAD), checkSetting); err != nil {
			return err
		}
		info = next.info()
		info.Created = cur.Created
		return nil
	})
	if err != nil {
		return DataKeyInfo{}, err
	}
	return info, nil
}

// loadDataKey returns the data key unwrapped with mbox (the Box of master)
// and the settings value it was read from, creating the data key first if
// there is none and create is set, or if the database predates data keys
// (adoption). It must run in a transaction.
func loadDataKey(ctx context.Context, d *db.DB, mbox *Box, master []byte, create bool) ([]byte, DataKeyInfo, string, error) {
	raw, found, err := readSetting(ctx, d, dataKeySetting)
	if err != nil {
		return nil, DataKeyInfo{}, "", err
	}
	created := false
	if !found {
		if created, err = initDataKey(ctx, d, mbox, master, create); err != nil {
			return nil, DataKeyInfo{}, "", err
		}
		// Read back what is stored: on PostgreSQL another server may have
		// stored its data key first.
		if raw, found, err = readSetting(ctx, d, dataKeySetting); err != nil {
			return nil, DataKeyInfo{}, "", err
		}
		if !found {
			return nil, DataKeyInfo{}, "", errors.New("the data key is missing right after it was stored")
		}
	}
	var sk storedDataKey
	if err := json.Unmarshal([]byte(raw), &sk); err != nil {
		return nil, DataKeyInfo{}, "", fmt.Errorf("the stored data key is malformed: %w", err)
	}
	sealed, err := base64.StdEncoding.DecodeString(sk.Wrapped)
	if err != nil {
		return nil, DataKeyInfo{}, "", errors.New("the stored data key is malformed: not base64")
	}
	key, err := mbox.Open(sealed, dataKeyAAD)
	if err != nil {
		return nil, DataKeyInfo{}, "", ErrWrongKey
	}
	if len(key) != 32 {
		clear(key)
		return nil, DataKeyInfo{}, "", fmt.Errorf("the stored data key has %d bytes, want 32", len(key))
	}
	if err := verifyCheck(ctx, d, mbox); err != nil {
		clear(key)
		return nil, DataKeyInfo{}, "", err
	}
	info := sk.info()
	info.Created = created
	return key, info, raw, nil
}

// initDataKey stores a wrapped data key unless one is already stored. On a
// database written before data keys (it has an encryption check or
// encrypted rows) the data key is the master key; on a new one it is random,
// if create is set. It reports whether its row was the one stored.
func initDataKey(ctx context.Context, d *db.DB, mbox *Box, master []byte, create bool) (bool, error) {
	check, hasCheck, err := readSetting(ctx, d, checkSetting)
	if err != nil {
		return false, err
	}
	if hasCheck {
		if _, err := mbox.OpenString(check, checkAAD); err != nil {
			return false, ErrWrongKey
		}
	}
	adopt := hasCheck
	if !adopt {
		if adopt, err = hasEncryptedRows(ctx, d); err != nil {
			return false, err
		}
	}
	var key []byte
	switch {
	case adopt:
		key = bytes.Clone(master)
	case !create:
		return false, ErrNoDataKey
	default:
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	defer clear(key)
	if !hasCheck {
		if _, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			checkSetting, mbox.SealString(checkValue, checkAAD)); err != nil {
			return false, err
		}
	}
	value, err := json.Marshal(storedDataKey{ID: id.New("dk"), MasterVersion: 1, Adopted: adopt,
		Wrapped: wrap(mbox, key), WrappedAt: db.Nanos(time.Now())})
	if err != nil {
		return false, err
	}
	res, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, dataKeySetting, string(value))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Encrypted reports whether the database was already given an encryption
// key: it holds a data key or an encryption check, or encrypted rows (a
// release from before the check). A new key cannot open such a database.
func Encrypted(ctx context.Context, d *db.DB) (bool, error) {
	for _, name := range []string{dataKeySetting, checkSetting} {
		if _, found, err := readSetting(ctx, d, name); err != nil || found {
			return found, err
		}
	}
	return hasEncryptedRows(ctx, d)
}

// encryptedTables hold values sealed with the data key (before data keys:
// the master key). A database without an encryption check but with rows
// in one of them was written by a release that sealed with the master key.
var encryptedTables = []string{"stack_env", "state_versions", "run_artifacts", "context_env", "context_files", "notify_endpoints"}

func hasEncryptedRows(ctx context.Context, d *db.DB) (bool, error) {
	for _, t := range encryptedTables {
		var one int
		err := d.QueryRow(ctx, `SELECT 1 FROM `+t+` LIMIT 1`).Scan(&one)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
	}
	return false, nil
}

// verifyCheck opens the encryption check with the master key's Box,
// storing it if it is missing.
func verifyCheck(ctx context.Context, d *db.DB, mbox *Box) error {
	check, found, err := readSetting(ctx, d, checkSetting)
	if err != nil {
		return err
	}
	if !found {
		_, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			checkSetting, mbox.SealString(checkValue, checkAAD))
		return err
	}
	if v, err := mbox.OpenString(check, checkAAD); err != nil || v != checkValue {
		return ErrWrongKey
	}
	return nil
}

func readSetting(ctx context.Context, d *db.DB, name string) (string, bool, error) {
	var v string
	err := d.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the %s setting: %w", name, err)
	}
	return v, true, nil
}

// wrap seals a data key with a master key's Box.
func wrap(mbox *Box, key []byte) string {
	return base64.StdEncoding.EncodeToString(mbox.Seal(key, dataKeyAAD))
}

// replaceDataKey stores next as the data key, only if the stored row is
// still raw, the one the rotation unwrapped: a concurrent rotation must
// not be overwritten silently.
func replaceDataKey(ctx context.Context, d *db.DB, raw string, next storedDataKey) error {
	value, err := json.Marshal(next)
	if err != nil {
		return err
	}
	res, err := d.Exec(ctx, `UPDATE settings SET value = $1 WHERE name = $2 AND value = $3`, string(value), dataKeySetting, raw)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.New("the data key changed during the rotation (another rotation?): nothing was changed")
	}
	return nil
}
