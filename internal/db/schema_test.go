package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// TestSchemaParity checks that the two dialects' migrations produce the
// same tables, with the same columns in the same order, of matching types
// and nullability, and the same named indexes.
func TestSchemaParity(t *testing.T) {
	lite := describeSQLite(t, dbtest.SQLite(t))
	pg := describePostgres(t, dbtest.Postgres(t))
	if len(lite) == 0 {
		t.Fatal("no SQLite columns found")
	}
	if diff := diffLines(lite, pg); diff != "" {
		t.Errorf("schemas differ (- sqlite, + postgres):\n%s", diff)
	}
}

// sqliteTypes maps SQLite declared types to PostgreSQL's names for them.
var sqliteTypes = map[string]string{
	"text": "text", "bigint": "bigint", "boolean": "boolean", "blob": "bytea",
	"integer": "integer", "timestamp": "timestamp without time zone",
}

// describeSQLite lists "table.column type [not null]" per column in order,
// then "index name".
func describeSQLite(t *testing.T, d *db.DB) []string {
	t.Helper()
	cols := queryStrings(t, d, `
		SELECT m.name, c.name, lower(c.type), c."notnull" OR c.pk > 0
		FROM sqlite_master m JOIN pragma_table_info(m.name) c
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
		ORDER BY m.name, c.cid`,
		func(table, col, typ string, notNull bool) string {
			if pgType, ok := sqliteTypes[typ]; ok {
				typ = pgType
			}
			return column(table, col, typ, notNull)
		})
	idx := queryStrings(t, d, `
		SELECT name, '', '', FALSE FROM sqlite_master
		WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`,
		func(name, _, _ string, _ bool) string { return "index " + name })
	return append(cols, idx...)
}

// describePostgres lists the same as describeSQLite. Indexes behind primary
// keys and UNIQUE constraints are left out: SQLite does not name them.
func describePostgres(t *testing.T, d *db.DB) []string {
	t.Helper()
	cols := queryStrings(t, d, `
		SELECT table_name, column_name, data_type, is_nullable = 'NO'
		FROM information_schema.columns
		WHERE table_schema = current_schema()
		ORDER BY table_name, ordinal_position`, column)
	idx := queryStrings(t, d, `
		SELECT indexname, '', '', FALSE FROM pg_indexes
		WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'
		ORDER BY indexname`,
		func(name, _, _ string, _ bool) string { return "index " + name })
	return append(cols, idx...)
}

// column describes a column. Only the names of goose's own version table
// are compared: goose declares it differently per dialect.
func column(table, col, typ string, notNull bool) string {
	if table == "goose_db_version" {
		return table + "." + col
	}
	s := fmt.Sprintf("%s.%s %s", table, col, typ)
	if notNull {
		s += " not null"
	}
	return s
}

// queryStrings runs a query of three text columns and a boolean and formats
// each row with f.
func queryStrings(t *testing.T, d *db.DB, query string, f func(a, b, c string, d bool) string) []string {
	t.Helper()
	rows, err := d.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b, c string
		var flag bool
		if err := rows.Scan(&a, &b, &c, &flag); err != nil {
			t.Fatal(err)
		}
		out = append(out, f(a, b, c, flag))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffLines returns the lines only in a ("- ") and only in b ("+ ").
func diffLines(a, b []string) string {
	var out strings.Builder
	for _, s := range a {
		if !slices.Contains(b, s) {
			out.WriteString("- " + s + "\n")
		}
	}
	for _, s := range b {
		if !slices.Contains(a, s) {
			out.WriteString("+ " + s + "\n")
		}
	}
	if out.Len() == 0 && !slices.Equal(a, b) {
		out.WriteString(fmt.Sprintf("same columns, different order:\n%s\n---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n")))
	}
	return out.String()
}
