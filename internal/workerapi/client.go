package workerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
)

// Client speaks the protocol to a server over HTTP.
type Client struct {
	BaseURL   string // the server, e.g. http://127.0.0.1:8080
	PoolToken string
	HTTP      *http.Client

	mu          sync.Mutex // guards workerToken: a registration again while other loops claim
	workerToken string
}

var _ Protocol = (*Client)(nil)

// NewClient returns a protocol client for the server at baseURL.
func NewClient(baseURL, poolToken string) *Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), PoolToken: poolToken, HTTP: &http.Client{Transport: transport}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Kind maps the status to an error kind.
func (e *StatusError) Kind() errs.Kind {
	switch e.Status {
	case 401:
		return errs.Unauthenticated
	case 403:
		return errs.Forbidden
	case 404:
		return errs.NotFound
	case 409:
		return errs.Conflict
	case 413:
		return errs.TooLarge
	case 400:
		return errs.Invalid
	}
	return errs.Internal
}

// Permanent reports whether retrying the same request cannot succeed.
func Permanent(err error) bool {
	se, ok := err.(*StatusError)
	return ok && se.Status >= 400 && se.Status < 500
}

// Refused reports whether a claim's error means that this worker can claim
// no more until it is restarted: its token is refused (401: unknown
// worker, its pool's token was reset; 403) or its key pair is no longer
// its pool's (409). Anything else (a server in trouble, a request it did
// not like) is logged and retried with backoff: a worker that stopped on
// it would leave its pool's runs waiting for good.
func Refused(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden || se.Status == http.StatusConflict
}

// UnknownWorker reports whether a claim's error means that the server
// does not know the worker's token (401): the worker was never registered
// in the server's database as it is now (restored from a backup taken
// before the worker registered), or was removed with its pool's token
// reset. Registering again with the pool token tells them apart: it is
// refused after a reset.
func UnknownWorker(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized
}

// Unsupported reports whether an error is the answer of a server that
// does not serve the call (404, 405): one of a release before it.
func Unsupported(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed)
}

func (c *Client) do(ctx context.Context, method, path, token string, body io.Reader, contentType string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+Prefix+path, body)
	if err != nil {
		return 0, err
	}
	if sb, ok := body.(sizedBody); ok {
		req.ContentLength = sb.size
		if sb.size == 0 {
			req.Body = http.NoBody
		}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb apiv1.ErrorBody
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = json.Unmarshal(raw, &eb)
		return resp.StatusCode, &StatusError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if b, ok := out.(*[]byte); ok {
			if resp.ContentLength >= 0 && resp.ContentLength <= 1<<30 {
				// One buffer of the announced size, not ReadAll's growing copies.
				*b = make([]byte, resp.ContentLength)
				_, err = io.ReadFull(resp.Body, *b)
				return resp.StatusCode, err
			}
			*b, err = io.ReadAll(resp.Body)
			return resp.StatusCode, err
		}
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

func (c *Client) doJSON(ctx context.Context, method, path, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, token, body, "application/json", out)
}

// Register implements Protocol.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error) {
	var resp RegisterResponse
	_, err := c.doJSON(ctx, "POST", "/register", c.PoolToken, req, &resp)
	if err == nil {
		c.mu.Lock()
		c.workerToken = resp.Token
		c.mu.Unlock()
	}
	return resp, err
}

// Deregister implements Protocol. A client that never registered has
// nothing to say.
func (c *Client) Deregister(ctx context.Context) error {
	token := c.token()
	if token == "" {
		return nil
	}
	_, err := c.doJSON(ctx, "POST", "/deregister", token, nil, nil)
	return err
}

// Drain implements Protocol. A client that never registered has nothing
// to say.
func (c *Client) Drain(ctx context.Context) error {
	token := c.token()
	if token == "" {
		return nil
	}
	_, err := c.doJSON(ctx, "POST", "/drain", token, nil, nil)
	return err
}

func (c *Client) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workerToken
}

// Claim implements Protocol.
func (c *Client) Claim(ctx context.Context, wait time.Duration) (*Job, error) {
	var job Job
	status, err := c.doJSON(ctx, "POST", "/claim?wait="+url.QueryEscape(wait.String()), c.token(), nil, &job)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return &job, nil
}

func jobPath(job *Job, rest string) string { return "/jobs/" + url.PathEscape(job.RunID) + "/" + rest }

// Phase implements Protocol.
func (c *Client) Phase(ctx context.Context, job *Job, req PhaseRequest) error {
	_, err := c.doJSON(ctx, "POST", jobPath(job, "phase"), job.Token, req, nil)
	return err
}

// AppendLog implements Protocol.
func (c *Client) AppendLog(ctx context.Context, job *Job, offset int64, data []byte) error {
	_, err := c.do(ctx, "POST", jobPath(job, "logs?offset="+strconv.FormatInt(offset, 10)), job.Token, bytes.NewReader(data), "application/octet-stream", nil)
	return err
}

// PutArtifact implements Protocol: body is streamed, with its size as
// Content-Length (the server takes its memory budget from it, and
// refuses a body over the limit before reading it).
func (c *Client) PutArtifact(ctx context.Context, job *Job, name string, body io.Reader, size int64) error {
	_, err := c.do(ctx, "PUT", jobPath(job, "artifacts/"+name), job.Token, sizedBody{body, size}, "application/octet-stream", nil)
	return err
}

// sizedBody is a request body of a known size.
type sizedBody struct {
	io.Reader
	size int64
}

// GetArtifact implements Protocol.
func (c *Client) GetArtifact(ctx context.Context, job *Job, name string) ([]byte, error) {
	var data []byte
	_, err := c.do(ctx, "GET", jobPath(job, "artifacts/"+name), job.Token, nil, "", &data)
	return data, err
}

// Planned implements Protocol.
func (c *Client) Planned(ctx context.Context, job *Job, req PlannedRequest) (PlannedResponse, error) {
	var resp PlannedResponse
	_, err := c.doJSON(ctx, "POST", jobPath(job, "planned"), job.Token, req, &resp)
	return resp, err
}

// RecordDelta implements Protocol.
func (c *Client) RecordDelta(ctx context.Context, job *Job, req DeltaRequest) error {
	_, err := c.doJSON(ctx, "POST", jobPath(job, "delta"), job.Token, req, nil)
	return err
}

// HandOff implements Protocol.
func (c *Client) HandOff(ctx context.Context, job *Job) error {
	_, err := c.doJSON(ctx, "POST", jobPath(job, "handoff"), job.Token, nil, nil)
	return err
}

// Heartbeat implements Protocol.
func (c *Client) Heartbeat(ctx context.Context, job *Job) (HeartbeatResponse, error) {
	var resp HeartbeatResponse
	_, err := c.doJSON(ctx, "POST", jobPath(job, "heartbeat"), job.Token, nil, &resp)
	return resp, err
}

// Finish implements Protocol.
func (c *Client) Finish(ctx context.Context, job *Job, req FinishRequest) error {
	// A tool's output may hold NUL characters; a request may not.
	req.Reason = strings.ReplaceAll(req.Reason, "\x00", "")
	_, err := c.doJSON(ctx, "POST", jobPath(job, "finish"), job.Token, req, nil)
	return err
}
