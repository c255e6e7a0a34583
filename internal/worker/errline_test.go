package worker

import (
	"bytes"
	"strings"
	"testing"
)

func TestErrorCatcher(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"no error", []string{"Initializing...\n", "Success!\n"}, ""},
		{"plain error line", []string{"Planning...\nError: Invalid reference\n\nmore\n"}, "Error: Invalid reference"},
		{
			"boxed diagnostic",
			[]string{"╷\n│ Error: Unsupported argument\n│ \n│   on main.tf line 3:\n╵\n"},
			"Error: Unsupported argument",
		},
		{"first of several", []string{"│ Error: first\n", "Error: second\n"}, "Error: first"},
		{"warnings are not errors", []string{"│ Warning: deprecated\n", "│ Error: real one\n"}, "Error: real one"},
		{"line split across writes", []string{"│ Err", "or: split ", "line\n"}, "Error: split line"},
		{"last line without newline", []string{"ok\n", "Error: at the end"}, "Error: at the end"},
		{"carriage return line ending", []string{"Error: windows\r\n"}, "Error: windows"},
		{"error in the middle of a line is not a diagnostic", []string{"echo Error: not really\n"}, ""},
		{"indented", []string{"    Error: indented\n"}, "Error: indented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			ec := &errorCatcher{dst: &out}
			for _, w := range tt.writes {
				if n, err := ec.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := ec.First(); got != tt.want {
				t.Errorf("First() = %q, want %q", got, tt.want)
			}
			if got, want := out.String(), strings.Join(tt.writes, ""); got != want {
				t.Errorf("passed through %q, want %q", got, want)
			}
		})
	}
}

func TestErrorCatcherLongLine(t *testing.T) {
	var out bytes.Buffer
	ec := &errorCatcher{dst: &out}
	long := "Error: " + strings.Repeat("z", 5000) + "\n"
	ec.Write([]byte(long))
	got := ec.First()
	if !strings.HasPrefix(got, "Error: zzz") || len(got) > 1024 {
		t.Errorf("First() = %d bytes starting %q, want a line of at most 1024 bytes starting with the error", len(got), got[:min(len(got), 20)])
	}
	if out.Len() != len(long) {
		t.Errorf("passed through %d bytes, want %d", out.Len(), len(long))
	}
}
