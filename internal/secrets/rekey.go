package secrets

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/id"
)

// Encoding is how a column stores what Box.Seal returned.
type Encoding int

const (
	// Raw: the sealed bytes themselves (BLOB / BYTEA).
	Raw Encoding = iota
	// Base64: standard base64 text (Box.SealString).
	Base64
	// Base64URL: unpadded URL-safe base64 text.
	Base64URL
)

func (e Encoding) decode(v any) ([]byte, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		if e == Raw {
			return v, nil
		}
		s = string(v)
	case string:
		if e == Raw {
			return []byte(v), nil
		}
		s = v
	default:
		return nil, fmt.Errorf("unexpected %T", v)
	}
	switch e {
	case Base64:
		return base64.StdEncoding.DecodeString(s)
	default:
		return base64.RawURLEncoding.DecodeString(s)
	}
}

func (e Encoding) encode(b []byte) any {
	switch e {
	case Base64:
		return base64.StdEncoding.EncodeToString(b)
	case Base64URL:
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return b
}

// SealedColumn is a column holding values sealed with the data key. Each
// domain package that seals with the data key lists its columns (a
// variable SealedColumns), so that RotateDataKey re-encrypts them all.
type SealedColumn struct {
	Table, Column string
	// Keys identify a row (its primary key); Extra are other columns the
	// additional data is made of.
	Keys, Extra []string
	// Where restricts the rows holding sealed values (for example
	// "secret", when plain values share the column); empty values are
	// never sealed ones and are skipped.
	Where    string
	Encoding Encoding
	// AAD returns the additional data of a row from the values of Keys
	// then Extra, as the domain package seals it.
	AAD func(vals []any) string
}

// Name is table.column.
func (c SealedColumn) Name() string { return c.Table + "." + c.Column }

// RotationGuard runs first in RotateDataKey's transaction: it refuses
// (an error) when servers that hold the data key are running, and keeps
// new ones from starting until the transaction ends.
type RotationGuard func(ctx context.Context) error

// RotateDataKey makes a new random data key, re-encrypts every value of
// cols under it (opened with the current data key, unwrapped by master),
// and stores it wrapped by master, in place of the current one: all in
// one transaction, so that an interrupted rotation changes nothing and the
// current data key still opens everything. A value that does not open
// stops the rotation, changing nothing. It returns the old and the new
// data key's descriptions.
//
// Servers running meanwhile would keep sealing with the old data key:
// guard must refuse while any is running.
func RotateDataKey(ctx context.Context, d *db.DB, master []byte, cols []SealedColumn, guard RotationGuard) (old, next DataKeyInfo, err error) {
	mbox, err := NewBox(master)
	if err != nil {
		return old, next, err
	}
	err = d.Tx(ctx, func(ctx context.Context) error {
		if guard != nil {
			if err := guard(ctx); err != nil {
				return err
			}
		}
		key, cur, raw, err := loadDataKey(ctx, d, mbox, master, false)
		if err != nil {
			return err
		}
		defer clear(key)
		oldBox, err := NewBox(key)
		if err != nil {
			return err
		}
		nkey := make([]byte, 32)
		_, _ = rand.Read(nkey)
		defer clear(nkey)
		newBox, err := NewBox(nkey)
		if err != nil {
			return err
		}
		for _, c := range cols {
			if err := reseal(ctx, d, c, oldBox, newBox); err != nil {
				return err
			}
		}
		stored := storedDataKey{ID: id.New("dk"), MasterVersion: cur.MasterVersion,
			Wrapped: wrap(mbox, nkey), WrappedAt: db.Nanos(time.Now())}
		if err := replaceDataKey(ctx, d, raw, stored); err != nil {
			return err
		}
		old, next = cur, stored.info()
		return nil
	})
	if err != nil {
		return DataKeyInfo{}, DataKeyInfo{}, err
	}
	return old, next, nil
}

// reseal re-encrypts the values of one column, a row at a time: the keys
// of its rows are listed first (small), then each value is read, opened,
// sealed anew and written back.
func reseal(ctx context.Context, d *db.DB, c SealedColumn, oldBox, newBox *Box) error {
	cond := "1 = 1"
	if c.Where != "" {
		cond = "(" + c.Where + ")"
	}
	sel := strings.Join(append(append([]string{}, c.Keys...), c.Extra...), ", ")
	rows, err := d.Query(ctx, `SELECT `+sel+` FROM `+c.Table+` WHERE `+cond+` ORDER BY `+strings.Join(c.Keys, ", "))
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	var all [][]any
	for rows.Next() {
		vals := make([]any, len(c.Keys)+len(c.Extra))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok { // text read as bytes: keep it text
				vals[i] = string(b)
			}
		}
		all = append(all, vals)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	for _, vals := range all {
		keys := vals[:len(c.Keys)]
		var stored any
		err := d.QueryRow(ctx, `SELECT `+c.Column+` FROM `+c.Table+` WHERE `+whereFrom(c.Keys, 1), keys...).Scan(&stored)
		if err != nil {
			return fmt.Errorf("%s of %v: %w", c.Name(), keys, err)
		}
		sealed, err := c.Encoding.decode(stored)
		if err != nil {
			return fmt.Errorf("%s of %v: not a sealed value: %w", c.Name(), keys, err)
		}
		if len(sealed) == 0 {
			continue
		}
		aad := c.AAD(vals)
		pt, err := oldBox.OpenInPlace(sealed, aad)
		if err != nil {
			return fmt.Errorf("%s of %v: %w: nothing was changed", c.Name(), keys, err)
		}
		fresh := newBox.Seal(pt, aad)
		clear(pt)
		args := append([]any{c.Encoding.encode(fresh)}, keys...)
		if _, err := d.Exec(ctx, `UPDATE `+c.Table+` SET `+c.Column+` = $1 WHERE `+whereFrom(c.Keys, 2), args...); err != nil {
			return fmt.Errorf("%s of %v: %w", c.Name(), keys, err)
		}
	}
	return nil
}

// whereFrom is "k1 = $n AND k2 = $n+1 ...".
func whereFrom(keys []string, n int) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = $%d", k, n+i)
	}
	return strings.Join(parts, " AND ")
}
