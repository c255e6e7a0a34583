package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// A committed link leading out of the checkout (to where mounted files
// land, or anywhere) does not fail the confirmed apply of a good plan.
func TestConfirmWithLinkOutOfCheckout(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	for link, target := range map[string]string{"kubeconfig": "../kube/config", "etcrel": "../../../../../../../etc"} {
		if err := os.Symlink(target, filepath.Join(repo.Dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	repo.Commit(t, "links out of the checkout", nil)
	s.CreateStack(t, "linked", repo.URL)
	r := s.Deploy(t, "linked")
	s.WaitRun(t, r.ID, "UNCONFIRMED")
	s.MustGantry(t, "stack", "confirm", "--id", "linked", "--run", r.ID)
	if got := s.WaitRun(t, r.ID, "FINISHED", "FAILED"); got.State != "FINISHED" {
		t.Fatalf("the confirmed run %s: %s", got.State, got.Reason)
	}
}
