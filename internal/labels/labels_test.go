package labels

import (
	"reflect"
	"testing"
)

func TestNormalize(t *testing.T) {
	got, err := Normalize([]string{"b", "a", "b", " c "})
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range [][]string{{""}, {`a"b`}, {"a\\b"}} {
		if _, err := Normalize(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestLikePattern(t *testing.T) {
	if got := LikePattern("a_b%"); got != `%"a\_b\%"%` {
		t.Fatalf("got %s", got)
	}
}
