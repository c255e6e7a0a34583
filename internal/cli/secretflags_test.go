package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/server"
	"github.com/spf13/pflag"
)

// Secrets on the server's command line are warned of (every process of
// the host reads /proc/<pid>/cmdline); the same ones from the environment
// are not.
func TestWarnSecretFlags(t *testing.T) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "")
	fs.StringVar(&cfg.EncryptionKey, "encryption-key", "", "")
	fs.StringVar(&cfg.OIDCClientSecret, "oidc-client-secret", "", "")
	fs.StringVar(&cfg.AzureGraphClientSecret, "azure-graph-client-secret", "", "")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "")
	if err := fs.Parse([]string{"--admin-token", "tok-123", "--database-url", "postgres://u:pw@db/x"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GANTRY_ENCRYPTION_KEY", "k")
	_ = fs.Set("encryption-key", "k") // as applyEnv does
	var buf bytes.Buffer
	warnSecretFlags(fs, cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	out := buf.String()
	for _, want := range []string{"flag=--admin-token", "flag=--database-url"} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning with %s:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"--encryption-key", "tok-123", "pw@"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("warning names %q:\n%s", unwanted, out)
		}
	}
}
