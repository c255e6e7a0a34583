package db

import (
	"strconv"
	"strings"
	"time"
)

// Nanos returns t as nanoseconds since the Unix epoch, or 0 for the zero
// time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos returns the UTC time n nanoseconds after the Unix epoch, or the
// zero time for 0.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// normalizeArgs returns args with every nil []byte replaced by []byte{},
// copying args only if it has one.
func normalizeArgs(args []any) []any {
	copied := false
	for i, a := range args {
		if b, ok := a.([]byte); ok && b == nil {
			if !copied {
				args, copied = append([]any(nil), args...), true
			}
			args[i] = []byte{}
		}
	}
	return args
}

// InList returns the placeholders of an IN list of values, numbered from
// $k+1 ("$1, $2, $3" for k = 0), and the values as arguments: the query's
// other arguments, if any, come first and number k.
func InList(values []string, k int) (string, []any) {
	var b strings.Builder
	args := make([]any, len(values))
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$")
		b.WriteString(strconv.Itoa(k + i + 1))
		args[i] = v
	}
	return b.String(), args
}
