package worker

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// outputMark goes before a line of the run's output that would read as
// one of Gantry's own: one that begins with "[gantry]" after blanks,
// control characters, terminal escape sequences and invisible Unicode
// characters (which a terminal does not show). A carriage return starts
// the line over (what follows it is drawn over what came before): the
// mark goes after the last one before "[gantry]", at the start of what
// is shown. Gantry's own lines (logStream.Printf, the server's notes)
// start with "[gantry]" at the very start of a line; output can then
// never pass for them, in the stored log or on a terminal.
const outputMark = "[output] "

// ownPrefix is how Gantry's own lines begin.
var ownPrefix = []byte("[gantry]")

// maxHead bounds the beginning of a line held while it is not known
// whether it begins like one of Gantry's lines: past it, the line is
// marked.
const maxHead = 4 << 10

// lineMarker marks the lines of a run's output that begin like Gantry's
// own (see outputMark). The beginning of a line (or of what follows a
// carriage return) is held until it is known.
type lineMarker struct {
	mid  bool   // inside a line whose beginning was decided
	head []byte // the beginning of a line, not decided yet
}

// add appends to out what of p can be written now, marked where needed.
func (m *lineMarker) add(out, p []byte) []byte {
	for len(p) > 0 {
		if m.mid {
			i := bytes.IndexAny(p, "\r\n")
			if i < 0 {
				return append(out, p...)
			}
			out = append(out, p[:i+1]...)
			p = p[i+1:]
			m.mid = false
			continue
		}
		i := bytes.IndexByte(p, '\n')
		take := len(p)
		if i >= 0 {
			take = i + 1
		}
		m.head = append(m.head, p[:take]...)
		p = p[take:]
		out = m.decide(out, false)
	}
	return out
}

// decide appends to out the held beginnings whose marks are known
// (all of them when final), marked where needed; what follows a carriage
// return in a line decided is held again as a beginning.
func (m *lineMarker) decide(out []byte, final bool) []byte {
	for len(m.head) > 0 {
		forged, known, at, rest := ownLike(m.head)
		if !known {
			if !final && len(m.head) <= maxHead {
				return out
			}
			// Marked unless nothing follows the last carriage
			// return: the line may go on like Gantry's.
			forged, rest = at < len(m.head), len(m.head)
		}
		out = append(out, m.head[:at]...)
		if forged {
			out = append(out, outputMark...)
		}
		out = append(out, m.head[at:rest]...)
		// The rest of the line as in add (m.mid), up to a carriage
		// return or a line feed: what follows is a beginning again.
		i := bytes.IndexAny(m.head[rest:], "\r\n")
		if i < 0 {
			out = append(out, m.head[rest:]...)
			m.mid, m.head = rest < len(m.head) || at < rest, m.head[:0]
			return out
		}
		out = append(out, m.head[rest:rest+i+1]...)
		m.head = m.head[:copy(m.head, m.head[rest+i+1:])]
		m.mid = false
	}
	return out
}

// flush appends the beginning of a line held, marked (it is not known
// how the line goes on; Gantry's own line or the end of the output comes
// next).
func (m *lineMarker) flush(out []byte) []byte {
	return m.decide(out, true)
}

// reset notes that a line of Gantry's own was written: output starts a
// new line.
func (m *lineMarker) reset() { m.mid, m.head = false, m.head[:0] }

// ownLike reports whether the beginning of a line b reads as one of
// Gantry's own lines (forged), once that is known: after blanks, control
// characters other than a line feed, escape sequences, C1 controls and
// invisible characters (invisible), the first visible characters are
// "[gantry]", or are not. at is where what is shown starts: after the
// last carriage return skipped (0 if none). rest is where the line goes
// on once known: after "[gantry]", or at its first visible character.
func ownLike(b []byte) (forged, known bool, at, rest int) {
	i := 0
	for i < len(b) {
		c := b[i]
		switch {
		case c == 0x1b:
			n, ok := escapeLen(b[i:])
			if !ok {
				return false, false, at, 0
			}
			i += n
		case c == 0xc2 && i+1 == len(b):
			return false, false, at, 0
		case c == 0xc2 && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			// A C1 control: as ESC and its 7-bit form (U+009B is CSI).
			n, ok := escapeLen(append([]byte{0x1b, b[i+1] - 0x40}, b[i+2:]...))
			if !ok {
				return false, false, at, 0
			}
			i += n
		case c == '\r':
			i++
			at = i
		case c == ' ' || c < 0x20 && c != '\n' || c == 0x7f:
			i++
		case c >= utf8.RuneSelf && !utf8.FullRune(b[i:]):
			return false, false, at, 0
		case c >= utf8.RuneSelf && invisible(b[i:]) > 0:
			i += invisible(b[i:])
		default:
			rest := b[i:]
			if bytes.HasPrefix(rest, ownPrefix) {
				return true, true, at, i + len(ownPrefix)
			}
			if bytes.HasPrefix(ownPrefix, rest) {
				return false, false, at, 0
			}
			return false, true, at, i
		}
	}
	return false, false, at, 0
}

// invisible returns the length of the UTF-8 character b starts with if a
// terminal shows nothing of it but perhaps a blank: a space other than
// ASCII's (U+00A0, U+3000...), a format character (zero-width ones
// U+200B-U+200D and U+2060, U+FEFF, the soft hyphen, bidirectional marks
// and controls U+200E, U+200F, U+202A-U+202E, U+2066-U+2069...), a
// variation selector or another default-ignorable code point; else 0.
func invisible(b []byte) int {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		return 0
	}
	// U+2800, the blank braille pattern, shows as a space in most fonts.
	if r == '\u2800' || unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
		return n
	}
	return 0
}

// escapeLen returns the length of the escape sequence b starts with (b[0]
// is ESC), ok false when b ends inside it: CSI (ESC [ ... final byte), OSC
// and other strings (ESC ] P X ^ _ ... ended by BEL or ESC \), or an ESC
// and one byte. A line feed ends any of them.
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '\n':
		return 1, true
	case '[':
		for j := 2; j < len(b); j++ {
			switch c := b[j]; {
			case c >= 0x40 && c <= 0x7e:
				return j + 1, true
			case c < 0x20 || c > 0x7e:
				return j, true
			}
		}
		return 0, false
	case ']', 'P', 'X', '^', '_':
		for j := 2; j < len(b); j++ {
			switch b[j] {
			case 0x07:
				return j + 1, true
			case '\n':
				return j, true
			case 0x1b:
				if j+1 == len(b) {
					return 0, false
				}
				if b[j+1] == '\\' {
					return j + 2, true
				}
			}
		}
		return 0, false
	}
	return 2, true
}
