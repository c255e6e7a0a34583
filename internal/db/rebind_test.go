package db

import "testing"

func TestRebind(t *testing.T) {
	tests := []struct {
		name, in, sqlite string
	}{
		{"no placeholders", "SELECT 1", "SELECT 1"},
		{"simple", "SELECT a FROM t WHERE b = $1 AND c = $2", "SELECT a FROM t WHERE b = ?1 AND c = ?2"},
		{"repeated", "UPDATE t SET a = $1 WHERE a <> $1", "UPDATE t SET a = ?1 WHERE a <> ?1"},
		{"multi digit", "VALUES ($9,$10,$11)", "VALUES (?9,?10,?11)"},
		{"at start and end", "$1=$2", "?1=?2"},
		{"string literal", "SELECT '$1', $1", "SELECT '$1', ?1"},
		{"escaped quote in string", "SELECT 'it''s $1', $2", "SELECT 'it''s $1', ?2"},
		{"unterminated string", "SELECT $1, 'abc $2", "SELECT ?1, 'abc $2"},
		{"quoted identifier", `SELECT "a$1" FROM t WHERE x = $1`, `SELECT "a$1" FROM t WHERE x = ?1`},
		{"line comment", "SELECT $1 -- don't $2\n, $3", "SELECT ?1 -- don't $2\n, ?3"},
		{"block comment", "SELECT /* it's $1 */ $2", "SELECT /* it's $1 */ ?2"},
		{"dollar without digit", "SELECT '$' || $1, $a", "SELECT '$' || ?1, $a"},
		{"dollar inside identifier", "SELECT a$1 FROM t WHERE b = $1", "SELECT a$1 FROM t WHERE b = ?1"},
		{"after parenthesis and operator", "WHERE x IN ($1,$2)AND y>$3", "WHERE x IN (?1,?2)AND y>?3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebind(SQLite, tt.in); got != tt.sqlite {
				t.Errorf("rebind(SQLite, %q) = %q, want %q", tt.in, got, tt.sqlite)
			}
			if got := rebind(Postgres, tt.in); got != tt.in {
				t.Errorf("rebind(Postgres, %q) = %q, want it unchanged", tt.in, got)
			}
		})
	}
}

func TestIsSelect(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"SELECT 1", true},
		{"  select * from t", true},
		{"\n\t(SELECT 1) UNION (SELECT 2)", true},
		{"-- comment\nSELECT 1", true},
		{"/* c */ SELECT 1", true},
		{"SELECT", true},
		{"SELECTED", false},
		{"INSERT INTO t VALUES ($1) RETURNING id", false},
		{"UPDATE t SET a = 1 RETURNING a", false},
		{"DELETE FROM t RETURNING a", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", false},
		{"", false},
		{"-- only a comment", false},
	}
	for _, tt := range tests {
		if got := isSelect(tt.in); got != tt.want {
			t.Errorf("isSelect(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPrepareCaches(t *testing.T) {
	d := &DB{Dialect: SQLite}
	q1 := d.prepare("SELECT $1")
	q2 := d.prepare("SELECT $1")
	if q1 != q2 {
		t.Error("prepare did not reuse the cached query")
	}
	if q1.text != "SELECT ?1" || !q1.readOnly {
		t.Errorf("prepare = %+v", *q1)
	}
	if q := d.prepare("INSERT INTO t VALUES ($1)"); q.readOnly {
		t.Error("INSERT prepared as read-only")
	}
	if n := d.numQueries.Load(); n != 2 {
		t.Errorf("cached %d queries, want 2", n)
	}
}
