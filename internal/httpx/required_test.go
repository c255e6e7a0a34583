package httpx

import (
	"reflect"
	"testing"
)

func TestHasRequired(t *testing.T) {
	type node struct {
		Next *node `json:"next"`
	}
	type inner struct {
		ID string `json:"id" required:"true"`
	}
	type outer struct {
		Name  string `json:"name"`
		Inner *inner `json:"inner"`
	}
	for _, c := range []struct {
		t    reflect.Type
		want bool
	}{
		{reflect.TypeFor[node](), false},
		{reflect.TypeFor[*node](), false},
		{reflect.TypeFor[inner](), true},
		{reflect.TypeFor[*outer](), true},
		{reflect.TypeFor[map[string]any](), false},
	} {
		// Twice: the second answer comes from the cache.
		for range 2 {
			if got := hasRequired(c.t); got != c.want {
				t.Errorf("hasRequired(%v) = %v, want %v", c.t, got, c.want)
			}
		}
	}
}
