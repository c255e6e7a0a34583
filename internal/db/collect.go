package db

import "context"

// Scanner is what a row scan function reads from: *sql.Row or *sql.Rows.
// It is an alias, so that a scan function taking an
// interface{ Scan(...any) error } can be passed to [Collect] as it is.
type Scanner = interface{ Scan(dest ...any) error }

// Collect runs query (in the context's transaction if it has one, like
// [DB.Query]) and scans each row with scan, in order. It returns an empty,
// non-nil slice when there is no row, nil and the error when the query, a
// scan or the iteration fails, and closes the rows before returning.
func Collect[T any](ctx context.Context, d *DB, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := d.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
