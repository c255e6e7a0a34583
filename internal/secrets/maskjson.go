package secrets

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// What masks a secret variable or file, and masking inside JSON documents:
// the run's log, its plan JSON and the stack's outputs hide the same
// values the same way.

// VariableForms are the values that mask a secret variable: the value and,
// for a multi-line value (a PEM key, JSON credentials), each of its lines
// long enough not to mask ordinary text (a tool may print such a secret a
// line at a time, and a log is sent in pieces cut at newlines).
func VariableForms(value string) []string {
	out := []string{value}
	if strings.Contains(value, "\n") {
		out = append(out, lines(value)...)
	}
	return out
}

// FileForms are the values that mask a secret file: its whole content, the
// content without surrounding space, and each of its lines long enough not
// to mask ordinary text.
func FileForms(content []byte) []string {
	s := string(content)
	return append([]string{s, strings.TrimSpace(s)}, lines(s)...)
}

// lines are the lines of s of 8 characters or more, surrounding space
// trimmed.
func lines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 8 {
			out = append(out, line)
		}
	}
	return out
}

// JSON masks the secret values in a JSON document (a plan JSON, which holds
// the values of input variables, TF_VAR_ secrets among them, and of
// resource attributes): see Value. The document stays valid JSON; one
// without a secret in it (in any form the masker knows) is returned as it
// is.
func (m *Masker) JSON(data []byte) ([]byte, error) {
	if m == nil || m.MaxLen() == 0 || m.String(string(data)) == string(data) {
		return data, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = m.Value(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Value masks a decoded JSON value (numbers decoded as json.Number): every
// string, and every object key, is masked, and a number that is a secret
// becomes the string Mask. Arrays are masked in place.
func (m *Masker) Value(v any) any {
	if m == nil {
		return v
	}
	switch x := v.(type) {
	case string:
		return m.String(x)
	case json.Number:
		if s := m.String(string(x)); s != string(x) {
			return s
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			mk := m.String(k) // a secret can be a key too (for_each, tags)
			if _, taken := out[mk]; taken && mk != k {
				mk += "#" + strconv.Itoa(len(out)) // two keys masked alike stay apart
			}
			out[mk] = m.Value(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = m.Value(e)
		}
		return x
	}
	return v
}

// In tells whether b holds a secret, in any form the masker knows.
func (m *Masker) In(b []byte) bool {
	if m == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, f := range m.forms {
		if bytes.Contains(b, f) {
			return true
		}
	}
	return false
}

// InReader tells whether what r holds has a secret in it, in any form
// the masker knows, reading it a piece at a time.
func (m *Masker) InReader(r io.Reader) (bool, error) {
	overlap := max(m.MaxLen()-1, 0)
	buf := make([]byte, 0, 1<<20+overlap)
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if m.In(buf) {
			return true, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Keep the end: a secret may go on in the next piece.
		keep := min(overlap, len(buf))
		buf = append(buf[:0], buf[len(buf)-keep:]...)
	}
}

// JSONStream copies the JSON document in r to w with its secret values
// masked as JSON masks them (strings, object keys, numbers), one value at
// a time: it holds the longest string or key of the document, never the
// document. Object members keep their order.
func (m *Masker) JSONStream(w io.Writer, r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	out := bufio.NewWriterSize(w, 64<<10)
	var scratch bytes.Buffer
	enc := json.NewEncoder(&scratch)
	enc.SetEscapeHTML(false)
	str := func(s string) error {
		scratch.Reset()
		if err := enc.Encode(s); err != nil {
			return err
		}
		_, err := out.Write(bytes.TrimSuffix(scratch.Bytes(), []byte("\n")))
		return err
	}
	type level struct {
		object bool
		n      int             // members or elements written
		value  bool            // an object's next token is a member's value
		keys   map[string]bool // keys written that hold the mask, to keep masked keys apart
	}
	var stack []*level
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return errors.New("more than one JSON value")
			}
		} else if top := stack[len(stack)-1]; top.object && !top.value {
			// A member's key.
			if top.n++; top.n > 1 {
				out.WriteByte(',')
			}
			k := tok.(string)
			mk := m.String(k) // a secret can be a key too (for_each, tags)
			if top.keys[mk] {
				mk += "#" + strconv.Itoa(top.n-1) // two keys masked alike stay apart
			}
			if strings.Contains(mk, Mask) {
				if top.keys == nil {
					top.keys = map[string]bool{}
				}
				top.keys[mk] = true
			}
			if err := str(mk); err != nil {
				return err
			}
			out.WriteByte(':')
			top.value = true
			continue
		} else if top.object {
			top.value = false
		} else if top.n++; top.n > 1 {
			out.WriteByte(',')
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, &level{object: v == '{'})
		case string:
			err = str(m.String(v))
		case json.Number:
			if s := m.String(string(v)); s != string(v) {
				err = str(s)
			} else {
				_, err = out.WriteString(string(v))
			}
		case bool:
			_, err = out.WriteString(strconv.FormatBool(v))
		case nil:
			_, err = out.WriteString("null")
		}
		if err != nil {
			return err
		}
	}
	if values == 0 || len(stack) > 0 {
		return io.ErrUnexpectedEOF
	}
	return out.Flush()
}
