// Package id makes prefixed, time-sortable identifiers (`run-01J...`) and
// random secrets.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Crockford's base32 alphabet keeps ids sortable as strings.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	mu      sync.Mutex
	lastMS  uint64
	lastSeq uint64
	lastHi  [2]byte
)

// New returns prefix + "-" + 26 characters: 48 bits of milliseconds then 80
// bits that are random, or incremented within one millisecond so that ids
// made by one process never go backwards.
func New(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	var r [10]byte
	_, _ = rand.Read(r[:])
	mu.Lock()
	if ms <= lastMS {
		ms = lastMS
		lastSeq++
	} else {
		lastMS = ms
		lastSeq = binary.BigEndian.Uint64(r[2:]) >> 1
		lastHi = [2]byte{r[0], r[1]}
	}
	seq, hi := lastSeq, lastHi
	mu.Unlock()
	binary.BigEndian.PutUint16(b[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(ms))
	b[6], b[7] = hi[0], hi[1]
	binary.BigEndian.PutUint64(b[8:], seq)
	return prefix + "-" + encode(b)
}

// Before returns the smallest id of prefix that New could make at t: every
// id New made before t (by a clock that agrees) sorts below it, as a
// string.
func Before(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(max(t.UnixMilli(), 0))
	binary.BigEndian.PutUint16(b[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(ms))
	return prefix + "-" + encode(b)
}

func encode(b [16]byte) string {
	// 128 bits -> 26 base32 characters (130 bits, top 2 bits zero).
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// Secret returns n random bytes encoded in lower-case base32 (no padding).
func Secret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	out := make([]byte, 0, n*8/5+1)
	var acc uint32
	bits := 0
	const lower = "0123456789abcdefghjkmnpqrstvwxyz"
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			out = append(out, lower[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out = append(out, lower[(acc<<(5-bits))&31])
	}
	return string(out)
}

var slugRE = MustPattern(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, 1, 63)

// ValidSlug reports whether s is a valid slug id: lower-case letters, digits
// and dashes, 1 to 63 characters, not starting or ending with a dash.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }
