package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseJSONValue converts a JSON document straight to an OPA value,
// without going through map[string]any: about twice as fast as decoding and
// then converting, and with less garbage. Object keys are interned, since
// plans repeat the same few hundred attribute names many times. Numbers
// keep their exact text; numbers too large to compute with (checkNumber)
// are refused. Of duplicate object keys the last value is kept, as
// encoding/json does. Nesting is limited to maxJSONDepth.
func parseJSONValue(b []byte) (ast.Value, error) {
	p := jsonParser{buf: b, keys: map[string]*ast.Term{}, vals: map[string]*ast.Term{}, nums: map[string]*ast.Term{}}
	p.skipSpace()
	t, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.buf) {
		return nil, p.errorf("unexpected data after the JSON document")
	}
	return t.Value, nil
}

type jsonParser struct {
	buf   []byte
	pos   int
	keys  map[string]*ast.Term // interned object keys
	vals  map[string]*ast.Term // interned short string values
	nums  map[string]*ast.Term // interned numbers
	pairs [][2]*ast.Term       // stack of object members being read
	elems []*ast.Term          // stack of array elements being read
	depth int                  // objects and arrays open
}

// maxJSONDepth is the deepest nesting of objects and arrays accepted, as
// encoding/json's.
const maxJSONDepth = 10000

// Numbers larger than this are refused: arithmetic and format_int on a
// number like 1e30000000 run far past any timeout.
const (
	maxNumberLen      = 100 // characters
	maxNumberExponent = 400 // absolute value of the exponent
)

// checkNumber refuses a number (JSON text) too large to compute with.
func checkNumber(s string) error {
	tooLarge := len(s) > maxNumberLen
	if !tooLarge {
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			exp := strings.TrimLeft(strings.TrimLeft(s[i+1:], "+-"), "0")
			n, err := strconv.Atoi(exp)
			tooLarge = exp != "" && (err != nil || n > maxNumberExponent)
		}
	}
	if !tooLarge {
		return nil
	}
	shown := s
	if len(shown) > 40 {
		shown = shown[:20] + "..." + shown[len(shown)-10:]
	}
	return fmt.Errorf("number %s too large (at most %d characters and an exponent within ±%d)", shown, maxNumberLen, maxNumberExponent)
}

// Short strings and numbers repeat a lot in plans ("create", "tcp", 443):
// their terms are shared (ground terms are never changed by the evaluator).
const (
	internMaxLen  = 32
	internMaxSize = 1 << 16
)

func (p *jsonParser) intern(table map[string]*ast.Term, b []byte, mk func(string) *ast.Term) *ast.Term {
	if len(b) > internMaxLen {
		return mk(string(b))
	}
	if t, ok := table[string(b)]; ok {
		return t
	}
	s := string(b)
	t := mk(s)
	if len(table) < internMaxSize {
		table[s] = t
	}
	return t
}

func numberTerm(s string) *ast.Term { return ast.NumberTerm(json.Number(s)) }

var (
	jsonTrue  = ast.BooleanTerm(true)
	jsonFalse = ast.BooleanTerm(false)
	jsonNull  = ast.NullTerm()
)

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (*ast.Term, error) {
	if p.pos >= len(p.buf) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.buf[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		raw, s, err := p.str()
		if err != nil {
			return nil, err
		}
		if raw != nil {
			return p.intern(p.vals, raw, ast.StringTerm), nil
		}
		return ast.StringTerm(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	for _, lit := range []struct {
		text string
		term *ast.Term
	}{{"true", jsonTrue}, {"false", jsonFalse}, {"null", jsonNull}} {
		if len(p.buf)-p.pos >= len(lit.text) && string(p.buf[p.pos:p.pos+len(lit.text)]) == lit.text {
			p.pos += len(lit.text)
			// Terms are shared; the evaluator never changes ground values.
			return lit.term, nil
		}
	}
	return nil, p.errorf("unexpected character %q", p.buf[p.pos])
}

// enter notes an object or array opening; the caller defers p.depth--.
func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.errorf("nesting deeper than %d levels", maxJSONDepth)
	}
	return nil
}

func (p *jsonParser) object() (*ast.Term, error) {
	defer func() { p.depth-- }()
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // {
	base := len(p.pairs)
	defer func() { p.pairs = p.pairs[:base] }()
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == '}' {
		p.pos++
		return ast.ObjectTerm(), nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
			return nil, p.errorf("expected a string key")
		}
		raw, k, err := p.str()
		if err != nil {
			return nil, err
		}
		var key *ast.Term
		if raw != nil {
			key = p.intern(p.keys, raw, ast.StringTerm)
		} else {
			key = ast.StringTerm(k)
		}
		p.skipSpace()
		if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.pairs = append(p.pairs, [2]*ast.Term{key, v})
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return nil, p.errorf("unexpected end of input in object")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return ast.NewTerm(ast.NewObject(dedupKeys(p.pairs[base:])...)), nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

// dedupKeys returns pairs with one member per key, the last value of a
// duplicate key in the place of its first occurrence (ast.NewObject would
// keep both, an object inconsistent with itself). Keys are strings.
func dedupKeys(pairs [][2]*ast.Term) [][2]*ast.Term {
	dup := false
	if len(pairs) <= 16 {
	small:
		for i := 1; i < len(pairs); i++ {
			for j := range i {
				if pairs[i][0] == pairs[j][0] || pairs[i][0].Value.(ast.String) == pairs[j][0].Value.(ast.String) {
					dup = true
					break small
				}
			}
		}
	} else {
		seen := make(map[ast.String]struct{}, len(pairs))
		for _, kv := range pairs {
			k := kv[0].Value.(ast.String)
			if _, ok := seen[k]; ok {
				dup = true
				break
			}
			seen[k] = struct{}{}
		}
	}
	if !dup {
		return pairs
	}
	at := make(map[ast.String]int, len(pairs))
	out := make([][2]*ast.Term, 0, len(pairs))
	for _, kv := range pairs {
		k := kv[0].Value.(ast.String)
		if i, ok := at[k]; ok {
			out[i][1] = kv[1]
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func (p *jsonParser) array() (*ast.Term, error) {
	defer func() { p.depth-- }()
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // [
	base := len(p.elems)
	defer func() { p.elems = p.elems[:base] }()
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == ']' {
		p.pos++
		return ast.ArrayTerm(), nil
	}
	for {
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return nil, p.errorf("unexpected end of input in array")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			elems := make([]*ast.Term, len(p.elems)-base) // the array keeps it
			copy(elems, p.elems[base:])
			return ast.NewTerm(ast.NewArray(elems...)), nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

// str reads a string; p.buf[p.pos] is the opening quote. A plain string
// (ASCII, no escapes) comes back as its bytes in p.buf, others decoded.
func (p *jsonParser) str() ([]byte, string, error) {
	start := p.pos
	p.pos++
	plain := true
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			if plain {
				return p.buf[start+1 : p.pos-1], "", nil
			}
			var s string // escapes or non-ASCII: let encoding/json do it right
			if err := json.Unmarshal(p.buf[start:p.pos], &s); err != nil {
				return nil, "", p.errorf("bad string: %v", err)
			}
			return nil, s, nil
		case c == '\\':
			plain = false
			p.pos += 2
			continue
		case c < 0x20:
			return nil, "", p.errorf("control character in string")
		case c >= utf8.RuneSelf:
			plain = false
		}
		p.pos++
	}
	return nil, "", p.errorf("unterminated string")
}

// number reads a JSON number, checking its grammar.
func (p *jsonParser) number() (*ast.Term, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.buf) && p.buf[p.pos] >= '0' && p.buf[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	hasExp := false
	if p.buf[p.pos] == '-' {
		p.pos++
	}
	intStart := p.pos
	if n := digits(); n == 0 || (n > 1 && p.buf[intStart] == '0') {
		return nil, p.errorf("bad number")
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if p.pos < len(p.buf) && (p.buf[p.pos] == 'e' || p.buf[p.pos] == 'E') {
		hasExp = true
		p.pos++
		if p.pos < len(p.buf) && (p.buf[p.pos] == '+' || p.buf[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if hasExp || p.pos-start > maxNumberLen {
		if err := checkNumber(string(p.buf[start:p.pos])); err != nil {
			return nil, fmt.Errorf("%w at offset %d", err, start)
		}
	}
	return p.intern(p.nums, p.buf[start:p.pos], numberTerm), nil
}
