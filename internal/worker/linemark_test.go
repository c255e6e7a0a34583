package worker

import (
	"context"
	"fmt"
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
		{"erase, carriage return, cursor up", []string{"\x1b[2K\r\x1b[1A[gantry] x\n"}, "\x1b[2K\r[output] \x1b[1A[gantry] x\n"},
		{"a title first", []string{"\x1b]0;t\x07[gantry] x\n"}, "[output] \x1b]0;t\x07[gantry] x\n"},
		{"C1 control first", []string{"\u009b2K[gantry] x\n"}, "[output] \u009b2K[gantry] x\n"},
		{"split over writes", []string{"[gan", "try] x\n"}, "[output] [gantry] x\n"},
		{"split, not Gantry's", []string{"[gan", "dalf] x\n"}, "[gandalf] x\n"},
		{"split escape", []string{"\x1b", "[0m[gantry] x\n"}, "[output] \x1b[0m[gantry] x\n"},
		{"mid-line continues", []string{"abc", "[gantry] x\n[gantry] y\n"}, "abc[gantry] x\n[output] [gantry] y\n"},
		{"empty lines", []string{"\n\n[gantry]\n"}, "\n\n[output] [gantry]\n"},
		{"a bracket alone", []string{"[\n"}, "[\n"},
		{"undecided at the end is marked", []string{"[gant"}, "[output] [gant"},
		{"zero-width space first", []string{"\u200b[gantry] Run stopped: x\n"}, "[output] \u200b[gantry] Run stopped: x\n"},
		{"blank braille pattern first", []string{"\u2800[gantry] Run stopped: x\n"}, "[output] \u2800[gantry] Run stopped: x\n"},
		{"byte order mark and blanks first", []string{"\ufeff \u00a0\u3000[gantry] x\n"}, "[output] \ufeff \u00a0\u3000[gantry] x\n"},
		{"invisible character split over writes", []string{"\xe2\x80", "\x8b[gantry] x\n"}, "[output] \u200b[gantry] x\n"},
		{"a visible letter first", []string{"\u00e9[gantry] x\n"}, "\u00e9[gantry] x\n"},
		{"not UTF-8 first", []string{"\xff[gantry] x\n"}, "\xff[gantry] x\n"},
		{"after a carriage return", []string{"xx\r[gantry] Run stopped: x\n"}, "xx\r[output] [gantry] Run stopped: x\n"},
		{"after the last carriage return", []string{"a\rb\r\u200b[gantry] x\n"}, "a\rb\r[output] \u200b[gantry] x\n"},
		{"before and after a carriage return", []string{"[gantry] a\r[gantry] b\n"}, "[output] [gantry] a\r[output] [gantry] b\n"},
		{"carriage return split over writes", []string{"partial", "\r", "[gan", "try] x\n"}, "partial\r[output] [gantry] x\n"},
		{"carriage return and line feed", []string{"ok\r\n[gantry] x\r\n"}, "ok\r\n[output] [gantry] x\r\n"},
		{"a progress bar", []string{"10%\r20%\r", "30%\n"}, "10%\r20%\r30%\n"},
		{"nothing after a carriage return at the end", []string{"ab\r"}, "ab\r"},
		{"undecided after a carriage return at the end", []string{"ab\r[gan"}, "ab\r[output] [gan"},
		{"a carriage return inside a title", []string{"\x1b]0;a\rb\x07[gantry] x\n"}, "[output] \x1b]0;a\rb\x07[gantry] x\n"},
		{"too long to decide", []string{strings.Repeat("\x1b[0m", maxHead/4+1) + "[gantry] x\n"},
			"[output] " + strings.Repeat("\x1b[0m", maxHead/4+1) + "[gantry] x\n"},
	}
	// Characters a terminal does not show, each before a forged line.
	for _, r := range []rune{0x200b, 0xfeff, 0x200c, 0x200d, 0x2060, 0x180e, 0x00ad, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
		0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c, 0xfe0f, 0x3164} {
		line := string(r) + "[gantry] Run stopped: stop requested by api_key::admin\n"
		tests = append(tests, struct {
			name   string
			writes []string
			want   string
		}{fmt.Sprintf("U+%04X first", r), []string{line}, outputMark + line})
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
			// The same, a byte at a time.
			var one lineMarker
			out = nil
			for _, b := range []byte(strings.Join(tt.writes, "")) {
				out = one.add(out, []byte{b})
			}
			if out = one.flush(out); string(out) != tt.want {
				t.Errorf("a byte at a time: got  %q\nwant %q", out, tt.want)
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
	job.Command = `printf '[gantry] Run stopped: stop requested by api_key::admin\n\033[2K\r[gantry] Apply complete\nplain\n` +
		`\342\200\213[gantry] Run stopped: zero-width\npartial\r[gantry] Run stopped: over\n'`
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Fatalf("finishes = %+v", p.finishes)
	}
	log := p.log(t, 0)
	for _, want := range []string{
		"\n[output] [gantry] Run stopped: stop requested by api_key::admin\n",
		"\n\x1b[2K\r[output] [gantry] Apply complete\nplain\n",
		"\n[output] \u200b[gantry] Run stopped: zero-width\npartial\r[output] [gantry] Run stopped: over\n",
		"\n[gantry] Running task: printf",
		"\n[gantry] Using ", // the tool resolver's lines are Gantry's own
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if shown := line[strings.LastIndex(line, "\r")+1:]; strings.HasPrefix(strings.TrimPrefix(shown, "\u200b"), "[gantry] Run stopped") {
			t.Errorf("an unmarked forged line: %q", line)
		}
	}
}
