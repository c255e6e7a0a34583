package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func init() { extraCommands = append(extraCommands, adminCommand) }

// adminCommand groups the commands that work on the server's database
// directly, not through the API.
func adminCommand() *cobra.Command {
	return group("admin", "Operate on the server's database and keys directly (not through the API)",
		rotateKeyCommand(), generateKeyCommand(), rotateSigningKeyCommand())
}

func generateKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "generate-key",
		Short: "Print a new random encryption key (64 hex characters)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), secrets.GenerateKey())
			return err
		},
	}
}

func rotateKeyCommand() *cobra.Command {
	var databaseURL, dataDir, oldFile, newFile string
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-wrap the data key under a new master encryption key",
		Long: `Re-wrap the data key under a new master encryption key.

Everything Gantry encrypts at rest is sealed with a data key, stored only
wrapped by the master key (--encryption-key of gantry server). This command
unwraps the data key with the old master key and wraps it with the new one,
in one transaction; no data is re-encrypted. Servers already running keep
working; restart each with the new key: started with the old key, a server
refuses to start.

The keys are read from --old-key-file and --new-key-file (or
GANTRY_OLD_KEY_FILE and GANTRY_NEW_KEY_FILE), else from GANTRY_OLD_KEY and
GANTRY_NEW_KEY; never from the command line. Make a new key with
gantry admin generate-key.`,
		Example: `  gantry admin generate-key > new.key
  gantry admin rotate-key --data-dir ./gantry-data --old-key-file ./gantry-data/encryption.key --new-key-file new.key
  mv new.key ./gantry-data/encryption.key   # then restart the server`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" && dataDir == "" {
				return usageErrorf("--database-url or --data-dir is required")
			}
			oldKey, err := readKey("old", oldFile)
			if err != nil {
				return err
			}
			newKey, err := readKey("new", newFile)
			if err != nil {
				return err
			}
			if databaseURL == "" {
				// Do not create an empty database where there is none.
				path := filepath.Join(dataDir, "gantry.db")
				if _, err := os.Stat(path); err != nil {
					return fmt.Errorf("no database at %s: %w", path, err)
				}
			}
			d, err := db.Open(cmd.Context(), databaseURL, dataDir, nil)
			if err != nil {
				return fmt.Errorf("opening the database: %w", err)
			}
			defer d.Close()
			info, err := secrets.RotateMasterKey(cmd.Context(), d, oldKey, newKey)
			clear(oldKey)
			clear(newKey)
			if errors.Is(err, secrets.ErrWrongKey) {
				return errors.New("the old key does not match this database (wrong key, or already rotated): nothing was changed")
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Re-wrapped data key %s under the new master key (master key version %d).\n", info.ID, info.MasterVersion)
			fmt.Fprintln(out, "Servers running now keep working. Restart each with the new key (--encryption-key, GANTRY_ENCRYPTION_KEY(_FILE)")
			fmt.Fprintln(out, "or <data-dir>/encryption.key): the old key no longer starts a server. Back up the new key.")
			if info.Adopted {
				fmt.Fprintln(out, "Note: this database's data key was adopted from its first master key, so the data stays encrypted")
				fmt.Fprintln(out, "under that key's bytes: keep the old key as secret as before (see docs/operations.md).")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&databaseURL, "database-url", "", "postgres://... of the server's database (empty: SQLite in --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory, holding gantry.db (SQLite)")
	f.StringVar(&oldFile, "old-key-file", "", "file holding the current master key (default: GANTRY_OLD_KEY)")
	f.StringVar(&newFile, "new-key-file", "", "file holding the new master key (default: GANTRY_NEW_KEY)")
	return cmd
}

// readKey reads the old or new master key from file, else from
// GANTRY_OLD_KEY / GANTRY_NEW_KEY.
func readKey(which, file string) ([]byte, error) {
	env := envName(which + "-key")
	text := os.Getenv(env)
	src := env
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", which, err)
		}
		text, src = string(b), file
	}
	if text == "" {
		return nil, usageErrorf("the %s key is required: --%s-key-file, %s_FILE or %s", which, which, env, env)
	}
	k, err := secrets.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s key (%s): %w", which, src, err)
	}
	return k, nil
}

func rotateSigningKeyCommand() *cobra.Command {
	var databaseURL, dataDir, keyFile, alg string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-signing-key",
		Short: "Add a new key signing the runs' OIDC tokens; the old one stays published for a grace period",
		Long: `Add a new key signing the runs' OpenID Connect tokens, stored sealed with
the data key, of the current key's algorithm unless --alg says otherwise.
Running servers sign with it from their next token; the previous key stays
in /.well-known/jwks for --grace, and in any case for the servers' own
--token-lifetime, so the tokens it signed keep verifying until they
expire, then leaves it. The encryption key is read from
--encryption-key-file (or GANTRY_ENCRYPTION_KEY_FILE,
GANTRY_ENCRYPTION_KEY), default <data-dir>/encryption.key.`,
		Example: `  gantry admin rotate-signing-key --data-dir ./gantry-data
  gantry admin rotate-signing-key --database-url postgres://... --encryption-key-file /run/secrets/gantry.key --grace 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" && dataDir == "" {
				return usageErrorf("--database-url or --data-dir is required")
			}
			if keyFile == "" && os.Getenv("GANTRY_ENCRYPTION_KEY") == "" && dataDir != "" {
				keyFile = filepath.Join(dataDir, "encryption.key")
			}
			text := os.Getenv("GANTRY_ENCRYPTION_KEY")
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("encryption key: %w", err)
				}
				text = string(b)
			}
			master, err := secrets.ParseKey(text)
			if err != nil {
				return fmt.Errorf("encryption key: %w", err)
			}
			if databaseURL == "" {
				path := filepath.Join(dataDir, "gantry.db")
				if _, err := os.Stat(path); err != nil {
					return fmt.Errorf("no database at %s: %w", path, err)
				}
			}
			d, err := db.Open(cmd.Context(), databaseURL, dataDir, nil)
			if err != nil {
				return fmt.Errorf("opening the database: %w", err)
			}
			defer d.Close()
			box, _, err := secrets.UnlockDataKey(cmd.Context(), d, master)
			clear(master)
			if err != nil {
				return fmt.Errorf("encryption key: %w", err)
			}
			if alg == "" {
				if alg, err = runtoken.CurrentAlg(cmd.Context(), d); err != nil {
					return err
				}
			}
			kid, err := runtoken.AddKey(cmd.Context(), d, box, alg, grace, audit.NewService(d, nil).Hook())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New token signing key %s (%s) signs from now on; the previous key stays published for %s, "+
				"and at least the servers' --token-lifetime.\n", kid, alg, grace)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&databaseURL, "database-url", "", "postgres://... of the server's database (empty: SQLite in --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory, holding gantry.db (SQLite)")
	f.StringVar(&keyFile, "encryption-key-file", "", "file holding the master encryption key (default: <data-dir>/encryption.key)")
	f.StringVar(&alg, "alg", "", "algorithm of the new key: RS256 or ES256 (default: the current key's)")
	f.DurationVar(&grace, "grace", 2*time.Hour, "how long the previous key stays published (the servers keep it at least their --token-lifetime)")
	return cmd
}
