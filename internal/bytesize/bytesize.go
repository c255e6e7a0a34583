// Package bytesize reads and writes sizes in bytes as people do: "100MiB",
// "1.5 GiB", "512KB", "1048576".
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

var units = []struct {
	name string
	size float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1}, {"", 1},
}

// Parse reads a size: a number, optionally with a unit (B, KB, MB, GB,
// TB in powers of 1000; KiB, MiB, GiB, TiB, and K, M, G, T, in powers of
// 1024), case-insensitive, spaces allowed.
func Parse(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 100MiB, 1GiB, 1048576)", s)
	}
	for _, u := range units {
		if u.name == unit {
			n := math.Round(v * u.size)
			if n > math.MaxInt64/2 {
				return 0, errors.New("size too large")
			}
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("%q: unknown unit %q (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)", s, unit)
}

// Format writes n bytes for people: "256 MiB", "1.5 GiB", "12 bytes".
func Format(n int64) string {
	const unit = 1024
	if n < unit {
		if n == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}
