// Package client is the Go client of Gantry's public REST API (/api/v1).
// The CLI, the worker and the tests use it; it knows nothing of the server's
// internals, only the wire types of package apiv1.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Client talks to one Gantry server with one bearer token.
type Client struct {
	base      string // server URL without a trailing slash
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through h. The client
// relies on contexts for deadlines: an h with a Timeout shorter than the log
// long poll (20s) breaks FollowLogs.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http = h }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client of the server at baseURL (for example
// "https://gantry.example.com") authenticating with token. An empty token
// sends no Authorization header.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		token:     token,
		http:      &http.Client{},
		userAgent: "gantry-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// APIError is a non-2xx answer of the server.
type APIError struct {
	Status  int    // HTTP status code
	Code    string // error code of the body, e.g. "not_found"
	Message string // public message of the body
	Detail  any    // optional structured detail (e.g. lock info)
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// statusKinds maps HTTP statuses to error kinds, the reverse of the server's table.
var statusKinds = map[int]errs.Kind{
	http.StatusBadRequest:            errs.Invalid,
	http.StatusUnprocessableEntity:   errs.Invalid,
	http.StatusUnauthorized:          errs.Unauthenticated,
	http.StatusForbidden:             errs.Forbidden,
	http.StatusNotFound:              errs.NotFound,
	http.StatusConflict:              errs.Conflict,
	http.StatusLocked:                errs.Locked,
	http.StatusRequestEntityTooLarge: errs.TooLarge,
	http.StatusServiceUnavailable:    errs.Unavailable,
}

// Kind returns the error kind the status stands for (Internal for any other).
func (e *APIError) Kind() errs.Kind {
	if k, ok := statusKinds[e.Status]; ok {
		return k
	}
	return errs.Internal
}

// Unwrap exposes the error as an *errs.Error so that errs.KindOf and errs.Is
// work on client errors too.
func (e *APIError) Unwrap() error {
	return &errs.Error{Kind: e.Kind(), Message: e.Message, Detail: e.Detail}
}

// do sends a request to {base}/api/v1{path}. in, when not nil, is sent as
// JSON; out, when not nil, receives the decoded JSON answer, or the raw body
// when it is a *[]byte.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.send(ctx, method, c.base+"/api/v1"+path, query, in, out)
}

func (c *Client) send(ctx context.Context, method, u string, query url.Values, in, out any) error {
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	switch o := out.(type) {
	case nil:
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	case *[]byte:
		*o, err = io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("%s %s: read response: %w", method, req.URL.Path, err)
		}
		return nil
	default:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, req.URL.Path, err)
		}
		return nil
	}
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Status: resp.StatusCode}
	var body apiv1.ErrorBody
	if err := json.Unmarshal(raw, &body); err == nil && (body.Error.Code != "" || body.Error.Message != "") {
		e.Code, e.Message, e.Detail = body.Error.Code, body.Error.Message, body.Error.Detail
		return e
	}
	// Not our error shape (a proxy, a crash): keep what can be said.
	e.Code = string(e.Kind())
	e.Message = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if text := strings.TrimSpace(string(raw)); text != "" && isText(text) {
		if len(text) > 200 {
			text = truncate.String(text, 200) + "..."
		}
		e.Message += ": " + text
	}
	return e
}

func isText(s string) bool {
	return !strings.ContainsRune(s, 0) && !strings.HasPrefix(s, "<")
}

// Health checks {base}/healthz answers 2xx.
func (c *Client) Health(ctx context.Context) error {
	return c.send(ctx, http.MethodGet, c.base+"/healthz", nil, nil, nil)
}

// ListOptions selects a page of a list.
type ListOptions struct {
	Limit  int    // page size; 0 lets the server choose
	Cursor string // next_cursor of the previous page
}

func (o ListOptions) values() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

func setIf(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }
