package server

import (
	"fmt"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/retention"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// check validates what can be told wrong from the configuration alone,
// before Run listens or writes anything: a start refused later would
// leave a data directory, a database and keys behind.
func (c *Config) check() error {
	if c.AdminToken != "" && len(c.AdminToken) < auth.MinTokenLength {
		return fmt.Errorf("--admin-token (GANTRY_ADMIN_TOKEN): an API token must be at least %d characters", auth.MinTokenLength)
	}
	if c.EncryptionKeyFile != "" && c.EncryptionKey == "" {
		// Not <data-dir>/encryption.key instead: the operator chose a file.
		_, source := c.keySource()
		return fmt.Errorf("encryption key: %s is empty", source)
	}
	if c.EncryptionKey != "" {
		key, err := secrets.ParseKey(c.EncryptionKey)
		if err != nil {
			_, source := c.keySource()
			return fmt.Errorf("encryption key from %s: %w", source, err)
		}
		clear(key)
	}
	if err := (retention.Policy{RunAge: c.RunRetention, StateVersions: c.StateRetentionVersions}).Check(); err != nil {
		return err
	}
	if err := db.CheckURL(c.DatabaseURL); err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	if err := runtoken.CheckAlg(c.TokenAlg); err != nil {
		return fmt.Errorf("--token-signing-alg: %w", err)
	}
	switch {
	case c.TokenIssuer != "":
		if err := runtoken.CheckIssuer(c.TokenIssuer); err != nil {
			return fmt.Errorf("--token-issuer: %w", err)
		}
	case c.PublicURL != "":
		if err := runtoken.CheckIssuer(c.PublicURL); err != nil {
			return fmt.Errorf("--public-url (the default token issuer): %w", err)
		}
	}
	return nil
}
