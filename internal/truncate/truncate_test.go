package truncate_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/truncate"
)

func TestString(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"abc", 0, ""},
		{"abc", -1, ""},
		{"aé", 2, "a"},   // é is 2 bytes: not cut in two
		{"aé", 3, "aé"},  //
		{"a€b", 3, "a"},  // € is 3 bytes
		{"a€b", 4, "a€"}, //
		{"😀😀", 5, "😀"},   // 4-byte characters
		{"😀😀", 4, "😀"},
		{"é", 1, ""},
		{"a\x80\x80\x80\x80\x80", 3, "a\x80\x80"}, // not UTF-8: cut as bytes
	}
	for _, tt := range tests {
		if got := truncate.String(tt.s, tt.n); got != tt.want {
			t.Errorf("String(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
	// The finding: a multi-byte character straddling byte 4096.
	msg := strings.Repeat("a", 4095) + "é tail"
	if got := truncate.String(msg, 4096); !utf8.ValidString(got) || len(got) != 4095 {
		t.Errorf("a 4096-byte cut through é: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
