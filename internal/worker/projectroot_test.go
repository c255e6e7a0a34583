package worker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// symlinkRepo makes a repository like newRepo's with symbolic links
// (name -> target) committed too.
func symlinkRepo(t *testing.T, fx *jobFixture, links map[string]string) {
	t.Helper()
	for name, target := range links {
		p := filepath.Join(fx.repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, fx.repo, "add", "-A")
	gitRun(t, fx.repo, "commit", "--quiet", "-m", "Add links")
}

// A project root that leads out of the checkout through a symbolic link
// (relative or absolute, at the root or along its path) fails the run
// before the tool runs, and nothing is written where it points; links that
// stay inside the checkout keep working.
func TestJobProjectRootSymlinks(t *testing.T) {
	tests := []struct {
		name       string
		root       string
		links      func(outside, fromSrc string) map[string]string
		wantReason string // empty: the run succeeds
	}{
		{
			name:       "relative link out",
			root:       "rel",
			links:      func(outside, fromSrc string) map[string]string { return map[string]string{"rel": fromSrc} },
			wantReason: `project root "rel" leads outside the repository through a symbolic link`,
		},
		{
			name:       "absolute link out",
			root:       "escape",
			links:      func(outside, fromSrc string) map[string]string { return map[string]string{"escape": outside} },
			wantReason: `project root "escape" leads outside the repository through a symbolic link`,
		},
		{
			name: "link out along the path",
			root: "envs/out/prod",
			links: func(outside, fromSrc string) map[string]string {
				return map[string]string{"envs/out": filepath.Dir(outside)}
			},
			wantReason: `project root "envs/out/prod" leads outside the repository through a symbolic link`,
		},
		{
			name: "link inside to a link out",
			root: "hop",
			links: func(outside, fromSrc string) map[string]string {
				return map[string]string{"hop": "stacks/away", "stacks/away": outside}
			},
			wantReason: `project root "hop" leads outside the repository through a symbolic link`,
		},
		{
			name: "plan file linked out",
			root: "stacks/prod",
			links: func(outside, fromSrc string) map[string]string {
				return map[string]string{"stacks/prod/gantry.tfplan": filepath.Join(outside, "gantry.tfplan")}
			},
			wantReason: "gantry.tfplan in the project root is a symbolic link",
		},
		{
			name: ".terraform linked out",
			root: "stacks/prod",
			links: func(outside, fromSrc string) map[string]string {
				return map[string]string{"stacks/prod/.terraform": outside}
			},
			wantReason: ".terraform in the project root is a symbolic link",
		},
		{
			name:  "link inside the checkout",
			root:  "current",
			links: func(outside, fromSrc string) map[string]string { return map[string]string{"current": "stacks/prod"} },
		},
		{
			name:  "link inside along the path",
			root:  "envs/prod",
			links: func(outside, fromSrc string) map[string]string { return map[string]string{"envs": "stacks"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, map[string]string{"stacks/prod/main.tf": "resource \"terraform_data\" \"x\" {}\n"})
			// The server's own directory, holding code of its own.
			outside := filepath.Join(t.TempDir(), "prod")
			writeFiles(t, outside, map[string]string{"main.tf": "resource \"terraform_data\" \"outside\" {}\n"})
			// The checkout is <work>/gantry-job-*/src: a relative link from
			// its top reaches outside with this path.
			fromSrc, err := filepath.Rel(filepath.Join(fx.work, "gantry-job-x", "src"), outside)
			if err != nil {
				t.Fatal(err)
			}
			symlinkRepo(t, fx, tt.links(outside, fromSrc))
			job := fx.job("plan")
			job.ProjectRoot = tt.root
			fx.proto.next = "done"
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto

			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("the run wrote outside the checkout: %v", names)
			}
			if tt.wantReason == "" {
				if len(p.finishes) != 0 || len(p.planned) != 1 {
					t.Fatalf("Finish = %+v, Planned = %+v, want a plan; log:\n%s", p.finishes, p.planned, p.log(t, 0))
				}
				return
			}
			if len(p.finishes) != 1 || p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, tt.wantReason) {
				t.Fatalf("Finish = %+v, want a failure with %q", p.finishes, tt.wantReason)
			}
			if got := phaseStates(p.phases); !slices.Equal(got, nil) {
				t.Errorf("phases = %v, want none: the run fails before the tool starts", got)
			}
			if _, err := os.Stat(filepath.Join(fx.record, "init.env")); err == nil {
				t.Error("the tool ran in a project root outside the checkout")
			}
		})
	}
}
