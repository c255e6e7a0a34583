// Package errs defines the error kinds that cross domain boundaries. Edges
// (HTTP, CLI) map a kind to a status or exit code in one place; nobody
// compares error strings.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edges.
type Kind string

const (
	NotFound        Kind = "not_found"
	Conflict        Kind = "conflict"
	Invalid         Kind = "invalid"
	Unauthenticated Kind = "unauthenticated"
	Forbidden       Kind = "forbidden"
	Locked          Kind = "locked"
	TooLarge        Kind = "too_large"
	Unavailable     Kind = "unavailable"
	TooManyRequests Kind = "too_many_requests"
	Internal        Kind = "internal"
)

// Error is an error with a kind and a message safe to show to clients.
type Error struct {
	Kind    Kind
	Message string
	Err     error // cause, logged, never shown
	Detail  any   // optional structured detail shown to clients (e.g. lock info)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E makes an error of a kind with a formatted public message.
func E(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap makes an error of a kind around a cause; the cause is not shown to clients.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of err, Internal when it has none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err has kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Public returns the message safe to show to a client.
func Public(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// DetailOf returns the structured detail of err, if any.
func DetailOf(err error) any {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return nil
}
