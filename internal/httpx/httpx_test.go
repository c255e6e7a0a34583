package httpx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/jackc/pgx/v5/pgconn"
)

type body struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Inner *struct {
		On bool `json:"on"`
	} `json:"inner"`
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		max         int64
		wantKind    errs.Kind // "" for success
		wantMsg     string
	}{
		{name: "valid", contentType: "application/json", body: `{"name":"a","count":2,"tags":["x"],"inner":{"on":true}}`},
		{name: "no content type", body: `{"name":"a"}`},
		{name: "content type with charset", contentType: "application/json; charset=utf-8", body: `{"name":"a"}`},
		{name: "surrounding whitespace", body: "\n  {\"name\":\"a\"}  \n"},
		{name: "wrong content type", contentType: "text/plain", body: `{"name":"a"}`, wantKind: errs.Invalid, wantMsg: "Content-Type must be application/json"},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: `name=a`, wantKind: errs.Invalid, wantMsg: "Content-Type"},
		{name: "empty body", body: "", wantKind: errs.Invalid, wantMsg: "request body is empty"},
		{name: "blank body", body: " \n\t ", wantKind: errs.Invalid, wantMsg: "request body is empty"},
		{name: "malformed", body: `{"name":`, wantKind: errs.Invalid, wantMsg: "malformed JSON"},
		{name: "syntax error", body: `{"name" "a"}`, wantKind: errs.Invalid, wantMsg: "malformed JSON at byte"},
		{name: "unknown field", body: `{"name":"a","bogus":1}`, wantKind: errs.Invalid, wantMsg: `unknown field "bogus"`},
		{name: "unknown nested field", body: `{"inner":{"off":true}}`, wantKind: errs.Invalid, wantMsg: `unknown field "off"`},
		{name: "wrong type", body: `{"count":"three"}`, wantKind: errs.Invalid, wantMsg: `field "count" must be int`},
		{name: "wrong element type", body: `{"tags":[1]}`, wantKind: errs.Invalid, wantMsg: `must be string`},
		{name: "array instead of object", body: `[1,2]`, wantKind: errs.Invalid},
		{name: "string instead of object", body: `"name"`, wantKind: errs.Invalid},
		{name: "trailing object", body: `{"name":"a"}{"name":"b"}`, wantKind: errs.Invalid, wantMsg: "unexpected data after the object"},
		{name: "trailing garbage", body: `{"name":"a"} x`, wantKind: errs.Invalid},
		{name: "too large", body: `{"name":"` + strings.Repeat("a", 200) + `"}`, max: 100, wantKind: errs.TooLarge, wantMsg: "larger than 100 bytes"},
		{name: "exactly at the limit", body: `{"name":"abc"}`, max: int64(len(`{"name":"abc"}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			max := tt.max
			if max == 0 {
				max = 1 << 20
			}
			var v body
			err := httpx.DecodeJSON(httptest.NewRecorder(), r, &v, max)
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("DecodeJSON = %v, want nil", err)
				}
				return
			}
			if !errs.Is(err, tt.wantKind) {
				t.Fatalf("DecodeJSON = %v (kind %s), want kind %s", err, errs.KindOf(err), tt.wantKind)
			}
			if msg := errs.Public(err); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("public message %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestDecodeJSONFillsValue(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader(`{"name":"a","count":2,"tags":["x","y"],"inner":{"on":true}}`))
	var v body
	if err := httpx.DecodeJSON(httptest.NewRecorder(), r, &v, 1<<20); err != nil {
		t.Fatal(err)
	}
	if v.Name != "a" || v.Count != 2 || len(v.Tags) != 2 || v.Inner == nil || !v.Inner.On {
		t.Errorf("decoded %+v", v)
	}
}

func TestDecodeJSONRequiredFields(t *testing.T) {
	type inner struct {
		Host string `json:"host" required:"true"`
		Port int    `json:"port"`
	}
	type embedded struct {
		Kind string `json:"kind" required:"true"`
	}
	type req struct {
		embedded
		ID    string `json:"id" required:"true"`
		On    bool   `json:"on" required:"true"`
		Note  string `json:"note,omitempty"`
		Email *inner `json:"email,omitempty"`
	}
	tests := []struct{ body, wantMsg string }{
		{body: `{"kind":"k","id":"a","on":false}`},
		{body: `{"kind":"","id":"","on":false}`},  // explicit zero values are values
		{body: `{"Kind":"k","ID":"a","On":true}`}, // names match as encoding/json matches them
		{body: `{"kind":"k","id":"a","on":true,"email":{"host":"h"}}`},
		{body: `{"kind":"k","id":"a","on":true,"email":null}`}, // optional
		{body: `{"kind":"k","on":true}`, wantMsg: "id is required"},
		{body: `{"kind":"k","id":null,"on":true}`, wantMsg: "id is required"},
		{body: `{}`, wantMsg: "kind, id and on are required"},
		{body: `{"kind":"k","id":"a"}`, wantMsg: "on is required"},
		{body: `{"kind":"k","id":"a","on":true,"email":{"port":25}}`, wantMsg: "email.host is required"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var v req
			err := httpx.DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", strings.NewReader(tt.body)), &v, 1<<20)
			if tt.wantMsg == "" {
				if err != nil {
					t.Errorf("DecodeJSON = %v, want nil", err)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) || errs.Public(err) != tt.wantMsg {
				t.Errorf("DecodeJSON = %v, want invalid %q", err, tt.wantMsg)
			}
		})
	}
}

// A bad time names its field and the format, not Go's layout.
func TestDecodeJSONBadTime(t *testing.T) {
	type req struct {
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
		Inner     struct {
			At time.Time `json:"at"`
		} `json:"inner"`
	}
	tests := []struct{ body, wantMsg string }{
		{body: `{"expires_at":"2026-12-01T00:00:00Z","inner":{"at":"2026-12-01T10:00:00+02:00"}}`},
		{body: `{"expires_at":null}`},
		{body: `{"expires_at":"tomorrow"}`, wantMsg: `expires_at: "tomorrow" is not an RFC 3339 time such as 2026-12-01T00:00:00Z`},
		{body: `{"expires_at":"2026-12-01"}`, wantMsg: `expires_at: "2026-12-01" is not an RFC 3339 time`},
		{body: `{"expires_at":5}`, wantMsg: `expires_at: 5 is not an RFC 3339 time`},
		{body: `{"inner":{"at":"soon"}}`, wantMsg: `inner.at: "soon" is not an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var v req
			err := httpx.DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", strings.NewReader(tt.body)), &v, 1<<20)
			if tt.wantMsg == "" {
				if err != nil {
					t.Errorf("DecodeJSON = %v, want nil", err)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) || !strings.Contains(errs.Public(err), tt.wantMsg) || strings.Contains(errs.Public(err), "2006") {
				t.Errorf("DecodeJSON = %v, want invalid %q", err, tt.wantMsg)
			}
		})
	}
}

// errorBody decodes an error envelope strictly.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) apiv1.ErrorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var b apiv1.ErrorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("error body is not the envelope: %v", err)
	}
	return b
}

// serve runs h behind the request id middleware and returns the recorder.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	httpx.WithRequestID(h).ServeHTTP(rec, r)
	return rec
}

func TestWriteErrorStatusTable(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{errs.E(errs.Invalid, "bad"), 400, "invalid"},
		{errs.E(errs.Unauthenticated, "who"), 401, "unauthenticated"},
		{errs.E(errs.Forbidden, "no"), 403, "forbidden"},
		{errs.E(errs.NotFound, "gone"), 404, "not_found"},
		{errs.E(errs.Conflict, "clash"), 409, "conflict"},
		{errs.E(errs.TooLarge, "big"), 413, "too_large"},
		{errs.E(errs.Locked, "held"), 423, "locked"},
		{errs.E(errs.Unavailable, "later"), 503, "unavailable"},
		{errs.E(errs.Internal, "oops"), 500, "internal"},
		{errs.E(errs.Kind("made_up"), "what"), 500, "made_up"},
		{errors.New("plain"), 500, "internal"},
		{fmt.Errorf("wrapped: %w", errs.E(errs.NotFound, "deep")), 404, "not_found"},
		{&http.MaxBytesError{Limit: 10}, 413, "too_large"},
		{fmt.Errorf("reading: %w", &http.MaxBytesError{Limit: 10}), 413, "too_large"},
		// PostgreSQL refusing a text (NUL, invalid UTF-8) the checks let through.
		{fmt.Errorf("saving: %w", &pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}), 400, "invalid"},
		{&pgconn.PgError{Code: "22P05", Message: "unsupported Unicode escape sequence"}, 400, "invalid"},
		{&pgconn.PgError{Code: "23502", Message: "null value"}, 500, "internal"},
		{httpx.ErrSlowBody, 408, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			ad := httpx.Adapter{}
			rec := serve(ad.H(func(w http.ResponseWriter, r *http.Request) error { return tt.err }), httptest.NewRequest("GET", "/", nil))
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			b := errorBody(t, rec)
			if b.Error.Code != tt.code || b.Error.Message == "" {
				t.Errorf("envelope = %+v, want code %q and a message", b.Error, tt.code)
			}
		})
	}
	for kind, status := range httpx.Status {
		if status < 400 || status > 599 {
			t.Errorf("Status[%s] = %d, not an error status", kind, status)
		}
	}
}

func TestWriteErrorPublicMessageAndDetail(t *testing.T) {
	ad := httpx.Adapter{}
	err := &errs.Error{Kind: errs.Locked, Message: "state is locked", Err: errors.New("row 7 held by tx 42"), Detail: map[string]string{"ID": "lock-1"}}
	rec := serve(ad.H(func(w http.ResponseWriter, r *http.Request) error { return err }), httptest.NewRequest("GET", "/", nil))
	b := errorBody(t, rec)
	if b.Error.Message != "state is locked" {
		t.Errorf("message = %q, want only the public message", b.Error.Message)
	}
	if d, _ := b.Error.Detail.(map[string]any); d["ID"] != "lock-1" {
		t.Errorf("detail = %#v, want the lock detail", b.Error.Detail)
	}
}

func TestWriteErrorHidesInternalCause(t *testing.T) {
	var logs bytes.Buffer
	ad := httpx.Adapter{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	tests := []error{
		errors.New("pq: password authentication failed for user gantry"),
		errs.Wrap(errs.Internal, errors.New("pq: password authentication failed for user gantry"), "loading the stack"),
		errs.E(errs.Internal, "pq: password authentication failed for user gantry"),
	}
	for i, cause := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest("GET", "/api/v1/stacks/x", nil)
			r.Header.Set("X-Request-Id", "req-test-42")
			rec := serve(ad.H(func(w http.ResponseWriter, r *http.Request) error { return cause }), r)
			if rec.Code != 500 {
				t.Fatalf("status = %d, want 500", rec.Code)
			}
			b := errorBody(t, rec)
			if strings.Contains(b.Error.Message, "password") || strings.Contains(b.Error.Message, "loading") {
				t.Errorf("message %q reveals the cause", b.Error.Message)
			}
			if b.Error.Message != "internal error (request req-test-42)" {
				t.Errorf("message = %q, want it to carry the request id", b.Error.Message)
			}
			if rec.Header().Get("X-Request-Id") != "req-test-42" {
				t.Errorf("X-Request-Id = %q", rec.Header().Get("X-Request-Id"))
			}
			if l := logs.String(); !strings.Contains(l, "req-test-42") || !strings.Contains(l, "password authentication failed") {
				t.Errorf("log %q lacks the request id or the cause", l)
			}
		})
	}
}

// A database that is unavailable (down, refusing connections, too many
// clients, its disk full) is not an internal error: 503 with Retry-After
// and a message saying what, so that clients retry and operators see it;
// the cause is logged, never sent.
func TestWriteErrorDatabaseUnavailable(t *testing.T) {
	var logs bytes.Buffer
	ad := httpx.Adapter{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("loading: %w", &pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}),
			"the database is unavailable: it has too many clients; try again later (request req-db-1)"},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"},
			"the database is unavailable: it is shutting down or starting up; try again later (request req-db-1)"},
		{errs.Wrap(errs.Internal, &pgconn.PgError{Code: "53100", Message: "could not extend file"}, "saving"),
			"the disk holding the database is full; try again later (request req-db-1)"},
	} {
		logs.Reset()
		r := httptest.NewRequest("GET", "/api/v1/stacks", nil)
		r.Header.Set("X-Request-Id", "req-db-1")
		rec := serve(httpx.WithRequestID(ad.H(func(w http.ResponseWriter, r *http.Request) error { return tt.err })), r)
		b := errorBody(t, rec)
		if rec.Code != 503 || b.Error.Code != "unavailable" || b.Error.Message != tt.want || rec.Header().Get("Retry-After") != "10" {
			t.Errorf("%v: %d %+v Retry-After %q; want 503 unavailable %q, Retry-After 10", tt.err, rec.Code, b.Error, rec.Header().Get("Retry-After"), tt.want)
		}
		if b.Error.Detail != nil || strings.Contains(b.Error.Message, "administrator") || strings.Contains(b.Error.Message, "clients already") {
			t.Errorf("%v: the answer shows the cause: %+v", tt.err, b.Error)
		}
		if !strings.Contains(logs.String(), "req-db-1") || !strings.Contains(logs.String(), tt.err.Error()) {
			t.Errorf("%v: the cause is not logged: %s", tt.err, logs.String())
		}
	}
}

func TestWriteErrorDoesNotLogClientErrors(t *testing.T) {
	var logs bytes.Buffer
	ad := httpx.Adapter{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	serve(ad.H(func(w http.ResponseWriter, r *http.Request) error { return errs.E(errs.NotFound, "nope") }), httptest.NewRequest("GET", "/", nil))
	if logs.Len() != 0 {
		t.Errorf("a 404 was logged: %s", logs.String())
	}
}

func TestWithRequestID(t *testing.T) {
	var seen string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = httpx.RequestID(r.Context()) })
	tests := []struct {
		name, in  string
		keep      bool
		wantEmpty bool
	}{
		{name: "none given", in: ""},
		{name: "given", in: "client-id-1", keep: true},
		{name: "too long", in: strings.Repeat("x", 65)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.in != "" {
				r.Header.Set("X-Request-Id", tt.in)
			}
			rec := serve(h, r)
			got := rec.Header().Get("X-Request-Id")
			if got == "" || got != seen {
				t.Fatalf("header %q, context %q: want the same non-empty id", got, seen)
			}
			if tt.keep != (got == tt.in) {
				t.Errorf("id = %q for %q (keep %v)", got, tt.in, tt.keep)
			}
			if !tt.keep && !strings.HasPrefix(got, "req-") {
				t.Errorf("generated id %q lacks the req- prefix", got)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *http.Request)
		want  string
	}{
		{"none", func(r *http.Request) {}, ""},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer gnt_abc") }, "gnt_abc"},
		{"bearer with spaces", func(r *http.Request) { r.Header.Set("Authorization", "Bearer   gnt_abc  ") }, "gnt_abc"},
		{"basic auth password", func(r *http.Request) { r.SetBasicAuth("gantry", "gst_run_secret") }, "gst_run_secret"},
		{"basic auth without user", func(r *http.Request) { r.SetBasicAuth("", "pw") }, "pw"},
		{"other scheme", func(r *http.Request) { r.Header.Set("Authorization", "Token gnt_abc") }, ""},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, ""},
		{"broken basic", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, ""},
		// RFC 9110 section 11.1: the scheme is case-insensitive.
		{"lower-case bearer scheme", func(r *http.Request) { r.Header.Set("Authorization", "bearer gnt_abc") }, "gnt_abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			tt.setup(r)
			if got := httpx.BearerToken(r); got != tt.want {
				t.Errorf("BearerToken = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	var logs bytes.Buffer
	ad := httpx.Adapter{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	h := ad.Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("nil map write in handler") }))
	r := httptest.NewRequest("GET", "/boom", nil)
	r.Header.Set("X-Request-Id", "req-panic")
	rec := serve(h, r)
	if rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	b := errorBody(t, rec)
	if b.Error.Code != "internal" || b.Error.Message != "internal error (request req-panic)" {
		t.Errorf("envelope = %+v", b.Error)
	}
	if !strings.Contains(logs.String(), "nil map write in handler") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
}

func TestRecoverPassesAbortHandler(t *testing.T) {
	ad := httpx.Adapter{}
	h := ad.Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	t.Error("ServeHTTP returned; want the abort panic to propagate")
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	httpx.WriteJSON(rec, 201, map[string]int{"a": 1})
	if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("WriteJSON = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var m map[string]int
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["a"] != 1 {
		t.Errorf("body %q: %v", rec.Body.String(), err)
	}
}

func TestCheckNUL(t *testing.T) {
	tests := []struct {
		body string
		want string // the field named; "" for no error
	}{
		{`{"name":"ab"}`, ""},
		{`{"name":"a\\u0000b"}`, ""}, // a backslash, then u0000
		{`{"name":"a\u0000b"}`, "name must not contain a NUL"},
		{`{"labels":["ok","x\u0000"]}`, "labels[1] must"},
		{`{"hooks":{"before_init":["\u0000"]}}`, "hooks.before_init[0] must"},
		{`{"env":{"A\u0000":"v"}}`, `the key "env.A\x00" must`},
	}
	for _, tt := range tests {
		err := httpx.CheckNUL([]byte(tt.body))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckNUL(%s) = %v, want nil", tt.body, err)
		case tt.want != "" && (!errs.Is(err, errs.Invalid) || !strings.Contains(errs.Public(err), tt.want)):
			t.Errorf("CheckNUL(%s) = %v, want invalid containing %q", tt.body, err, tt.want)
		}
	}
}

func TestAdapterRefusesBadURLs(t *testing.T) {
	h := httpx.Adapter{}.H(func(w http.ResponseWriter, r *http.Request) error { return nil })
	for _, target := range []string{"/stacks/a%00b", "/stacks/%C3", "/stacks?cursor=%00", "/stacks?label=%C3%28", "/stacks?%FF=1"} {
		if rec := serve(h, httptest.NewRequest("GET", target, nil)); rec.Code != 400 {
			t.Errorf("GET %s = %d, want 400", target, rec.Code)
		}
	}
	for _, target := range []string{"/stacks/caf%C3%A9", "/stacks?label=%C3%A9t%C3%A9", "/stacks?cursor=%zz"} {
		if rec := serve(h, httptest.NewRequest("GET", target, nil)); rec.Code != 200 {
			t.Errorf("GET %s = %d, want 200", target, rec.Code)
		}
	}
}

// DecodeJSONTolerant decodes what it knows, names the top-level fields it
// does not (sorted), and refuses what DecodeJSON refuses otherwise.
func TestDecodeJSONTolerant(t *testing.T) {
	type in struct {
		Name  string            `json:"name"`
		Tools map[string]string `json:"tools,omitempty"`
		Plain int
	}
	decode := func(body string) (in, []string, error) {
		var v in
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		unknown, err := httpx.DecodeJSONTolerant(httptest.NewRecorder(), r, &v, 1<<10)
		return v, unknown, err
	}
	v, unknown, err := decode(`{"name": "a", "zeta": 1, "tools": {"x": "1"}, "alpha": {"b": [2]}, "NAME": "b", "plain": 3}`)
	if err != nil || v.Name != "b" || v.Tools["x"] != "1" || v.Plain != 3 || strings.Join(unknown, ",") != "alpha,zeta" {
		t.Errorf("decoded %+v, unknown %v, err %v", v, unknown, err)
	}
	for _, bad := range []string{`{"name": 1}`, `{"name": "a"`, ``, `{"name": "a"} {}`} {
		if _, _, err := decode(bad); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: err %v, want invalid", bad, err)
		}
	}
}
