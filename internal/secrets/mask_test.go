package secrets

import (
	"encoding/json"
	"strings"
	"testing"
)

// A secret is masked in the forms JSON encoders write it in: Go's (HTML
// characters escaped), JavaScript's and Python's without ensure_ascii, and
// Python's default, which escapes every non-ASCII rune as \uxxxx.
func TestMaskerJSONForms(t *testing.T) {
	m := NewMasker([]string{`pa"ss\wörd`, "tok<en>&1", "key-😀-x", "ctl\x01\x7fend"})
	cases := []struct{ name, in string }{
		{"python ensure_ascii", `"pa\"ss\\w\u00f6rd"`},
		{"uppercase hex", `"pa\"ss\\w\u00F6rd"`},
		{"python without ensure_ascii, JavaScript", `"pa\"ss\\wörd"`},
		{"go escapes html", `"tok\u003cen\u003e\u00261"`},
		{"html kept", `"tok<en>&1"`},
		{"astral rune as a surrogate pair", `"key-\ud83d\ude00-x"`},
		{"astral rune kept", `"key-😀-x"`},
		{"control characters", `"ctl\u0001\u007fend"`},
		{"control characters, go", `"ctl\u0001` + "\x7f" + `end"`},
	}
	for _, c := range cases {
		if got := m.String("v=" + c.in + ";"); got != `v="*****";` {
			t.Errorf("%s: mask(%s) = %s", c.name, c.in, got)
		}
	}
	// What the encoders themselves write.
	for _, v := range []string{`pa"ss\wörd`, "tok<en>&1", "key-😀-x"} {
		j, _ := json.Marshal(v)
		if got := m.String(string(j)); got != `"*****"` {
			t.Errorf("mask(%s) = %s", j, got)
		}
	}
	// Plain ASCII values get no more patterns than before (raw, JSON, base64).
	if forms := jsonForms("plain-secret"); len(forms) != 2 || forms[0] != forms[1] {
		t.Errorf("jsonForms of a plain value = %q", forms)
	}
}

// Masking a value that ends with a line break (a file's content) keeps the
// line break: what is printed after it stays on its own line.
func TestMaskerKeepsTrailingNewline(t *testing.T) {
	m := NewMasker([]string{"file-secret-content\n", "crlf-secret\r\n"})
	for in, want := range map[string]string{
		"file-secret-content\n[gantry] $ tofu plan\n":                   "*****\n[gantry] $ tofu plan\n",
		"file-secret-content[gantry]":                                   "*****[gantry]",
		"crlf-secret\r\nnext":                                           "*****\r\nnext",
		"ZmlsZS1zZWNyZXQtY29udGVudAo= and ZmlsZS1zZWNyZXQtY29udGVudA==": "***** and *****",
	} {
		if got := m.String(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
	if got := NewMasker([]string{"abc\n"}).String("abc\n"); got != "abc\n" {
		t.Errorf("a value under 4 characters without its newline was masked: %q", got)
	}
	if !strings.Contains(NewMasker([]string{"\n\n\n\n"}).String("a\n\n\n\nb"), "\n") {
		t.Error("a value of line breaks only masked line breaks")
	}
}

// SafeCut moves a cut that falls inside a secret (in any masked form) to
// before it, so that the two pieces masked apart leak nothing.
func TestMaskerSafeCut(t *testing.T) {
	const secret = "hunter2-Sup3r-secret"
	m := NewMasker([]string{secret})
	line := []byte("aaaa" + secret + "bbbb" + secret + "cc")
	for cut := 0; cut <= len(line); cut++ {
		n := m.SafeCut(line, cut)
		if n > cut {
			t.Fatalf("SafeCut(%d) = %d, after the cut", cut, n)
		}
		got := m.String(string(line[:n])) + m.String(string(line[n:]))
		if want := m.String(string(line)); got != want {
			t.Errorf("cut at %d moved to %d: pieces masked apart = %q, want %q", cut, n, got, want)
		}
	}
	if n := m.SafeCut(line, 2); n != 2 {
		t.Errorf("SafeCut outside any secret = %d, want 2", n)
	}
	if n := (*Masker)(nil).SafeCut(line, 7); n != 7 {
		t.Errorf("nil masker SafeCut = %d, want 7", n)
	}
}

// A value that overlaps itself, printed over and over ("abababab" x N), is
// found by a plain search at every other byte, but masked only where the
// masking's own matches fall. SafeCut cuts at those, and close to the cut
// asked for: a cut pushed far back (or given up on) left pieces of the
// value unmasked in long log lines.
func TestMaskerSafeCutSelfOverlapping(t *testing.T) {
	for _, secret := range []string{"abababab", "abcab", "aaaa"} {
		m := NewMasker([]string{secret})
		for _, prefix := range []string{"", "a", "ab", "xyz"} {
			line := []byte(prefix + strings.Repeat(secret, 50) + "tail")
			want := m.String(string(line))
			for cut := 0; cut <= len(line); cut++ {
				n := m.SafeCut(line, cut)
				if n > cut || n < cut-m.MaxLen()+1 {
					t.Fatalf("%q%q: SafeCut(%d) = %d, want within %d bytes before the cut", prefix, secret, cut, n, m.MaxLen()-1)
				}
				if got := m.String(string(line[:n])) + m.String(string(line[n:])); got != want {
					t.Fatalf("%q%q: cut at %d moved to %d: pieces masked apart = %q, want %q", prefix, secret, cut, n, got, want)
				}
			}
		}
	}
}
