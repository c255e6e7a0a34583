package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/server"
)

func init() { extraCommands = append(extraCommands, adminCommand) }

// adminCommand groups the commands that work on the server's database
// directly, not through the API.
func adminCommand() *cobra.Command {
	return group("admin", "Operate on the server's database and keys directly (not through the API)",
		rotateKeyCommand(), generateKeyCommand(), rotateSigningKeyCommand(), pruneCommand())
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
	var databaseURL, dataDir, oldFile, newFile, keyFile string
	var data bool
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-wrap the data key under a new master encryption key, or (--data) re-encrypt everything under a new data key",
		Long: `Re-wrap the data key under a new master encryption key, or (--data)
re-encrypt everything under a new data key.

Everything Gantry encrypts at rest is sealed with a data key, stored only
wrapped by the master key (--encryption-key of gantry server).

Without --data, this command unwraps the data key with the old master key
and wraps it with the new one, in one transaction; no data is re-encrypted.
Servers already running keep working; restart each with the new key:
started with the old key, a server refuses to start. The keys are read from
--old-key-file and --new-key-file (or GANTRY_OLD_KEY_FILE and
GANTRY_NEW_KEY_FILE), else from GANTRY_OLD_KEY and GANTRY_NEW_KEY; never
from the command line. Make a new key with gantry admin generate-key.

With --data, it makes a new random data key, re-encrypts every encrypted
value (secrets, state versions, run artifacts, endpoint secrets, signing
keys...) under it and stores it wrapped by the master key, in one
transaction: interrupted, it changes nothing. The old data key then opens
nothing in the database (backups taken before still need it, and the old
master key). Every server must be stopped: the command refuses while one
holds the data directory or, on PostgreSQL, while one is alive, and keeps
servers from starting until it is done. The master key is read from
--encryption-key-file (or GANTRY_ENCRYPTION_KEY_FILE, GANTRY_ENCRYPTION_KEY),
default <data-dir>/encryption.key; it does not change.`,
		Example: `  gantry admin generate-key > new.key
  gantry admin rotate-key --data-dir ./gantry-data --old-key-file ./gantry-data/encryption.key --new-key-file new.key
  mv new.key ./gantry-data/encryption.key   # then restart the server

  # with every server stopped:
  gantry admin rotate-key --data --data-dir ./gantry-data
  gantry admin rotate-key --data --database-url postgres://... --encryption-key-file /run/secrets/gantry.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" && dataDir == "" {
				return usageErrorf("--database-url or --data-dir is required")
			}
			if data {
				if oldFile != "" || newFile != "" {
					return usageErrorf("--data keeps the master key (--encryption-key-file): rotate the master key with a second rotate-key, without --data")
				}
				return rotateDataKey(cmd, databaseURL, dataDir, keyFile)
			}
			if keyFile != "" {
				return usageErrorf("--encryption-key-file goes with --data; without it, give --old-key-file and --new-key-file")
			}
			oldKey, err := readKey("old", oldFile)
			if err != nil {
				return err
			}
			newKey, err := readKey("new", newFile)
			if err != nil {
				return err
			}
			d, err := openAdminDB(cmd, databaseURL, dataDir)
			if err != nil {
				return err
			}
			defer d.Close()
			var info secrets.DataKeyInfo
			err = d.Tx(cmd.Context(), func(ctx context.Context) error {
				var err error
				if info, err = secrets.RotateMasterKey(ctx, d, oldKey, newKey); err != nil {
					return err
				}
				return audit.NewService(d, nil).Hook().Record(ctx, "encryption_key.rotate", "data_key", info.ID, "root",
					nil, map[string]any{"data_key": info.ID, "master_key_version": info.MasterVersion})
			})
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
			fmt.Fprintln(out, "Whoever holds the old key and a copy of the database from before can still read the data:")
			fmt.Fprintln(out, "if the old key leaked, also run gantry admin rotate-key --data (see docs/operations.md).")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&databaseURL, "database-url", "", "postgres://... of the server's database (empty: SQLite in --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory, holding gantry.db (SQLite)")
	f.StringVar(&oldFile, "old-key-file", "", "file holding the current master key (default: GANTRY_OLD_KEY)")
	f.StringVar(&newFile, "new-key-file", "", "file holding the new master key (default: GANTRY_NEW_KEY)")
	f.BoolVar(&data, "data", false, "re-encrypt everything under a new data key (every server stopped); the master key stays")
	f.StringVar(&keyFile, "encryption-key-file", "", "with --data: file holding the master encryption key (default: <data-dir>/encryption.key)")
	return cmd
}

// rotateDataKey is rotate-key --data.
func rotateDataKey(cmd *cobra.Command, databaseURL, dataDir, keyFile string) error {
	master, err := readMasterKey(keyFile, dataDir)
	if err != nil {
		return err
	}
	defer clear(master)
	if dataDir != "" {
		// The lock a server holds on its data directory: refused while
		// one runs there, and none starts there until this is done.
		unlock, err := dirlock.Lock(dataDir)
		if errors.Is(err, dirlock.ErrInUse) {
			return fmt.Errorf("data directory %s is in use by a running gantry server: stop it first (a running server keeps the old data key); nothing was changed", dataDir)
		}
		if err != nil {
			return fmt.Errorf("locking the data directory: %w", err)
		}
		defer unlock()
	}
	d, err := openAdminDB(cmd, databaseURL, dataDir)
	if err != nil {
		return err
	}
	defer d.Close()
	old, next, err := server.RotateDataKey(cmd.Context(), d, master)
	if errors.Is(err, secrets.ErrWrongKey) {
		return errors.New("the encryption key does not match this database: nothing was changed")
	}
	if err != nil {
		return fmt.Errorf("rotating the data key: %w", err)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Re-encrypted every encrypted value under the new data key %s (it replaces %s), wrapped by the same master key.\n", next.ID, old.ID)
	fmt.Fprintln(out, "The old data key opens nothing in the database any more; backups taken before still open with the old keys.")
	return nil
}

// openAdminDB opens the server's database, never creating a SQLite one
// where there is none.
func openAdminDB(cmd *cobra.Command, databaseURL, dataDir string) (*db.DB, error) {
	if databaseURL == "" {
		path := filepath.Join(dataDir, "gantry.db")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database at %s: %w", path, err)
		}
	}
	d, err := db.Open(cmd.Context(), databaseURL, dataDir, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	return d, nil
}

// readMasterKey reads the master key from keyFile, else
// GANTRY_ENCRYPTION_KEY, else <dataDir>/encryption.key.
func readMasterKey(keyFile, dataDir string) ([]byte, error) {
	if keyFile == "" && os.Getenv("GANTRY_ENCRYPTION_KEY") == "" && dataDir != "" {
		keyFile = filepath.Join(dataDir, "encryption.key")
	}
	text := os.Getenv("GANTRY_ENCRYPTION_KEY")
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
		text = string(b)
	}
	master, err := secrets.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return master, nil
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
			master, err := readMasterKey(keyFile, dataDir)
			if err != nil {
				return err
			}
			d, err := openAdminDB(cmd, databaseURL, dataDir)
			if err != nil {
				return err
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
