package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The schedule table says whether a scheduled delete destroys the stack's
// resources or keeps them (not only -o json).
func TestScheduleListShowsWhetherDeleteDestroys(t *testing.T) {
	isolate(t)
	at := time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC)
	api := newFake(t, map[string]route{"GET /api/v1/stacks/net/schedules": ok(apiv1.List[apiv1.Schedule]{Items: []apiv1.Schedule{
		{ID: "sch-1", Stack: "net", Kind: "delete", At: &at, DeleteResources: true, Status: "active", Cron: []string{}},
		{ID: "sch-2", Stack: "other", Kind: "delete", At: &at, DeleteResources: false, Status: "active", Cron: []string{}},
	}})})
	code, out, errOut := runMain("--url", api.srv.URL, "--token", "tok", "stack", "schedule", "list", "--id", "net")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	for _, tc := range []struct{ id, want string }{{"sch-1", "destroying the resources"}, {"sch-2", "keeping the resources"}} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, tc.id) {
				found = true
				if !strings.Contains(l, "2027-01-31T18:00:00Z, "+tc.want) {
					t.Errorf("%s: %q, want it to say %q", tc.id, l, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("no row for %s:\n%s", tc.id, out)
		}
	}
}
