package id

import (
	"strings"
	"testing"
	"time"
)

// Before sorts above every id made before its time and below every id
// made from it on.
func TestBefore(t *testing.T) {
	start := time.Now()
	made := New("run")
	if b := Before("run", start.Add(-time.Millisecond)); made <= b {
		t.Fatalf("id %q made after %v sorts at or below Before %q", made, start, b)
	}
	if b := Before("run", time.Now().Add(time.Millisecond)); made >= b {
		t.Fatalf("id %q made before the bound sorts at or above Before %q", made, b)
	}
	if b := Before("run", start); len(b) != len(made) || !strings.HasPrefix(b, "run-") {
		t.Fatalf("Before = %q, want the shape of %q", b, made)
	}
}

func TestNewSortableAndUnique(t *testing.T) {
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		v := New("run")
		if !strings.HasPrefix(v, "run-") || len(v) != 30 {
			t.Fatalf("bad id %q", v)
		}
		if v <= prev {
			t.Fatalf("id %q not after %q", v, prev)
		}
		if seen[v] {
			t.Fatalf("duplicate %q", v)
		}
		seen[v] = true
		prev = v
	}
}

func TestValidSlug(t *testing.T) {
	for s, want := range map[string]bool{
		"root": true, "a": true, "my-stack-1": true, "": false, "-a": false, "a-": false,
		"Upper": false, "a_b": false, "a/b": false, "../x": false, strings.Repeat("a", 64): false,
		strings.Repeat("a", 63): true, "a" + strings.Repeat("-", 61) + "a": true,
	} {
		if got := ValidSlug(s); got != want {
			t.Errorf("ValidSlug(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSecret(t *testing.T) {
	a, b := Secret(32), Secret(32)
	if a == b || len(a) < 50 {
		t.Fatalf("weak secrets %q %q", a, b)
	}
}

func TestPattern(t *testing.T) {
	p := MustPattern(`^[a-z]+$`, 2, 4)
	for s, want := range map[string]bool{"a": false, "ab": true, "abcd": true, "abcde": false, "aB": false, "": false} {
		if got := p.MatchString(s); got != want {
			t.Errorf("MatchString(%q) = %v, want %v", s, got, want)
		}
	}
}
