package db

import "strings"

// maxCachedQueries bounds the per-DB cache of rewritten queries, so that a
// caller building SQL text dynamically cannot grow it without limit.
const maxCachedQueries = 10_000

// query is a statement ready for the DB's driver.
type query struct {
	text string // placeholders rewritten for the dialect
	// readOnly is true when the statement is a plain SELECT that may run on
	// SQLite's reader pool outside a transaction. Always false on PostgreSQL.
	readOnly bool
	// prep, on SQLite, keeps the statement prepared (nil: never).
	prep *prepared
}

// prepare returns the statement for query, from the cache when possible.
func (d *DB) prepare(text string) *query {
	if q, ok := d.queries.Load(text); ok {
		return q.(*query)
	}
	q := &query{
		text:     rebind(d.Dialect, text),
		readOnly: d.Dialect == SQLite && isSelect(text),
	}
	n := d.numQueries.Load()
	if n < maxCachedQueries {
		if d.Dialect == SQLite && n < maxPreparedQueries {
			q.prep = &prepared{}
		}
		v, loaded := d.queries.LoadOrStore(text, q)
		if !loaded {
			d.numQueries.Add(1)
		}
		q = v.(*query)
	}
	return q
}

// rebind rewrites the PostgreSQL-style placeholders ($1, $2, ...) of query
// for dialect. For SQLite each $N becomes ?N, which SQLite binds to the Nth
// argument, so a placeholder may be used more than once. Text inside
// single-quoted strings, double-quoted identifiers and comments is left
// alone, as is a $ that follows an identifier character (PostgreSQL allows $
// inside identifiers). For PostgreSQL the query is returned unchanged.
func rebind(dialect Dialect, query string) string {
	if dialect != SQLite || !strings.Contains(query, "$") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query))
	for i := 0; i < len(query); {
		c := query[i]
		var end int // end of the token starting at i that is copied verbatim
		switch {
		case c == '\'' || c == '"':
			// A doubled quote inside the token ends it and starts another,
			// which copies the same bytes.
			end = skipPast(query, i+1, string(c))
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end = skipPast(query, i+2, "\n")
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			end = skipPast(query, i+2, "*/")
		case c == '$' && i+1 < len(query) && isDigit(query[i+1]) && (i == 0 || !isIdentChar(query[i-1])):
			b.WriteByte('?')
			i++
			continue
		default:
			end = i + 1
		}
		b.WriteString(query[i:end])
		i = end
	}
	return b.String()
}

// skipPast returns the index just after the first occurrence of delim in s
// at or after from, or len(s) if there is none.
func skipPast(s string, from int, delim string) int {
	if j := strings.Index(s[from:], delim); j >= 0 {
		return from + j + len(delim)
	}
	return len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentChar(c byte) bool {
	return isDigit(c) || c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c >= 0x80
}

// isSelect reports whether query's first keyword, after white space,
// comments and opening parentheses, is SELECT. Anything else (including
// WITH, which may front an INSERT) is treated as a possible write.
func isSelect(query string) bool {
	s := query
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			s = s[skipPast(s, 2, "\n"):]
		case strings.HasPrefix(s, "/*"):
			s = s[skipPast(s, 2, "*/"):]
		default:
			return len(s) >= 6 && strings.EqualFold(s[:6], "SELECT") && (len(s) == 6 || !isIdentChar(s[6]))
		}
	}
}
