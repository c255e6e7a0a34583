package audit

import (
	"context"
	"slices"
	"sync"
)

// Request holds the facts of the request an event happens in.
type Request struct {
	Actor     string   // see auth.Principal.String; empty until authenticated
	Roles     []string // the actor's roles: "admin", then role@space
	SourceIP  string
	RequestID string
}

// reqState is the mutable request state ctx carries: the API sets the
// request facts before authentication and the actor after it, and Record
// notes that the request has its own event.
type reqState struct {
	mu       sync.Mutex
	req      Request
	recorded bool
	authFail string // why the credentials presented did not work
	// throttled: the request was refused (429) for its source's failures
	// before or instead of being told authFail
	throttled bool
	// noteSpace and note are what the handler said about the request's
	// subject for the API's generic event ([Note]).
	noteSpace string
	note      map[string]string
}

type ctxKey struct{}

// WithRequest returns ctx carrying the facts of req for [Service.Record].
// If ctx already carries request facts (the API middleware puts them there
// before authentication), the non-empty fields of req update them in place
// and ctx is returned: the request keeps one state, so that what Record
// notes there ([Recorded]) is seen by the middleware.
func WithRequest(ctx context.Context, req Request) context.Context {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		if req.Actor != "" {
			st.req.Actor = req.Actor
		}
		if req.Roles != nil {
			st.req.Roles = slices.Clone(req.Roles)
		}
		if req.SourceIP != "" {
			st.req.SourceIP = req.SourceIP
		}
		if req.RequestID != "" {
			st.req.RequestID = req.RequestID
		}
		return ctx
	}
	req.Roles = slices.Clone(req.Roles)
	return context.WithValue(ctx, ctxKey{}, &reqState{req: req})
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(ctxKey{}).(*reqState)
	return st
}

// RequestFrom returns the request facts of ctx.
func RequestFrom(ctx context.Context) (Request, bool) {
	if st := stateFrom(ctx); st != nil {
		return st.request(), true
	}
	return Request{}, false
}

// SetActor records who the request of ctx turned out to be, once
// authenticated: WithRequest(ctx, Request{Actor: actor, Roles: roles}).
func SetActor(ctx context.Context, actor string, roles []string) {
	if roles == nil {
		roles = []string{}
	}
	WithRequest(ctx, Request{Actor: actor, Roles: roles})
}

// SetAuthFailure notes that the credentials the request of ctx presented
// did not work, and why (a public message).
func SetAuthFailure(ctx context.Context, reason string) {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		st.authFail = reason
		st.mu.Unlock()
	}
}

// SetAuthThrottled notes that the request of ctx, whose credentials did
// not work (SetAuthFailure), was refused for its source's earlier
// failures (429) rather than told why.
func SetAuthThrottled(ctx context.Context) {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		st.throttled = true
		st.mu.Unlock()
	}
}

// AuthThrottled reports whether SetAuthThrottled was called for the
// request of ctx.
func AuthThrottled(ctx context.Context) bool {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.throttled
	}
	return false
}

// AuthFailure returns why the request's credentials did not work, if they
// did not.
func AuthFailure(ctx context.Context) (string, bool) {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.authFail, st.authFail != ""
	}
	return "", false
}

// Recorded reports whether an event of the request of ctx has been
// committed by [Service.Record].
func Recorded(ctx context.Context) bool {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.recorded
	}
	return false
}

// Skip marks the request of ctx as one that makes no event of its own: a
// run's own traffic with its stack's state backend (reads, lock, unlock),
// which belongs to the run (its trigger and transitions are recorded, and
// every state version names the run that wrote it).
func Skip(ctx context.Context) {
	if st := stateFrom(ctx); st != nil {
		st.markRecorded()
	}
}

func (st *reqState) request() Request {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.req
	r.Roles = slices.Clone(r.Roles)
	return r
}

func (st *reqState) markRecorded() {
	st.mu.Lock()
	st.recorded = true
	st.mu.Unlock()
}

// Note tells the generic event the API writes for the request of ctx (a
// refused or failed change; a change that commits records its own) what
// its path does not say: the space of the subject, when known, and values
// of the request body that name what was touched (the stack of an
// attachment). Never a secret: notes are recorded as given. A later note
// replaces an earlier one.
func Note(ctx context.Context, space string, values map[string]string) {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		st.noteSpace, st.note = space, values
		st.mu.Unlock()
	}
}

// Noted returns what [Note] said for the request of ctx.
func Noted(ctx context.Context) (space string, values map[string]string) {
	if st := stateFrom(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.noteSpace, st.note
	}
	return "", nil
}
