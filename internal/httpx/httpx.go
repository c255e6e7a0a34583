// Package httpx adapts handlers that return errors, maps error kinds to
// HTTP statuses in one table, and decodes and encodes JSON strictly.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Status maps error kinds to HTTP statuses: the one table.
var Status = map[errs.Kind]int{
	errs.Invalid:         http.StatusBadRequest,
	errs.Unauthenticated: http.StatusUnauthorized,
	errs.Forbidden:       http.StatusForbidden,
	errs.NotFound:        http.StatusNotFound,
	errs.Conflict:        http.StatusConflict,
	errs.TooLarge:        http.StatusRequestEntityTooLarge,
	errs.Locked:          http.StatusLocked,
	errs.Unavailable:     http.StatusServiceUnavailable,
	errs.TooManyRequests: http.StatusTooManyRequests,
	errs.Internal:        http.StatusInternalServerError,
}

// HandlerFunc is an http handler that returns an error.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id of ctx.
func RequestID(ctx context.Context) string {
	v, _ := ctx.Value(requestIDKey).(string)
	return v
}

// Adapter turns HandlerFuncs into http.Handlers that write errors.
type Adapter struct{ Log *slog.Logger }

// H adapts h. A URL whose path or query holds a NUL character or invalid
// UTF-8 is refused before h: no id, name or filter has one, and PostgreSQL
// refuses them in a query.
func (a Adapter) H(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := checkURL(r.URL)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			a.WriteError(w, r, err)
		}
	})
}

func checkURL(u *url.URL) error {
	bad := func(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }
	if bad(u.Path) {
		return errs.E(errs.Invalid, "the URL's path holds a NUL character or invalid UTF-8")
	}
	if u.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil // as the handler reads it: what parses
	}
	for k, vs := range q {
		if bad(k) || slices.ContainsFunc(vs, bad) {
			return errs.E(errs.Invalid, "the URL's query parameter %q holds a NUL character or invalid UTF-8", strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", ""), "?"))
		}
	}
	return nil
}

// WriteError writes err as the error envelope with its status; the cause of
// internal errors is logged with the request id, never sent.
func (a Adapter) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	kind := errs.KindOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		kind, err = errs.TooLarge, errs.E(errs.TooLarge, "request body larger than %d bytes", mbe.Limit)
	}
	status := Status[kind]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	switch {
	case errors.Is(err, ErrSlowBody):
		kind, status, err = errs.Invalid, http.StatusRequestTimeout, errs.E(errs.Invalid, "%v", err)
	case kind == errs.Internal && db.IsInvalidText(err):
		// What the checks of requests let through: the client's text,
		// not the server, is at fault.
		kind, status = errs.Invalid, http.StatusBadRequest
		err = errs.Wrap(errs.Invalid, err, "the request holds text the database cannot store (a NUL character or invalid UTF-8)")
	case kind == errs.Internal && db.Unavailable(err) != "":
		// Not a bug: the database is down, full or overloaded. Clients
		// (OpenTofu's state backend, workers) retry a 503.
		kind, status = errs.Unavailable, http.StatusServiceUnavailable
		err = &errs.Error{Kind: errs.Unavailable, Err: err, Detail: RetryAfter(DatabaseRetryAfter),
			Message: db.Unavailable(err) + "; try again later (request " + RequestID(r.Context()) + ")"}
	}
	if status >= 500 && a.Log != nil && r.Context().Err() == nil {
		a.Log.Error("request failed", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
	}
	msg := errs.Public(err)
	if kind == errs.Internal {
		msg = "internal error (request " + RequestID(r.Context()) + ")"
	}
	detail := errs.DetailOf(err)
	if ra, ok := detail.(RetryAfter); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(ra)))
		detail = nil
	}
	WriteJSON(w, status, apiv1.ErrorBody{Error: apiv1.ErrorDetail{Code: string(kind), Message: msg, Detail: detail}})
}

// RetryAfter, as an error's detail, is sent as the Retry-After header
// (seconds) instead of in the body.
type RetryAfter int

// DatabaseRetryAfter is the Retry-After (seconds) of a 503 for a database
// that is unavailable.
const DatabaseRetryAfter = 10

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// DecodeJSON reads one JSON object of at most max bytes into v, refusing
// unknown fields, trailing data and objects without the fields v's struct
// type tags `required:"true"` (absent or null; the OpenAPI document's
// required lists, which a test keeps equal to the tags).
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	_, err := decodeJSON(w, r, v, max, true)
	return err
}

// DecodeJSONTolerant is DecodeJSON accepting fields that v's type does not
// have, which it ignores and names (those of the top level, sorted): for
// the requests of a protocol whose newer clients may add fields that an
// older server must not refuse (the worker protocol's register).
func DecodeJSONTolerant(w http.ResponseWriter, r *http.Request, v any, max int64) (unknown []string, err error) {
	body, err := decodeJSON(w, r, v, max, false)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil, nil
	}
	known := map[string]bool{}
	if t := reflect.TypeOf(v); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		for f := range t.Elem().Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			known[strings.ToLower(name)] = true
		}
	}
	for k := range fields {
		if !known[strings.ToLower(k)] { // encoding/json matches names case-insensitively
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return unknown, nil
}

// decodeJSON is DecodeJSON, refusing unknown fields when strict; it
// returns the body.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, max int64, strict bool) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, errs.E(errs.Invalid, "Content-Type must be application/json, got %q", ct)
	}
	body, err := ReadBody(w, r, max, "request body")
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || string(t) == "null" {
		return nil, errs.E(errs.Invalid, "request body is empty: a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, errs.E(errs.Invalid, "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return nil, errs.E(errs.Invalid, "field %q must be %s, got %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return nil, errs.E(errs.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		if field, value, ok := badTime(body, reflect.TypeOf(v), ""); ok {
			return nil, errs.E(errs.Invalid, "%s: %s is not an RFC 3339 time such as 2026-12-01T00:00:00Z", field, value)
		}
		return nil, errs.E(errs.Invalid, "malformed JSON: %v", err)
	}
	if dec.More() {
		return nil, errs.E(errs.Invalid, "malformed JSON: unexpected data after the object")
	}
	if err := CheckNUL(body); err != nil {
		return nil, err
	}
	if t := reflect.TypeOf(v); hasRequired(t) {
		if missing := missingFields(body, t, ""); len(missing) > 0 {
			return nil, errs.E(errs.Invalid, "%s", requiredMessage(missing))
		}
	}
	return body, nil
}

// ReadBody reads r's body of at most max bytes: a longer one is TooLarge
// ("<what> larger than N bytes"), one that arrives too slowly stays
// ErrSlowBody (408), any other failure is Invalid.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64, what string) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, errs.E(errs.TooLarge, "%s larger than %d bytes", what, max)
		case errors.Is(err, ErrSlowBody):
			return nil, err
		}
		return nil, errs.E(errs.Invalid, "reading the %s: %v", what, err)
	}
	return body, nil
}

// CheckNUL refuses the JSON document raw when one of its strings, a value
// or a key, holds a NUL character (\u0000): PostgreSQL cannot store it
// (SQLite can: one rule for both), no process environment can carry it,
// and no name or command needs it. The error names the field
// ("labels[1]"). Binary data travels base64-encoded.
func CheckNUL(raw []byte) error {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return nil // the only way JSON spells NUL
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	if path, ok := nulPath(v, ""); ok {
		return errs.E(errs.Invalid, "%s must not contain a NUL character (\\u0000)", path)
	}
	return nil
}

// nulPath returns the JSON path of the first string of v holding NUL.
func nulPath(v any, path string) (string, bool) {
	switch v := v.(type) {
	case string:
		return path, strings.IndexByte(v, 0) >= 0
	case []any:
		for i, e := range v {
			if p, ok := nulPath(e, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if strings.IndexByte(k, 0) >= 0 {
				return fmt.Sprintf("the key %q", sub), true
			}
			if p, ok := nulPath(v[k], sub); ok {
				return p, true
			}
		}
	}
	return "", false
}

// requiredTypes remembers which struct types have required fields.
var requiredTypes sync.Map // reflect.Type -> bool

// hasRequired reports whether the struct type t (or pointer to one), or a
// struct in its fields, tags a field `required:"true"`: only then is the
// body read a second time to find what is missing.
func hasRequired(t reflect.Type) bool {
	if v, ok := requiredTypes.Load(t); ok {
		return v.(bool)
	}
	found := tagsRequired(t, map[reflect.Type]bool{})
	requiredTypes.Store(t, found)
	return found
}

func tagsRequired(t reflect.Type, seen map[reflect.Type]bool) bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || seen[t] {
		return false
	}
	seen[t] = true // a type holding itself ends here
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("required") == "true" || tagsRequired(f.Type, seen) {
			return true
		}
	}
	return false
}

// eachField calls fn with the JSON path and raw value (nil when absent) of
// each field of the struct type t (or pointer to one) in the JSON object
// raw, and recurses into the present values of struct fields. Names match
// case-insensitively, as encoding/json matches them.
func eachField(raw []byte, t reflect.Type, prefix string, fn func(path string, f reflect.StructField, v json.RawMessage)) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return
	}
	lookup := func(name string) json.RawMessage {
		if v, ok := obj[name]; ok {
			return v
		}
		for k, v := range obj {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			eachField(raw, f.Type, prefix, fn)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		v := lookup(name)
		fn(prefix+name, f, v)
		if v != nil && string(bytes.TrimSpace(v)) != "null" {
			eachField(v, f.Type, prefix+name+".", fn)
		}
	}
}

// badTime finds the time field of raw that is not an RFC 3339 time (what
// encoding/json's error does not name), with its value as sent.
func badTime(raw []byte, t reflect.Type, prefix string) (field, value string, ok bool) {
	eachField(raw, t, prefix, func(path string, f reflect.StructField, v json.RawMessage) {
		typ := f.Type
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if ok || v == nil || typ != reflect.TypeFor[time.Time]() || string(bytes.TrimSpace(v)) == "null" {
			return
		}
		var tm time.Time
		if tm.UnmarshalJSON(bytes.TrimSpace(v)) != nil {
			field, value, ok = path, string(bytes.TrimSpace(v)), true
			if len(value) > 64 {
				value = truncate.String(value, 64) + "..."
			}
		}
	})
	return field, value, ok
}

// missingFields returns the fields tagged `required:"true"` of the struct
// type t (or pointer to one) that the JSON object raw lacks or holds null
// for, with those of present nested objects, by JSON path ("email.host").
// An explicit zero value ("", 0, false, []) is a value.
func missingFields(raw []byte, t reflect.Type, prefix string) []string {
	var missing []string
	eachField(raw, t, prefix, func(path string, f reflect.StructField, v json.RawMessage) {
		if f.Tag.Get("required") == "true" && (v == nil || string(bytes.TrimSpace(v)) == "null") {
			missing = append(missing, path)
		}
	})
	return missing
}

// requiredMessage says which fields are required: "id is required", "id
// and url are required".
func requiredMessage(missing []string) string {
	if len(missing) == 1 {
		return missing[0] + " is required"
	}
	return strings.Join(missing[:len(missing)-1], ", ") + " and " + missing[len(missing)-1] + " are required"
}

// WithRequestID gives every request an id (X-Request-Id echoes it).
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get("X-Request-Id")
		if !validRequestID(rid) {
			rid = id.New("req")
		}
		w.Header().Set("X-Request-Id", rid)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, rid)))
	})
}

// Recover turns a panic into a 500 and logs it.
func (a Adapter) Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.WriteError(w, r, errs.Wrap(errs.Internal, fmt.Errorf("panic: %v", v), "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// BearerToken returns the bearer token of r, or the password of its basic
// auth (how OpenTofu's http backend sends credentials).
func BearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if _, p, ok := r.BasicAuth(); ok {
		return p
	}
	return ""
}

// validRequestID accepts a caller's request id only when it is 1 to 64
// letters, digits, dots, dashes and underscores: it reaches logs and the
// audit trail, where anything else (NUL, invalid UTF-8) could break them.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
