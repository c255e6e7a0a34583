package cli

import (
	"io"
	"os"
)

// isTerminalOut reports whether w is a terminal, where a run's log is
// shown rather than kept (a variable for tests).
var isTerminalOut = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// termSafe writes a run's log to a terminal with the control sequences
// that would act on the terminal shown instead: the output of a run's
// code must not set the window's title, write the clipboard (OSC 52), make
// hyperlinks, move the cursor, erase or overwrite lines (a bare \r) to
// forge what the log says. Plain SGR sequences (colours, bold:
// ESC [ digits ; m) pass; an escape otherwise shows as ^[ followed by the
// rest of its sequence as text, another control character in caret
// notation (^G), a C1 control (U+0080–U+009F) as ^[ and its 7-bit form, a
// carriage return not followed by a line feed as \r. Tabs and line feeds
// pass, and so does \r\n. What a chunk leaves undecided (an escape cut by
// its end) waits for the next; Flush writes it out.
type termSafe struct {
	w    io.Writer
	held []byte
	out  []byte
}

// maxSGR bounds an SGR sequence held back across writes.
const maxSGR = 64

func (t *termSafe) Write(p []byte) (int, error) {
	data := append(t.held, p...)
	t.held = nil
	t.out = t.out[:0]
	i := 0
	for i < len(data) {
		c := data[i]
		switch {
		case c == '\n' || c == '\t':
			t.out = append(t.out, c)
			i++
		case c == '\r':
			if i+1 == len(data) {
				t.held = append(t.held, c)
				i++
				continue
			}
			if data[i+1] != '\n' {
				t.out = append(t.out, `\r`...)
			}
			i++
		case c == 0x1b:
			n, done := sgrLen(data[i:])
			switch {
			case n > 0:
				t.out = append(t.out, data[i:i+n]...)
				i += n
			case !done:
				t.held = append(t.held, data[i:]...)
				i = len(data)
			default:
				t.out = append(t.out, '^', '[')
				i++
			}
		case c < 0x20:
			t.out = append(t.out, '^', c+0x40)
			i++
		case c == 0x7f:
			t.out = append(t.out, '^', '?')
			i++
		case c == 0xc2 && i+1 == len(data):
			t.held = append(t.held, c)
			i++
		case c == 0xc2 && data[i+1] >= 0x80 && data[i+1] <= 0x9f:
			t.out = append(t.out, '^', '[', data[i+1]-0x40)
			i += 2
		default:
			t.out = append(t.out, c)
			i++
		}
	}
	if _, err := t.w.Write(t.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes out what the last write left undecided, neutralized.
func (t *termSafe) Flush() error {
	held := t.held
	t.held = nil
	if len(held) == 0 {
		return nil
	}
	var out []byte
	for _, c := range held {
		switch {
		case c == '\r':
			out = append(out, `\r`...)
		case c == 0x1b:
			out = append(out, '^', '[')
		case c < 0x20:
			out = append(out, '^', c+0x40)
		default:
			out = append(out, c)
		}
	}
	_, err := t.w.Write(out)
	return err
}

// sgrLen returns the length of the SGR sequence b starts with (b[0] is
// ESC), or 0 with done true when it is none, or 0 with done false when b
// ends before that is known.
func sgrLen(b []byte) (n int, done bool) {
	if len(b) < 2 {
		return 0, false
	}
	if b[1] != '[' {
		return 0, true
	}
	for j := 2; j < len(b); j++ {
		switch c := b[j]; {
		case c == 'm':
			return j + 1, true
		case c >= '0' && c <= '9' || c == ';' || c == ':':
			if j >= maxSGR {
				return 0, true
			}
		default:
			return 0, true
		}
	}
	return 0, len(b) > maxSGR
}
