package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/notify"
)

func TestFillPhaseLogs(t *testing.T) {
	logs := map[string]string{"planning": "plan: 1 to add\n", "applying": "Apply complete!\n"}
	text := func(phase string, max int) (string, error) {
		s := logs[phase]
		if len(s) > max {
			s = "[cut]" + s[len(s)-max:]
		}
		return s, nil
	}
	in := `{"spacelift::logs::planning":"spacelift::logs::planning","text":"Plan:\nspacelift::logs::planning","list":["x","spacelift::logs::applying",1.50,true,null],"unknown":"spacelift::logs::nope","n":12345678901234567890}`
	got, err := fillPhaseLogs([]byte(in), text)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	want := map[string]any{
		"spacelift::logs::planning": "plan: 1 to add\n", // keys stay
		"text":                      "Plan:\nplan: 1 to add\n",
		"list":                      []any{"x", "Apply complete!\n", 1.5, true, nil},
		"unknown":                   "spacelift::logs::nope",
		"n":                         1.2345678901234567e19,
	}
	if fmt.Sprint(doc) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", doc, want)
	}
	if !strings.Contains(string(got), `"n":12345678901234567890`) {
		t.Errorf("numbers must keep their digits: %s", got)
	}
}

// TestFillPhaseLogsCaps: a phase's log is cut to phaseLogCap, and further
// until the payload fits notify.MaxBody.
func TestFillPhaseLogsCaps(t *testing.T) {
	var maxes []int
	text := func(phase string, max int) (string, error) {
		maxes = append(maxes, max)
		return strings.Repeat("x", max), nil
	}
	got, err := fillPhaseLogs([]byte(`["spacelift::logs::planning"]`), text)
	if err != nil || len(got) != phaseLogCap+4 {
		t.Fatalf("one placeholder: %d bytes, %v; want %d", len(got), err, phaseLogCap+4)
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = "spacelift::logs::applying"
	}
	in, _ := json.Marshal(many)
	maxes = nil
	got, err = fillPhaseLogs(in, text)
	if err != nil || len(got) > notify.MaxBody {
		t.Fatalf("40 placeholders: %d bytes, %v; want at most %d", len(got), err, notify.MaxBody)
	}
	if len(maxes) < 2 || maxes[len(maxes)-1] >= phaseLogCap {
		t.Fatalf("caps tried %v: want smaller ones", maxes)
	}
	// Too many to fit even at the floor: notes instead.
	huge := make([]string, 2000)
	for i := range huge {
		huge[i] = "spacelift::logs::planning"
	}
	in, _ = json.Marshal(huge)
	got, _ = fillPhaseLogs(in, text)
	if !strings.Contains(string(got), "does not fit") {
		t.Fatalf("want notes when nothing fits, got %.200s", got)
	}
}
