package audit

import (
	"context"
	"fmt"
)

// Verification is the result of [Service.Verify].
type Verification struct {
	OK       bool
	Checked  int64  // events checked
	HeadSeq  int64  // the last seq handed out
	HeadHash string // the hash of the last event, as the head row has it
	BrokenAt int64  // seq of the first broken link; 0 when OK
	Reason   string // why it is broken; "" when OK
}

// Verify recomputes the chain from the first event to the head and
// returns the first broken link: a missing seq (a deleted event), a
// prev_hash that is not the previous event's hash (events deleted,
// reordered or rewritten before it), a hash that does not match the
// event's fields (an edited event), or a head that does not match the last
// event (events deleted at the end). Events recorded while it runs, after
// the head it read first, are not checked.
//
// Anchoring HeadHash outside the database (a forwarding endpoint, a
// ticket, a log) also catches a chain rewritten from some point on with
// recomputed hashes, which Verify alone cannot.
func (s *Service) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	if err := s.db.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&v.HeadSeq, &v.HeadHash); err != nil {
		return v, fmt.Errorf("audit: read head: %w", err)
	}
	want, prev := int64(1), ZeroHash
	broken := func(seq int64, format string, args ...any) {
		v.BrokenAt, v.Reason = seq, fmt.Sprintf(format, args...)
	}
	err := s.Each(ctx, Filter{}, func(ev Event) error {
		if ev.Seq > v.HeadSeq {
			// The head was rewound: events past it are not covered by it.
			broken(ev.Seq, "events beyond the head: event %d exists but the head is at %d (the head was rewound)", ev.Seq, v.HeadSeq)
			return errStop
		}
		switch {
		case ev.Seq != want:
			broken(want, "gap: event %d is missing (the next event is %d)", want, ev.Seq)
		case ev.PrevHash != prev:
			broken(ev.Seq, "prev_hash mismatch: event %d says the previous hash is %s, event %d has %s", ev.Seq, short(ev.PrevHash), ev.Seq-1, short(prev))
		case ev.ComputeHash() != ev.Hash:
			broken(ev.Seq, "hash mismatch: event %d's fields do not hash to its stored hash %s (the event was edited)", ev.Seq, short(ev.Hash))
		default:
			v.Checked++
			want, prev = ev.Seq+1, ev.Hash
			return nil
		}
		return errStop
	})
	if err != nil && err != errStop {
		return v, err
	}
	if v.Reason == "" {
		switch {
		case want-1 < v.HeadSeq:
			broken(want, "gap: events %d to %d are missing (the head is at %d)", want, v.HeadSeq, v.HeadSeq)
		case prev != v.HeadHash:
			broken(v.HeadSeq, "head mismatch: the head's hash %s is not event %d's hash %s", short(v.HeadHash), v.HeadSeq, short(prev))
		}
	}
	v.OK = v.Reason == ""
	return v, nil
}

type stopError struct{}

func (stopError) Error() string { return "stop" }

var errStop error = stopError{}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
