package bytesize_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/bytesize"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"100MiB", 100 << 20, true},
		{"100 MiB", 100 << 20, true},
		{"1.5GiB", 3 << 29, true},
		{"512k", 512 << 10, true},
		{"2MB", 2e6, true},
		{"0", 0, true},
		{"10B", 10, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"10 parsecs", 0, false},
		{"1e3", 0, false},
	}
	for _, tt := range tests {
		got, err := bytesize.Parse(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 bytes"}, {1, "1 byte"}, {1023, "1023 bytes"}, {1024, "1 KiB"},
		{256 << 20, "256 MiB"}, {3 << 29, "1.5 GiB"}, {280_000_000, "267 MiB"},
	}
	for _, tt := range tests {
		if got := bytesize.Format(tt.in); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
