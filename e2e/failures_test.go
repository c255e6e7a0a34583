package e2e

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Scenario 7: runs that cannot succeed end FAILED with a reason that says
// why, and the server goes on running other stacks.
func TestFailures(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		good := map[string]string{"main.tf": staticConfig("fine")}
		missingSHA := "0123456789abcdef0123456789abcdef01234567"

		cases := []struct {
			name        string
			files       map[string]string // nil: the repository does not exist
			stackFlags  []string
			deployFlags []string
			reason      *regexp.Regexp // the run's reason must match
			log         *regexp.Regexp // and its log
		}{{
			name:   "invalid-hcl",
			files:  map[string]string{"main.tf": "resource \"terraform_data\" \"broken\" {\n  input = \n"},
			reason: regexp.MustCompile(`(?i)init|plan|config`),
			log:    regexp.MustCompile(`main\.tf`),
		}, {
			name:   "missing-repo",
			reason: regexp.MustCompile(`no-such-repo`),
			log:    regexp.MustCompile(`no-such-repo`),
		}, {
			name:       "missing-branch",
			files:      good,
			stackFlags: []string{"--branch", "no-such-branch"},
			reason:     regexp.MustCompile(`no-such-branch`),
			log:        regexp.MustCompile(`no-such-branch`),
		}, {
			name:        "bad-sha",
			files:       good,
			deployFlags: []string{"--sha", missingSHA},
			reason:      regexp.MustCompile(missingSHA[:12]),
			log:         regexp.MustCompile(missingSHA[:12]),
		}, {
			name:       "before-init-hook",
			files:      good,
			stackFlags: []string{"--before-init", "exit 3"},
			reason:     regexp.MustCompile(`(?i)before.init.*3`),
			log:        regexp.MustCompile(`exit 3`),
		}, {
			name: "tool-killed",
			files: map[string]string{"main.tf": `
resource "terraform_data" "boom" {
  provisioner "local-exec" {
    command = "kill -9 $PPID"
  }
}
`},
			stackFlags: []string{"--autodeploy"},
			reason:     regexp.MustCompile(`(?i)apply.*(137|kill|signal)`),
			log:        regexp.MustCompile(`local-exec`),
		}, {
			name: "own-backend",
			files: map[string]string{"main.tf": `
terraform {
  backend "local" {}
}

resource "terraform_data" "x" {}
`},
			reason: regexp.MustCompile(`(?i)backend`),
			log:    regexp.MustCompile(`(?i)backend "?local`),
		}}

		runs := map[string]apiv1.Run{}
		for _, c := range cases {
			url := "file://" + filepath.Join(t.TempDir(), "no-such-repo")
			if c.files != nil {
				url = NewRepo(t, c.files).URL
			}
			s.CreateStack(t, c.name, url, c.stackFlags...)
			runs[c.name] = s.Deploy(t, c.name, c.deployFlags...)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := s.WaitRun(t, runs[c.name].ID, apiv1.StateFailed)
				r = s.ShowRun(t, r.ID)
				t.Logf("reason: %s", r.Reason)
				if !c.reason.MatchString(r.Reason) {
					t.Errorf("reason %q does not match %s\n%s", r.Reason, c.reason, s.Describe(t, r))
				}
				if logs := s.Logs(t, c.name, r.ID); !c.log.MatchString(logs) {
					t.Errorf("the log does not match %s:\n%s", c.log, logs)
				}
				if last := r.Transitions[len(r.Transitions)-1]; last.To != apiv1.StateFailed || last.Reason == "" {
					t.Errorf("last transition = %+v, want FAILED with a reason", last)
				}
			})
		}

		// The server still runs good stacks.
		s.CreateStack(t, "after-failures", NewRepo(t, good).URL, "--autodeploy")
		r := s.WaitRun(t, s.Deploy(t, "after-failures").ID, apiv1.StateFinished)
		checkDelta(t, r, 1, 0, 0)
	})
}
