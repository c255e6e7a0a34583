package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// page reads limit (1..1000, default 50) and cursor: the store cursor a
// next_cursor of this list carries (see nextCursor), "" for the first
// page. Any other cursor (made up, damaged, another list's) is refused.
func page(r *http.Request) (int, string, error) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, "", errs.E(errs.Invalid, "limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return limit, "", nil
	}
	cursor, ok := openCursor(r, c)
	if !ok {
		if len(c) > 80 {
			c = truncate.String(c, 80) + "..."
		}
		return 0, "", errs.E(errs.Invalid, "cursor %q is not a next_cursor of this list", c)
	}
	return limit, cursor, nil
}

// nextCursor is the next_cursor of a page of the list r reads, from the
// store's cursor of the next page (the last item's id or sequence number;
// "" on the last page). It is opaque and names the list, so that page
// refuses a cursor this list did not hand out instead of reading it as an
// id (and answering a silently empty or shifted page).
func nextCursor(r *http.Request, next string) string {
	if next == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(r.URL.Path + "\n" + next))
}

// openCursor returns the store cursor in c, a nextCursor of the list r reads.
func openCursor(r *http.Request, c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	next, ok := strings.CutPrefix(string(b), r.URL.Path+"\n")
	if !ok || next == "" || len(next) > 512 || !utf8.ValidString(next) || strings.ContainsFunc(next, unicode.IsControl) {
		return "", false
	}
	return next, true
}

// maxFillRounds bounds the reads of one page of a list filtered by what
// the caller may read: a caller who may read little of a large store gets
// a shorter page (with a cursor) rather than a request that reads it all.
const maxFillRounds = 10

// fillPage reads pages through fetch (from cursor, at most limit items)
// and keeps the items keep says the caller may see, until limit are kept
// or the store ends, and returns them with the cursor of the next page
// ("" at the end). A store's cursor is the id of the last item of a page:
// stopping inside a fetched page, the cursor is the last item kept, so the
// next page starts right after it and nothing is skipped or repeated.
func fillPage[T any](limit int, cursor string, fetch func(cursor string, limit int) ([]T, string, error), keep func(T) bool, idOf func(T) string) ([]T, string, error) {
	var out []T
	for range maxFillRounds {
		list, next, err := fetch(cursor, limit)
		if err != nil {
			return nil, "", err
		}
		for i, it := range list {
			if !keep(it) {
				continue
			}
			out = append(out, it)
			if len(out) == limit {
				if i == len(list)-1 {
					return out, next, nil
				}
				return out, idOf(it), nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		cursor = next
	}
	return out, cursor, nil
}
