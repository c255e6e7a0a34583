package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

func TestTermSafe(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"colours pass", []string{"\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold\x1b[m\n"}, "\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold\x1b[m\n"},
		{"window title", []string{"\x1b]0;PWNED-TITLE\x07x\n"}, "^[]0;PWNED-TITLE^Gx\n"},
		{"clipboard", []string{"\x1b]52;c;cm0gLXJmIH4=\x07\n"}, "^[]52;c;cm0gLXJmIH4=^G\n"},
		{"hyperlink", []string{"\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\n"}, "^[]8;;http://evil^[\\click^[]8;;^[\\\n"},
		{"erase and cursor up", []string{"\x1b[2K\r\x1b[1A[gantry] Run stopped\n"}, "^[[2K\\r^[[1A[gantry] Run stopped\n"},
		{"bare carriage return", []string{"real\rforged\n"}, "real\\rforged\n"},
		{"CRLF", []string{"a\r\nb\r\n"}, "a\nb\n"},
		{"other controls", []string{"bell\x07 back\x08 del\x7f tab\t\n"}, "bell^G back^H del^? tab\t\n"},
		{"C1 CSI", []string{"\u009b2J\u0085x\n"}, "^[[2J^[Ex\n"},
		{"unicode passes", []string{"héllo ✓ \ufffd\n"}, "héllo ✓ \ufffd\n"},
		{"SGR cut by a write", []string{"\x1b[3", "1mx\n"}, "\x1b[31mx\n"},
		{"CR then LF in the next write", []string{"a\r", "\nb"}, "a\nb"},
		{"CR then text in the next write", []string{"a\r", "b"}, "a\\rb"},
		{"C1 cut by a write", []string{"\xc2", "\x9b1A"}, "^[[1A"},
		{"escape left at the end", []string{"x\x1b"}, "x^["},
		{"CR left at the end", []string{"x\r"}, "x\\r"},
		{"an endless SGR", []string{"\x1b[" + strings.Repeat("1;", 40) + "m"}, "^[[" + strings.Repeat("1;", 40) + "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			ts := &termSafe{w: &b}
			for _, w := range tt.writes {
				if n, err := ts.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := ts.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got  %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}

// `gantry stack logs` on a terminal shows the run's control sequences;
// piped, or with -o json, it writes the log as stored.
func TestLogsOnATerminal(t *testing.T) {
	const data = "ok\n\x1b]0;PWNED\x07\x1b[2K\rforged\n"
	for _, tt := range []struct {
		name     string
		terminal bool
		args     []string
		want     string
	}{
		{"terminal", true, nil, "ok\n^[]0;PWNED^G^[[2K\\rforged\n"},
		{"terminal, follow", true, []string{"-f"}, "ok\n^[]0;PWNED^G^[[2K\\rforged\n"},
		{"terminal, -o json", true, []string{"-o", "json"}, data},
		{"piped", false, nil, data},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			old := isTerminalOut
			defer func() { isTerminalOut = old }()
			isTerminalOut = func(io.Writer) bool { return tt.terminal }
			api := newFake(t, map[string]route{
				"GET /api/v1/runs/run-1": ok(run("FINISHED")),
				"GET /api/v1/runs/run-1/logs": seq(
					apiv1.LogChunk{Offset: 0, NextOffset: int64(len(data)), Data: data, Done: true},
					apiv1.LogChunk{Offset: int64(len(data)), NextOffset: int64(len(data)), Done: true},
				),
			})
			args := append([]string{"--url", api.srv.URL, "--token", "tok", "stack", "logs", "--id", "net", "--run", "run-1"}, tt.args...)
			code, out, errOut := runMain(args...)
			if code != 0 || out != tt.want {
				t.Errorf("exit %d, stdout %q, want %q\nstderr: %s", code, out, tt.want, errOut)
			}
		})
	}
}
