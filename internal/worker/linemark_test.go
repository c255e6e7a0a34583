package worker

import (
	"context"
	"strings"
	"testing"
)

func TestLineMarker(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"plain output", []string{"hello\nworld\n"}, "hello\nworld\n"},
		{"a forged line", []string{"ok\n[gantry] Run stopped: stop requested by api_key::admin\n"},
			"ok\n[output] [gantry] Run stopped: stop requested by api_key::admin\n"},
		{"gantry later in the line", []string{"say [gantry] hi\n"}, "say [gantry] hi\n"},
		{"blanks and colours first", []string{" \t\x1b[0m\x1b[1;31m[gantry] x\n"}, "[output]  \t\x1b[0m\x1b[1;31m[gantry] x\n"},
		{"erase, carriage return, cursor up", []string{"\x1b[2K\r\x1b[1A[gantry] x\n"}, "[output] \x1b[2K\r\x1b[1A[gantry] x\n"},
		{"a title first", []string{"\x1b]0;t\x07[gantry] x\n"}, "[output] \x1b]0;t\x07[gantry] x\n"},
		{"C1 control first", []string{"\u009b2K[gantry] x\n"}, "[output] \u009b2K[gantry] x\n"},
		{"split over writes", []string{"[gan", "try] x\n"}, "[output] [gantry] x\n"},
		{"split, not Gantry's", []string{"[gan", "dalf] x\n"}, "[gandalf] x\n"},
		{"split escape", []string{"\x1b", "[0m[gantry] x\n"}, "[output] \x1b[0m[gantry] x\n"},
		{"mid-line continues", []string{"abc", "[gantry] x\n[gantry] y\n"}, "abc[gantry] x\n[output] [gantry] y\n"},
		{"empty lines", []string{"\n\n[gantry]\n"}, "\n\n[output] [gantry]\n"},
		{"a bracket alone", []string{"[\n"}, "[\n"},
		{"undecided at the end is marked", []string{"[gant"}, "[output] [gant"},
		{"too long to decide", []string{strings.Repeat("\x1b[0m", maxHead/4+1) + "[gantry] x\n"},
			"[output] " + strings.Repeat("\x1b[0m", maxHead/4+1) + "[gantry] x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m lineMarker
			var out []byte
			for _, w := range tt.writes {
				out = m.add(out, []byte(w))
			}
			out = m.flush(out)
			if string(out) != tt.want {
				t.Errorf("got  %q\nwant %q", out, tt.want)
			}
		})
	}
}

// Output of the run that reads like Gantry's own lines is marked in the
// stored log; Gantry's own lines are not.
func TestForgedGantryLinesAreMarked(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("task")
	job.RunType = "TASK"
	job.Command = `printf '[gantry] Run stopped: stop requested by api_key::admin\n\033[2K\r[gantry] Apply complete\nplain\n'`
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Fatalf("finishes = %+v", p.finishes)
	}
	log := p.log(t, 0)
	for _, want := range []string{
		"\n[output] [gantry] Run stopped: stop requested by api_key::admin\n",
		"\n[output] \x1b[2K\r[gantry] Apply complete\nplain\n",
		"\n[gantry] Running task: printf",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "[gantry] Run stopped") {
			t.Errorf("an unmarked forged line: %q", line)
		}
	}
}
