package worker

import "bytes"

// outputMark goes before a line of the run's output that would read as
// one of Gantry's own: one that begins with "[gantry]" after blanks,
// control characters and terminal escape sequences (which a terminal
// does not show). Gantry's own lines (logStream.Printf, the server's
// notes) start with "[gantry]" at the very start of a line; output can
// then never pass for them, in the stored log or on a terminal.
const outputMark = "[output] "

// ownPrefix is how Gantry's own lines begin.
var ownPrefix = []byte("[gantry]")

// maxHead bounds the beginning of a line held while it is not known
// whether it begins like one of Gantry's lines: past it, the line is
// marked.
const maxHead = 4 << 10

// lineMarker marks the lines of a run's output that begin like Gantry's
// own (see outputMark). The beginning of a line is held until it is known.
type lineMarker struct {
	mid  bool   // inside a line whose beginning was decided
	head []byte // the beginning of a line, not decided yet
}

// add appends to out what of p can be written now, marked where needed.
func (m *lineMarker) add(out, p []byte) []byte {
	for len(p) > 0 {
		if m.mid {
			i := bytes.IndexByte(p, '\n')
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
		forged, known := ownLike(m.head)
		if !known && len(m.head) <= maxHead {
			continue // p is empty: the line has not ended
		}
		out = m.emit(out, forged || !known)
	}
	return out
}

// flush appends the beginning of a line held, marked (it is not known
// how the line goes on; Gantry's own line or the end of the output comes
// next).
func (m *lineMarker) flush(out []byte) []byte {
	if len(m.head) == 0 {
		return out
	}
	return m.emit(out, true)
}

// emit appends the held beginning of a line, marked or not.
func (m *lineMarker) emit(out []byte, mark bool) []byte {
	if mark {
		out = append(out, outputMark...)
	}
	out = append(out, m.head...)
	m.mid = m.head[len(m.head)-1] != '\n'
	m.head = m.head[:0]
	return out
}

// reset notes that a line of Gantry's own was written: output starts a
// new line.
func (m *lineMarker) reset() { m.mid, m.head = false, m.head[:0] }

// ownLike reports whether the beginning of a line b reads as one of
// Gantry's own lines (forged), once that is known: after blanks, control
// characters other than a line feed, escape sequences and C1 controls,
// the first visible characters are "[gantry]", or are not.
func ownLike(b []byte) (forged, known bool) {
	i := 0
	for i < len(b) {
		c := b[i]
		switch {
		case c == 0x1b:
			n, ok := escapeLen(b[i:])
			if !ok {
				return false, false
			}
			i += n
		case c == 0xc2 && i+1 == len(b):
			return false, false
		case c == 0xc2 && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			// A C1 control: as ESC and its 7-bit form (U+009B is CSI).
			n, ok := escapeLen(append([]byte{0x1b, b[i+1] - 0x40}, b[i+2:]...))
			if !ok {
				return false, false
			}
			i += n
		case c == ' ' || c < 0x20 && c != '\n' || c == 0x7f:
			i++
		default:
			rest := b[i:]
			if bytes.HasPrefix(rest, ownPrefix) {
				return true, true
			}
			if bytes.HasPrefix(ownPrefix, rest) {
				return false, false
			}
			return false, true
		}
	}
	return false, false
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
