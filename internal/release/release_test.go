package release

import (
	"runtime/debug"
	"testing"
)

func TestDescribe(t *testing.T) {
	vcs := func(rev, time, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: time}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "3f2a1c9abcde0123456789abcdef0123456789ab"
	for _, c := range []struct {
		name string
		set  string
		info *debug.BuildInfo
		want string
	}{
		{"no build information", "", nil, "dev"},
		{"set at build time wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-11-26T16:00:00Z", "true")}, "v1.2.3"},
		{"a build without VCS stamping", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"a checkout with changes", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261126160000-3f2a1c9abcde+dirty"},
			Settings: vcs(rev, "2026-11-26T16:00:00Z", "true")}, "dev-3f2a1c9 (2026-11-26T16:00:00Z, modified)"},
		{"a clean checkout, Go before 1.24", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs(rev, "2026-11-26T16:00:00Z", "false")}, "dev-3f2a1c9 (2026-11-26T16:00:00Z)"},
		{"go install of a commit", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261126160000-3f2a1c9abcde"}}, "dev-3f2a1c9"},
		{"go install of a commit after a tag", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.4-0.20261126160000-3f2a1c9abcde"}}, "dev-3f2a1c9"},
		{"go install of a tag", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
	} {
		if got := describe(c.set, c.info).String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
