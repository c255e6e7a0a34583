package httpx

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Budget bounds the memory that the large requests and answers of the
// server (states, plans, artifacts) hold at once. Each takes a weight, in
// bytes, before it reads its body or loads its data, and gives it back when
// done; while others hold the rest, it waits, in order of arrival, for as
// long as its request lasts, rather than allocate. A weight above the whole
// budget is cut to it: such a request runs alone. A nil *Budget never waits.
type Budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters list.List // of *budgetWaiter, first come first served
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

// NewBudget returns a budget of size bytes (at least 1).
func NewBudget(size int64) *Budget { return &Budget{size: max(size, 1)} }

// Size returns the budget's size in bytes (0 for nil: no limit).
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Acquire waits until n bytes are free (n is cut to the budget's size) and
// takes them; release gives them back (call it once). It fails with
// Unavailable when ctx ends first.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	n = min(n, b.size)
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return b.releaser(n), nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	e := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return b.releaser(n), nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		b.waiters.Remove(e)
	}
	b.grant()
	b.mu.Unlock()
	return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "the server is busy with other large requests (--max-request-memory): try again")
}

func (b *Budget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			b.grant()
			b.mu.Unlock()
		})
	}
}

// grant hands free bytes to the waiters at the front, in order.
func (b *Budget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// Stats returns the bytes held and the number of requests waiting.
func (b *Budget) Stats() (used int64, waiting int) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.waiters.Len()
}

// CheckLength refuses a request whose Content-Length announces more than max
// bytes, before anything is read; what names the body in the message
// ("state", "artifact"), and hint, if set, follows it (how to raise the
// limit). A body of unknown length is read under http.MaxBytesReader.
func CheckLength(r *http.Request, max int64, what, hint string) error {
	if r.ContentLength <= max {
		return nil
	}
	msg := fmt.Sprintf("%s of %d bytes is larger than the limit of %d bytes", what, r.ContentLength, max)
	if hint != "" {
		msg += ": " + hint
	}
	return errs.E(errs.TooLarge, "%s", msg)
}

// ReadSealable reads a request body of at most max bytes into memory,
// once, with room to be sealed where it lies (secrets.Box.SealPlaintext):
// a body of known length (Content-Length, checked against max before
// anything is read) into a buffer of exactly that size, one of unknown
// length as it comes. A body longer than max fails with an
// *http.MaxBytesError, one that arrives too slowly with ErrSlowBody.
func ReadSealable(w http.ResponseWriter, r *http.Request, max int64) (*secrets.Plaintext, error) {
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	failed := func(err error) error {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, ErrSlowBody) {
			return err
		}
		return errs.E(errs.Invalid, "reading the request body: %v", err)
	}
	if r.ContentLength >= 0 {
		p := secrets.NewPlaintext(int(r.ContentLength))
		if _, err := io.ReadFull(r.Body, p.Bytes()); err != nil {
			return nil, failed(err)
		}
		return p, nil
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, failed(err)
	}
	p := secrets.NewPlaintext(len(data))
	copy(p.Bytes(), data)
	return p, nil
}
