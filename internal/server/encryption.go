package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gantry-iac/gantry/internal/secrets"
)

// loadKey returns the master key: the configured one, else
// <data-dir>/encryption.key; nil when there is none (see createKey). It
// warns when the file the key came from can be read by other users.
func (s *Server) loadKey() ([]byte, error) {
	file, source := s.cfg.keySource()
	key, err := secrets.LoadKey(s.cfg.EncryptionKey, s.cfg.DataDir)
	if err != nil && s.cfg.EncryptionKey != "" {
		return nil, fmt.Errorf("encryption key from %s: %w", source, err)
	}
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err) // names the file
	}
	if key == nil || file == "" {
		return key, nil
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("the encryption key file can be read by other users: make it readable by the server's user only (chmod 600)",
			"path", file, "mode", fi.Mode().Perm().String())
	}
	return key, nil
}

// createKey generates <data-dir>/encryption.key when no key was found, on
// a database that has none yet. A database that holds encrypted data (a
// backup restored without its key, a data directory lost) is refused:
// a new key cannot read it, and a new key file left behind would hide
// which key is missing.
func (s *Server) createKey(ctx context.Context) ([]byte, error) {
	file, _ := s.cfg.keySource()
	encrypted, err := secrets.Encrypted(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	if encrypted {
		return nil, fmt.Errorf("this database is encrypted, but no encryption key was found at %s (nor --encryption-key, "+
			"GANTRY_ENCRYPTION_KEY or GANTRY_ENCRYPTION_KEY_FILE): restore the key from your backup "+
			"(into that file, or give it with one of those); a new key cannot read this database", file)
	}
	key, err := secrets.CreateKey(s.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	s.log.Warn("generated a new encryption key; back it up: without it the state and secrets cannot be read", "path", file)
	return key, nil
}

// keySource returns the file the master key comes from ("" when it was
// given directly) and how messages name where it comes from.
func (c *Config) keySource() (file, source string) {
	switch {
	case c.EncryptionKeyFile != "":
		return c.EncryptionKeyFile, c.EncryptionKeyFile + " (GANTRY_ENCRYPTION_KEY_FILE)"
	case c.EncryptionKey != "":
		return "", "--encryption-key / GANTRY_ENCRYPTION_KEY"
	}
	file = filepath.Join(c.DataDir, "encryption.key")
	return file, file
}

// checkKey unwraps the data key, which every service's Box uses, with
// the master key (creating or adopting the data key on first start): a
// lost, mistyped or rotated-away master key must stop the server at start,
// not surface later as state that cannot be read. Only the data key's id
// is logged, never a key.
func (s *Server) checkKey(ctx context.Context, master []byte) error {
	box, info, err := secrets.UnlockDataKey(ctx, s.db, master)
	if errors.Is(err, secrets.ErrWrongKey) {
		return fmt.Errorf("%w %s (after `gantry admin rotate-key` only the new key opens the database)", err, s.cfg.wrongKeyHint())
	}
	if err != nil {
		return fmt.Errorf("encryption key: %w", err)
	}
	s.box = box
	switch {
	case info.Created && info.Adopted:
		s.log.Info("adopted the encryption key as the data key of this existing database; it is now stored wrapped by the same key",
			"data_key_id", info.ID)
	case info.Created:
		s.log.Info("created the data key, stored wrapped by the encryption key", "data_key_id", info.ID)
	}
	s.log.Debug("data key unlocked", "data_key_id", info.ID, "master_key_version", info.MasterVersion, "adopted", info.Adopted)
	return nil
}

// wrongKeyHint says where the refused key came from and what to change.
func (c *Config) wrongKeyHint() string {
	file, source := c.keySource()
	switch {
	case c.EncryptionKeyFile != "":
		return fmt.Sprintf("The key was read from %s: put the current key in that file", source)
	case c.EncryptionKey != "":
		return fmt.Sprintf("The key was given with %s: set it to the current key", source)
	}
	return fmt.Sprintf("The key was read from %s (no --encryption-key, GANTRY_ENCRYPTION_KEY or GANTRY_ENCRYPTION_KEY_FILE is set): "+
		"restore the current key there, or give it with one of those", file)
}
