package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/seal"
)

// workerpoolKeygen is `gantry workerpool keygen --id P [--out FILE]`: make
// a key pair here, keep the private key in a file, upload the public key.
func (a *app) workerpoolKeygen() *cobra.Command {
	var id, out string
	var replace bool
	cmd := &cobra.Command{
		Use:   "keygen --id P [--out FILE]",
		Short: "Make the pool's key pair: secrets and workspaces get sealed to it",
		Long: `Make a key pair for a worker pool, here: the private key is written to --out
(mode 0600; default <pool>.key) and never sent anywhere; only the public key
is uploaded. From then on the pool's secret values are sealed to the key in
the jobs sent to its workers, and its workers seal the workspaces they hand
from plan to apply, so that the server's database and keys alone cannot open
them. Give the private key to the pool's workers in their environment,
which the runs cannot read (a file they can: see docs/workers.md#security):

  GANTRY_TOKEN="$(cat pool.token)" GANTRY_PRIVATE_KEY="$(cat P.key)" gantry worker --server URL

Replacing an existing key needs --replace: restart the workers with the new
key (a worker whose key does not match its pool's refuses to start).`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if out == "" {
				out = id + ".key"
			}
			cur, err := c.GetWorkerPool(ctx, id)
			if err != nil {
				return err
			}
			if cur.PublicKey != "" && !replace {
				return fmt.Errorf("worker pool %s already has a key pair: a new one makes the old private key useless (jobs in flight and runs waiting for confirmation with a workspace sealed to it fail); pass --replace to do it anyway", id)
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists: refusing to overwrite a private key (remove it or choose --out)", out)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			private, public, err := seal.GenerateKey()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, private); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			pool, err := c.SetWorkerPoolKey(ctx, id, public)
			if err != nil {
				os.Remove(out)
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]string{"pool": pool.ID, "public_key": pool.PublicKey, "private_key_file": out})
			}
			fmt.Fprintf(a.stdout, "Pool %s now seals its secrets and workspaces to its public key.\nPrivate key written to %s (keep it safe; it was not sent anywhere).\nStart the pool's workers with the key in their environment: GANTRY_PRIVATE_KEY=\"$(cat %s)\" (or --private-key-file %s, a file the runs can read too)\n", pool.ID, out, out, out)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "worker pool id")
	cmd.Flags().StringVar(&out, "out", "", "where to write the private key (default <pool>.key)")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace the pool's existing key pair")
	required(cmd, "id")
	return cmd
}
