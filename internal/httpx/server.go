package httpx

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// The limits of every HTTP server the binary starts. Neither a ReadTimeout
// nor a WriteTimeout: they would cut long polls (a log ?wait=, a worker's
// claim) and big uploads and downloads on a slow link.
const (
	// readHeaderTimeout bounds how long a request's headers may take.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection with no request for this
	// long: above the 60 s of the usual load balancers, so that they, not
	// Gantry, close the connections they keep.
	idleTimeout = 90 * time.Second
	// BodyWindow and BodyMinBytes: a request body must bring at least
	// BodyMinBytes (or the rest of the body) in every BodyWindow, about
	// 550 bytes a second, or the request ends with 408.
	BodyWindow   = 30 * time.Second
	BodyMinBytes = 16 << 10
)

// NewServer returns an http.Server for h with Gantry's limits: headers
// within 10 s, idle keep-alive connections closed after 90 s and request
// bodies that must keep arriving (SlowBodies).
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           SlowBodies(h, BodyWindow, BodyMinBytes),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}
}

// ErrSlowBody is returned by the reads of a request body that did not
// bring min bytes within a window: the client sends too slowly, or not at
// all.
var ErrSlowBody = errors.New("the request body arrived too slowly")

// SlowBodies ends the requests whose body does not bring at least min
// bytes (or the rest of the body) in every window, counted from the first
// read: a read deadline on the connection, moved on by each min bytes and
// lifted once the body is read, so that a handler may then wait as long as
// it likes (long polls).
func SlowBodies(next http.Handler, window time.Duration, min int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &slowBody{ReadCloser: r.Body, rc: http.NewResponseController(w), window: window, min: min}
		}
		next.ServeHTTP(w, r)
	})
}

type slowBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	window  time.Duration
	min     int64
	started bool
	got     int64 // bytes since the deadline last moved
	done    bool
	err     error
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if !b.started {
		b.started = true
		b.extend()
	}
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	if b.got >= b.min {
		b.got = 0
		b.extend()
	}
	switch {
	case err == io.EOF && !b.done:
		b.done = true
		// No deadline once the body is read: the connection's
		// background read would end the request's context at it.
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.err = fmt.Errorf("%w: less than %d bytes in %s", ErrSlowBody, b.min, b.window)
		return n, b.err
	}
	return n, err
}

func (b *slowBody) extend() { _ = b.rc.SetReadDeadline(time.Now().Add(b.window)) }
