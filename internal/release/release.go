// Package release tells which release of Gantry this binary is: the
// version set at build time, else what Go recorded when it built it (the
// module version, or the commit of the checkout it was built from).
package release

import (
	"runtime/debug"
	"strings"
	"sync"
)

// Version is the release of the binary, set when building with
// -ldflags "-X github.com/gantry-iac/gantry/internal/release.Version=v1.2.3".
var Version = ""

// Info describes a build.
type Info struct {
	// Version is the release: Version when set at build time, else the
	// module version (go install ...@v1.2.3), else dev-<commit> for a
	// build from a git checkout (its first 7 hex digits), else dev.
	Version string
	// Revision, Time and Modified are what Go recorded of the checkout
	// the binary was built from (none for a build with a set version or
	// outside a checkout): its commit, the commit's time (RFC 3339), and
	// whether files differed from it.
	Revision string
	Time     string
	Modified bool
}

// String is the version with what is known of the checkout, e.g.
// "dev-3f2a1c9 (2026-11-26T16:00:00Z, modified)", or "v1.2.3".
func (i Info) String() string {
	var more []string
	if i.Time != "" {
		more = append(more, i.Time)
	}
	if i.Modified {
		more = append(more, "modified")
	}
	if len(more) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(more, ", ") + ")"
}

var (
	once sync.Once
	this Info
)

// Get describes this binary.
func Get() Info {
	once.Do(func() {
		info, _ := debug.ReadBuildInfo()
		this = describe(Version, info)
	})
	return this
}

// String describes this binary in one line (see Info.String).
func String() string { return Get().String() }

// describe makes the Info of a build whose version set at build time is
// set ("" for none) and whose build information is info (nil if none).
//
// A build from a checkout (go build, with -buildvcs not false) records the
// commit (vcs.revision, vcs.time, vcs.modified) and, since Go 1.24, a
// pseudo-version of it as the module version
// (v0.0.0-20261126160000-3f2a1c9abcde+dirty): both say dev-<commit>.
func describe(set string, info *debug.BuildInfo) Info {
	if set != "" {
		return Info{Version: set}
	}
	if info == nil {
		return Info{Version: "dev"}
	}
	out := Info{Version: "dev"}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.time":
			out.Time = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		}
	}
	v := info.Main.Version
	if out.Revision == "" && v != "" && v != "(devel)" {
		rev, dirty, ok := pseudo(v)
		if !ok {
			return Info{Version: v} // a tagged release: go install ...@v1.2.3
		}
		out.Revision, out.Modified = rev, dirty
	}
	if out.Revision != "" {
		out.Version = "dev-" + out.Revision[:min(7, len(out.Revision))]
	}
	return out
}

// pseudo returns the commit a pseudo-version names
// (vX.Y.Z-[pre.]yyyymmddhhmmss-abcdefabcdef[+dirty]) and whether it
// carries +dirty; ok is false for any other version.
func pseudo(v string) (rev string, dirty, ok bool) {
	v, dirty = strings.CutSuffix(v, "+dirty")
	i := strings.LastIndexByte(v, '-')
	if i < 0 || len(v)-i-1 != 12 || !isHex(v[i+1:]) {
		return "", false, false
	}
	stamp := v[:i]
	j := max(strings.LastIndexByte(stamp, '-'), strings.LastIndexByte(stamp, '.'))
	if j < 0 || len(stamp)-j-1 != 14 || !isDigits(stamp[j+1:]) {
		return "", false, false
	}
	return v[i+1:], dirty, true
}

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}
