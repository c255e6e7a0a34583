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
//
// One holder (a caller: an API key, a user, a run) may hold at most half
// the budget at once, unless it holds nothing else: a reader downloading
// large plans slowly, again and again, cannot take the memory the runs'
// state pushes need. A request over its holder's share waits without
// holding up the requests of others behind it.
type Budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	held    map[string]int64 // by holder ("" is no one's: no share)
	waiters list.List        // of *budgetWaiter, first come first served
}

type budgetWaiter struct {
	who   string
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

// NewBudget returns a budget of size bytes (at least 1).
func NewBudget(size int64) *Budget { return &Budget{size: max(size, 1), held: map[string]int64{}} }

// Size returns the budget's size in bytes (0 for nil: no limit).
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Acquire is AcquireFor for no one in particular (no share applies).
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	return b.AcquireFor(ctx, "", n)
}

// AcquireFor waits until n bytes are free (n is cut to the budget's size)
// and within who's share, and takes them for who; release gives them back
// (call it once). It fails with Unavailable when ctx ends first.
func (b *Budget) AcquireFor(ctx context.Context, who string, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	n = min(n, b.size)
	w := &budgetWaiter{who: who, n: n, ready: make(chan struct{})}
	b.mu.Lock()
	e := b.waiters.PushBack(w)
	b.grant()
	b.mu.Unlock()
	select {
	case <-w.ready:
		return b.releaser(who, n), nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.give(who, n)
	default:
		b.waiters.Remove(e)
	}
	b.grant()
	b.mu.Unlock()
	return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "the server is busy with other large requests (--max-request-memory): try again")
}

func (b *Budget) releaser(who string, n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.give(who, n)
			b.grant()
			b.mu.Unlock()
		})
	}
}

// give returns n bytes who held.
func (b *Budget) give(who string, n int64) {
	b.used -= n
	if who != "" {
		if b.held[who] -= n; b.held[who] <= 0 {
			delete(b.held, who)
		}
	}
}

// overShare reports whether n more bytes would take who past its share:
// half the budget, unless who holds nothing yet.
func (b *Budget) overShare(who string, n int64) bool {
	h := b.held[who]
	return who != "" && h > 0 && h+n > b.size/2
}

// grant hands free bytes to the waiters, in order: one that does not fit
// in what is free stops the others behind it (first come first served);
// one over its holder's share is passed over, for now.
func (b *Budget) grant() {
	for e := b.waiters.Front(); e != nil; {
		w := e.Value.(*budgetWaiter)
		next := e.Next()
		switch {
		case b.overShare(w.who, w.n):
		case b.used+w.n > b.size:
			return
		default:
			b.used += w.n
			if w.who != "" {
				b.held[w.who] += w.n
			}
			b.waiters.Remove(e)
			close(w.ready)
		}
		e = next
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
