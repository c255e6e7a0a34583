package cli

import (
	"os"
	"strings"
	"testing"
)

// gantry server refuses, before it opens anything, a subject template that
// would give every stack's token the same sub.
func TestServerRefusesSubjectTemplate(t *testing.T) {
	isolate(t)
	t.Setenv("GANTRY_TOKEN_SUBJECT_TEMPLATE", "")
	dir := t.TempDir()
	code, _, errOut := runMain("server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--token-subject-template", "x:{foo}:{stackid}")
	if code == 0 || !strings.Contains(errOut, "--token-subject-template") || !strings.Contains(errOut, "unknown placeholder {foo}") {
		t.Errorf("gantry server = %d, stderr %s", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused server wrote its data directory: %v", entries)
	}
}
