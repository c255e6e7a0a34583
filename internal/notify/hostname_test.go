package notify

import (
	"strings"
	"testing"
)

func TestValidHostname(t *testing.T) {
	label63 := "a" + strings.Repeat("b", 61) + "c"
	for h, want := range map[string]bool{
		"smtp.example.com": true, "smtp.example.com.": true, "localhost": true, "a": true, "x-1.y": true,
		label63 + ".example": true, label63 + "d.example": false,
		"": false, ".": false, "..": false, "a..b": false, "-a.b": false, "a-.b": false, "a_b.c": false, "a b": false,
	} {
		if got := validHostname(h); got != want {
			t.Errorf("validHostname(%q) = %v, want %v", h, got, want)
		}
	}
}
