package notify

import (
	"strings"

	"github.com/gantry-iac/gantry/internal/truncate"
)

// dbText makes s storable in a TEXT column of both databases: PostgreSQL
// refuses NUL bytes and invalid UTF-8, which SQLite accepts. It drops NULs,
// replaces invalid sequences with U+FFFD and, when max > 0, cuts the result
// to at most max bytes on a rune boundary. Every text the package writes to
// the database goes through it, so that a policy's or a receiver's text can
// neither lose an event's messages nor make an attempt unrecordable.
func dbText(s string, max int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if max > 0 {
		s = truncate.String(s, max)
	}
	return s
}

// Bounds of the texts written by the dispatcher.
const (
	maxError = 4096 // an attempt's or a delivery's error
	maxShort = 1024 // ids, events and other one-line fields of a message
)
