package engine

import (
	"fmt"
	"io"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// limits are the built-ins Gantry bounds (see limits.go), with how. The
// others allocate at most about what their arguments already take, and
// cannot make a value grow call after call.
var limits = map[string]limit{
	// Text: an upper bound of the result's length.
	"concat":                    {before: concatBound},
	"sprintf":                   {before: sprintfBound},
	"internal.template_string":  {before: textBound(1)},
	"replace":                   {before: replaceBound},
	"strings.replace_n":         {before: replaceNBound},
	"regex.replace":             {before: regexReplaceBound},
	"json.marshal":              {before: textBound(1)},
	"json.marshal_with_options": {before: marshalOptionsBound},
	"yaml.marshal":              {before: yamlMarshalBound},
	"base64.encode":             {before: stringBound(4, 3)},
	"base64url.encode":          {before: stringBound(4, 3)},
	"base64url.encode_no_pad":   {before: stringBound(4, 3)},
	"hex.encode":                {before: stringBound(2, 1)},
	"urlquery.encode":           {before: stringBound(3, 1)},
	"urlquery.encode_object":    {before: textBound(3)},
	"glob.quote_meta":           {before: stringBound(2, 1)},
	"upper":                     {before: stringBound(3, 2)},
	"lower":                     {before: stringBound(3, 2)},
	"time.format":               {before: textBound(3)},

	// Arrays of new elements: their number.
	"split":                            {before: splitBound},
	"strings.split_n":                  {before: splitBound},
	"indexof_n":                        {before: indexofNBound},
	"regex.split":                      {before: regexBound(false)},
	"regex.find_n":                     {before: regexBound(false)},
	"regex.find_all_string_submatch_n": {before: regexBound(true)},
	"numbers.range":                    {before: rangeBound},
	"numbers.range_step":               {before: rangeBound},
	"array.concat":                     {before: arrayConcatBound},
	"array.flatten":                    {before: flattenBound},
	"net.cidr_contains_matches":        {before: cidrMatchesBound},
	"urlquery.decode_object":           {before: decodeObjectBound},
	"json.patch":                       {before: patchBound},
	"walk":                             {each: walkCost},

	// Parsers: the values they build from text.
	"json.unmarshal":                        {before: jsonUnmarshalBound, each: numbersIn},
	"yaml.unmarshal":                        {before: yamlUnmarshalBound, each: resultWithin},
	"io.jwt.decode":                         {before: textBound(1 + termCost/2)},
	"graphql.parse":                         {before: textBound(2 * termCost)},
	"graphql.parse_query":                   {before: textBound(2 * termCost)},
	"graphql.parse_schema":                  {before: textBound(2 * termCost)},
	"graphql.parse_and_verify":              {before: textBound(2 * termCost)},
	"crypto.x509.parse_certificates":        {before: textBound(16)},
	"crypto.x509.parse_certificate_request": {before: textBound(16)},
	"crypto.x509.parse_keypair":             {before: textBound(16)},
	"crypto.x509.parse_rsa_private_key":     {before: textBound(16)},
	"crypto.parse_private_keys":             {before: textBound(16)},

	// Numbers: results checked like input numbers.
	"plus": {number: true}, "minus": {number: true}, "mul": {number: true}, "div": {number: true},
	"rem": {number: true}, "abs": {number: true}, "ceil": {number: true}, "floor": {number: true},
	"round": {number: true}, "sum": {number: true}, "product": {number: true, refuse: productRefused},
	"bits.and": {number: true}, "bits.or": {number: true}, "bits.xor": {number: true},
	"bits.negate": {number: true}, "bits.rsh": {number: true}, "bits.lsh": {number: true, refuse: lshRefused},
	"to_number": {number: true}, "units.parse": {number: true}, "units.parse_bytes": {number: true},
}

func strArg(args []*ast.Term, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	s, ok := args[i].Value.(ast.String)
	return string(s), ok
}

func intArg(args []*ast.Term, i int) (int64, bool) {
	if i >= len(args) {
		return 0, false
	}
	n, ok := args[i].Value.(ast.Number)
	if !ok {
		return 0, false
	}
	return n.Int64()
}

// elems returns the elements of an array or set (nil for anything else).
func elems(v ast.Value) []*ast.Term {
	switch x := v.(type) {
	case *ast.Array:
		out := make([]*ast.Term, 0, x.Len())
		x.Foreach(func(t *ast.Term) { out = append(out, t) })
		return out
	case ast.Set:
		return x.Slice()
	}
	return nil
}

// count is the number of elements of a collection, 1 for anything else.
func count(v ast.Value) int64 {
	switch x := v.(type) {
	case *ast.Array:
		return int64(x.Len())
	case ast.Set:
		return int64(x.Len())
	case ast.Object:
		return int64(x.Len())
	}
	return 1
}

// mulSat is a*b, or most+1 when over most (a, b >= 0).
func mulSat(a, b, most int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > (most+1)/b {
		return most + 1
	}
	return a * b
}

// textBound bounds a result of k bytes per byte of the arguments' text.
func textBound(k int64) func([]*ast.Term, int64) int64 {
	return func(args []*ast.Term, most int64) int64 {
		var n int64
		for _, a := range args {
			n += sizeOf(a.Value, most).text
			if n > most {
				break
			}
		}
		return mulSat(n, k, most) + termCost
	}
}

// stringBound bounds a string result of num/den bytes per byte of the
// first argument, a string.
func stringBound(num, den int64) func([]*ast.Term, int64) int64 {
	return func(args []*ast.Term, most int64) int64 {
		s, ok := strArg(args, 0)
		if !ok {
			return 0
		}
		if int64(len(s)) > most {
			return most + 1
		}
		return int64(len(s))*num/den + termCost + 4
	}
}

// concat(delimiter, collection)
func concatBound(args []*ast.Term, most int64) int64 {
	delim, ok := strArg(args, 0)
	if !ok || len(args) < 2 {
		return 0
	}
	es := elems(args[1].Value)
	n := mulSat(int64(len(es)), int64(len(delim)), most)
	for _, e := range es {
		s, ok := e.Value.(ast.String)
		if !ok {
			return 0
		}
		if n += int64(len(s)); n > most {
			break
		}
	}
	return n + termCost
}

// sprintf(format, values): every verb prints at most the longest value
// (an explicit argument index can print one many times) or a float of 400
// characters, padded to its width or precision (Go's fmt refuses more
// than 1e6; a width given as an argument, *, counts as that).
func sprintfBound(args []*ast.Term, most int64) int64 {
	format, ok := strArg(args, 0)
	if !ok || len(args) < 2 {
		return 0
	}
	var longest int64
	for _, e := range elems(args[1].Value) {
		longest = max(longest, sizeOf(e.Value, most).text)
	}
	verbs, padding := scanVerbs(format)
	return int64(len(format)) + mulSat(verbs, longest+400, most) + padding + termCost
}

// maxPadding is the largest width or precision Go's fmt accepts.
const maxPadding = 1_000_000

// scanVerbs counts the verbs of a format (%% too) and adds up their
// widths and precisions ("%10s", "%.5f", "%*d").
func scanVerbs(format string) (verbs, padding int64) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		verbs++
		var pad, num int64
		inIndex := false
		j := i + 1
	spec:
		for ; j < len(format); j++ {
			switch c := format[j]; {
			case c == '[':
				inIndex = true
			case c == ']':
				inIndex, num = false, 0
			case c >= '0' && c <= '9':
				if !inIndex {
					num = min(num*10+int64(c-'0'), maxPadding)
					pad = max(pad, num)
				}
			case c == '*':
				pad = maxPadding
			case c == '.':
				num = 0
			case strings.IndexByte("+-# ", c) < 0:
				break spec
			}
		}
		padding += pad
		i = j
	}
	return verbs, padding
}

// replace(s, old, new)
func replaceBound(args []*ast.Term, most int64) int64 {
	s, ok1 := strArg(args, 0)
	old, ok2 := strArg(args, 1)
	repl, ok3 := strArg(args, 2)
	if !ok1 || !ok2 || !ok3 {
		return 0
	}
	n := int64(len(s)) + termCost
	grow := int64(len(repl) - len(old))
	if grow <= 0 {
		return n
	}
	if n+mulSat(int64(len(s))+1, grow, most) <= most {
		return n + int64(len(s)+1)*grow
	}
	return n + mulSat(int64(strings.Count(s, old)), grow, most)
}

// strings.replace_n(patterns, s): the length of the result, counted by the
// same replacer without building it.
func replaceNBound(args []*ast.Term, most int64) int64 {
	obj, ok := args[0].Value.(ast.Object)
	s, ok2 := strArg(args, 1)
	if !ok || !ok2 {
		return 0
	}
	var keys []string
	longest := 0
	pairs := map[string]string{}
	bad := false
	obj.Foreach(func(k, v *ast.Term) {
		ks, ok1 := k.Value.(ast.String)
		vs, ok2 := v.Value.(ast.String)
		if !ok1 || !ok2 {
			bad = true
			return
		}
		keys = append(keys, string(ks))
		pairs[string(ks)] = string(vs)
		longest = max(longest, len(vs))
	})
	if bad {
		return 0
	}
	n := int64(len(s)) + termCost
	if n+mulSat(int64(len(s))+1, int64(longest), most) <= most {
		return n + int64(len(s)+1)*int64(longest)
	}
	sort.Strings(keys) // the order OPA gives them to the replacer
	oldnew := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		oldnew = append(oldnew, k, pairs[k])
	}
	var c counter
	_, _ = strings.NewReplacer(oldnew...).WriteString(&c, s)
	return c.n + termCost
}

// counter is a writer counting what it is given.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*counter)(nil)

// matches counts the matches of re in s (at most limit when >= 0) and
// their total length, without keeping them.
func matches(re *regexp.Regexp, s string, limit int) (n, total int64) {
	re.ReplaceAllStringFunc(s, func(m string) string {
		if limit < 0 || n < int64(limit) {
			n++
			total += int64(len(m))
		}
		return ""
	})
	return n, total
}

// regex.replace(s, pattern, value): each match becomes value, each $ of
// value at most the match; OPA also keeps the indexes of every match.
func regexReplaceBound(args []*ast.Term, most int64) int64 {
	s, ok1 := strArg(args, 0)
	pattern, ok2 := strArg(args, 1)
	value, ok3 := strArg(args, 2)
	if !ok1 || !ok2 || !ok3 {
		return 0
	}
	refs := int64(strings.Count(value, "$"))
	bound := func(n, total int64) int64 {
		b := int64(len(s)) + termCost
		b += mulSat(n, int64(len(value))+16*int64(2+2*refs), most)
		b += mulSat(refs, total, most)
		return b
	}
	if b := bound(int64(len(s))+1, int64(len(s))); b <= most {
		return b
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return 0
	}
	return bound(matches(re, s, -1))
}

// split(s, delimiter), strings.split_n(s, delimiter, n): the parts share
// the bytes of s.
func splitBound(args []*ast.Term, most int64) int64 {
	s, ok1 := strArg(args, 0)
	delim, ok2 := strArg(args, 1)
	if !ok1 || !ok2 {
		return 0
	}
	parts := int64(utf8.RuneCountInString(s)) + 1
	if len(delim) > 0 {
		parts = int64(len(s)/len(delim)) + 1
	}
	if mulSat(parts, termCost, most) > most {
		parts = int64(strings.Count(s, delim)) + 1
	}
	if n, ok := intArg(args, 2); ok && n >= 0 && n < parts {
		parts = n
	}
	return mulSat(parts, termCost, most) + termCost
}

// indexof_n(s, search)
func indexofNBound(args []*ast.Term, most int64) int64 {
	s, ok1 := strArg(args, 0)
	search, ok2 := strArg(args, 1)
	if !ok1 || !ok2 || search == "" {
		return 0
	}
	if mulSat(int64(len(s)/len(search)), termCost, most) <= most {
		return int64(len(s)/len(search))*termCost + termCost
	}
	return mulSat(int64(strings.Count(s, search)), termCost, most) + termCost
}

// regex.split(pattern, s), regex.find_n(pattern, s, n),
// regex.find_all_string_submatch_n(pattern, s, n): a term per match (per
// group with groups), sharing the bytes of s.
func regexBound(groups bool) func([]*ast.Term, int64) int64 {
	return func(args []*ast.Term, most int64) int64 {
		pattern, ok1 := strArg(args, 0)
		s, ok2 := strArg(args, 1)
		if !ok1 || !ok2 {
			return 0
		}
		limit := -1
		if n, ok := intArg(args, 2); ok && n >= 0 {
			limit = int(n)
		}
		per := int64(termCost)
		var re *regexp.Regexp
		if groups {
			var err error
			if re, err = regexp.Compile(pattern); err != nil {
				return 0
			}
			per = int64(re.NumSubexp()+2) * termCost
		}
		n := int64(len(s)) + 1
		if limit >= 0 {
			n = min(n, int64(limit))
		}
		if mulSat(n, per, most) > most {
			if re == nil {
				var err error
				if re, err = regexp.Compile(pattern); err != nil {
					return 0
				}
			}
			n, _ = matches(re, s, limit)
			n++ // regex.split: one part more than matches
		}
		return mulSat(n, per, most) + termCost
	}
}

// numbers.range(a, b), numbers.range_step(a, b, step)
func rangeBound(args []*ast.Term, most int64) int64 {
	if len(args) < 2 {
		return 0
	}
	a, ok1 := args[0].Value.(ast.Number)
	b, ok2 := args[1].Value.(ast.Number)
	if !ok1 || !ok2 {
		return 0
	}
	x, ok1 := new(big.Int).SetString(string(a), 10)
	y, ok2 := new(big.Int).SetString(string(b), 10)
	if !ok1 || !ok2 {
		return 0
	}
	n := new(big.Int).Abs(new(big.Int).Sub(y, x))
	if len(args) > 2 {
		s, ok := args[2].Value.(ast.Number)
		step, ok2 := new(big.Int).SetString(string(s), 10)
		if !ok || !ok2 || step.Sign() <= 0 {
			return 0
		}
		n.Quo(n, step)
	}
	n.Add(n, big.NewInt(1))
	if !n.IsInt64() {
		return most + 1
	}
	return mulSat(n.Int64(), termCost, most) + termCost
}

// array.concat(a, b)
func arrayConcatBound(args []*ast.Term, _ int64) int64 {
	if len(args) < 2 {
		return 0
	}
	a, ok1 := args[0].Value.(*ast.Array)
	b, ok2 := args[1].Value.(*ast.Array)
	if !ok1 || !ok2 {
		return 0
	}
	return int64(a.Len()+b.Len())*slotCost + termCost
}

// array.flatten(a): one level.
func flattenBound(args []*ast.Term, _ int64) int64 {
	a, ok := args[0].Value.(*ast.Array)
	if !ok {
		return 0
	}
	var n int64
	a.Foreach(func(t *ast.Term) {
		if inner, ok := t.Value.(*ast.Array); ok {
			n += int64(inner.Len())
		} else {
			n++
		}
	})
	return n*slotCost + termCost
}

// net.cidr_contains_matches(cidrs, cidrs_or_ips): at most a pair per
// element of one with each element of the other.
func cidrMatchesBound(args []*ast.Term, most int64) int64 {
	if len(args) < 2 {
		return 0
	}
	return mulSat(mulSat(count(args[0].Value), count(args[1].Value), most), 4*termCost, most) + termCost
}

// urlquery.decode_object(query): a key, an array and a value per pair.
func decodeObjectBound(args []*ast.Term, most int64) int64 {
	s, ok := strArg(args, 0)
	if !ok {
		return 0
	}
	pairs := int64(strings.Count(s, "&")) + 1
	return int64(len(s)) + mulSat(pairs, 3*termCost, most) + termCost
}

// json.patch(doc, patches): an add or replace adds its value; a copy or a
// move may double the document, and OPA renders the result anew.
func patchBound(args []*ast.Term, most int64) int64 {
	if len(args) < 2 {
		return 0
	}
	n := sizeOf(args[0].Value, most).bytes()
	for _, p := range elems(args[1].Value) {
		if n > most {
			return n
		}
		obj, ok := p.Value.(ast.Object)
		if !ok {
			return 0
		}
		op, _ := stringField(obj, "op")
		switch op {
		case "add", "replace":
			if v := obj.Get(ast.StringTerm("value")); v != nil {
				n += sizeOf(v.Value, most).bytes()
			}
		case "copy", "move":
			n = mulSat(n, 2, most)
		}
	}
	return n
}

// walk(x): each output is [path, value], the path a new array (none when
// the path is not used).
func walkCost(out *ast.Term, _ int64) (int64, error) {
	pair, ok := out.Value.(*ast.Array)
	if !ok || pair.Len() != 2 {
		return 0, nil
	}
	path, ok := pair.Elem(0).Value.(*ast.Array)
	if !ok || path.Len() == 0 {
		return 0, nil
	}
	return int64(path.Len())*slotCost + 2*termCost, nil
}

// json.unmarshal(s): every value but the first follows a comma, a colon
// or an opening bracket.
func jsonUnmarshalBound(args []*ast.Term, most int64) int64 {
	s, ok := strArg(args, 0)
	if !ok {
		return 0
	}
	terms := int64(1)
	for _, c := range []string{",", ":", "[", "{"} {
		terms += int64(strings.Count(s, c))
	}
	return int64(len(s)) + mulSat(terms, termCost, most)
}

// yaml.unmarshal(s): as JSON, counting line starts, dashes and colons
// too, twice over; aliases can repeat a node (the YAML reader refuses
// excessive aliasing): the result is measured too (resultWithin).
func yamlUnmarshalBound(args []*ast.Term, most int64) int64 {
	s, ok := strArg(args, 0)
	if !ok {
		return 0
	}
	terms := int64(1)
	for _, c := range []string{",", ":", "[", "{", "\n", "-"} {
		terms += int64(strings.Count(s, c))
	}
	return int64(len(s)) + mulSat(2*terms, termCost, most)
}

func numbersIn(out *ast.Term, _ int64) (int64, error) {
	return 0, checkNumbers(out.Value)
}

func resultWithin(out *ast.Term, most int64) (int64, error) {
	if sizeOf(out.Value, most).bytes() > most {
		return most + 1, nil
	}
	return 0, checkNumbers(out.Value)
}

// json.marshal_with_options(x, options): a line per term, indented by its
// depth (a tab unless options say), after the prefix.
func marshalOptionsBound(args []*ast.Term, most int64) int64 {
	if len(args) < 2 {
		return 0
	}
	sz := sizeOf(args[0].Value, most)
	indent, prefix := int64(1), int64(0)
	if opts, ok := args[1].Value.(ast.Object); ok {
		if s, ok := stringField(opts, "indent"); ok {
			indent = int64(len(s))
		}
		if s, ok := stringField(opts, "prefix"); ok {
			prefix = int64(len(s))
		}
	}
	line := prefix + mulSat(sz.depth, indent, most) + 2
	return sz.text + mulSat(sz.terms, line, most) + termCost
}

// stringField returns the string obj holds under key.
func stringField(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.StringTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// yaml.marshal(x): quoting can double a string; a line per term, indented
// by its depth.
func yamlMarshalBound(args []*ast.Term, most int64) int64 {
	sz := sizeOf(args[0].Value, most)
	return mulSat(sz.text, 2, most) + mulSat(sz.terms, mulSat(sz.depth, 4, most)+8, most) + termCost
}

// errNumberTooLarge refuses arguments that would make a number over
// maxNumberLen characters.
var errNumberTooLarge = fmt.Errorf("result would be a number over %d characters", maxNumberLen)

// product(collection): an integer product has at most one digit more than
// the digits of its factors other than 0, 1 and -1 together; far more
// than a number may have is refused before the work.
func productRefused(args []*ast.Term) error {
	var digits int
	for _, e := range elems(args[0].Value) {
		n, ok := e.Value.(ast.Number)
		if !ok {
			return nil
		}
		if s := strings.TrimPrefix(string(n), "-"); s != "0" && s != "1" {
			digits += len(s)
		}
	}
	if digits > 10*maxNumberLen {
		return errNumberTooLarge
	}
	return nil
}

// bits.lsh(x, n): refused before shifting when the result would be over
// the digits a number may have (about 3.3 bits a digit).
func lshRefused(args []*ast.Term) error {
	x, ok1 := args[0].Value.(ast.Number)
	n, ok2 := intArg(args, 1)
	if !ok1 || !ok2 {
		return nil
	}
	xi, ok := new(big.Int).SetString(string(x), 10)
	if ok && int64(xi.BitLen())+n > 4*maxNumberLen {
		return errNumberTooLarge
	}
	return nil
}
