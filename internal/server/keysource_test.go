package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/server"
)

// A refused encryption key is named by where it came from: the file of
// GANTRY_ENCRYPTION_KEY_FILE, the flag or variable, or
// <data-dir>/encryption.key; and a key file other users can read is warned
// about.
func TestEncryptionKeySource(t *testing.T) {
	dir := t.TempDir()
	s, err := start(t, config(dir))
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	dataDirKey := filepath.Join(dir, "encryption.key")
	right, err := os.ReadFile(dataDirKey)
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	keyFile := filepath.Join(t.TempDir(), "key")

	t.Run("refused keys", func(t *testing.T) {
		tests := []struct {
			name          string
			key, file     string
			dataDirKey    string
			want, notWant string
		}{
			{name: "from GANTRY_ENCRYPTION_KEY_FILE", key: other, file: keyFile,
				want: keyFile + " (GANTRY_ENCRYPTION_KEY_FILE): put the current key in that file", notWant: dataDirKey},
			{name: "from the flag or variable", key: other,
				want: "given with --encryption-key / GANTRY_ENCRYPTION_KEY: set it to the current key", notWant: dataDirKey},
			{name: "from the data directory", dataDirKey: other,
				want: "read from " + dataDirKey + " (no --encryption-key, GANTRY_ENCRYPTION_KEY or GANTRY_ENCRYPTION_KEY_FILE is set): restore the current key there"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.dataDirKey != "" {
					writeKey(t, dataDirKey, tt.dataDirKey, 0o600)
					defer writeKey(t, dataDirKey, string(right), 0o600)
				}
				cfg := config(dir)
				cfg.EncryptionKey, cfg.EncryptionKeyFile = tt.key, tt.file
				s, err := start(t, cfg)
				if err == nil {
					s.stop(t)
					t.Fatal("the server started with another key")
				}
				if !strings.Contains(err.Error(), "does not match this database") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q: want it to say %q", err, tt.want)
				}
				if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
					t.Errorf("error %q names %s, which the key did not come from", err, tt.notWant)
				}
			})
		}
	})

	t.Run("an empty GANTRY_ENCRYPTION_KEY_FILE is refused", func(t *testing.T) {
		cfg := config(dir)
		cfg.EncryptionKeyFile = keyFile // its content, "", is EncryptionKey
		s, err := start(t, cfg)
		if err == nil {
			s.stop(t)
			t.Fatal("the server started with the data directory's key instead")
		}
		if want := keyFile + " (GANTRY_ENCRYPTION_KEY_FILE) is empty"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want %q", err, want)
		}
	})

	t.Run("key files others can read", func(t *testing.T) {
		tests := []struct {
			name string
			file string
			mode os.FileMode
			warn bool
		}{
			{"data directory key 0644", dataDirKey, 0o644, true},
			{"data directory key 0600", dataDirKey, 0o600, false},
			{"GANTRY_ENCRYPTION_KEY_FILE 0640", keyFile, 0o640, true},
			{"GANTRY_ENCRYPTION_KEY_FILE 0400", keyFile, 0o400, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				writeKey(t, tt.file, string(right), tt.mode)
				defer writeKey(t, dataDirKey, string(right), 0o600)
				cfg := config(dir)
				if tt.file == keyFile {
					cfg.EncryptionKey, cfg.EncryptionKeyFile = strings.TrimSpace(string(right)), keyFile
				}
				s, err := start(t, cfg)
				if err != nil {
					t.Fatal(err)
				}
				s.stop(t)
				warned := strings.Contains(s.logs.String(), "the encryption key file can be read by other users")
				if warned != tt.warn || warned && !strings.Contains(s.logs.String(), "path="+tt.file) {
					t.Errorf("warned: %v, want %v (naming %s):\n%s", warned, tt.warn, tt.file, s.logs.String())
				}
			})
		}
	})
}

// writeKey replaces the key file path with key and gives it mode.
func writeKey(t *testing.T, path, key string, mode os.FileMode) {
	t.Helper()
	os.Remove(path)
	if err := os.WriteFile(path, []byte(key), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// A database restored without its key (or a replica started without the
// shared key) is refused before any key is made: a new key cannot read
// it, and a key file generated then would be left behind, looking like the
// key of the database. The error says what is missing and where.
func TestEncryptionKeyMissingForEncryptedDatabase(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		s, err := start(t, encConfig(dir, url, ""))
		if err != nil {
			t.Fatal(err)
		}
		s.stop(t)
		dataDirKey := filepath.Join(dir, "encryption.key")
		if err := os.Remove(dataDirKey); err != nil {
			t.Fatal(err)
		}
		if url != "" {
			// Another data directory on the same database: a replica
			// started without the key.
			dir = t.TempDir()
			dataDirKey = filepath.Join(dir, "encryption.key")
		}
		var logs lockedBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = server.Run(ctx, encConfig(dir, url, ""), io.Discard, slog.New(slog.NewTextHandler(&logs, nil)))
		want := "this database is encrypted, but no encryption key was found at " + dataDirKey +
			" (nor --encryption-key, GANTRY_ENCRYPTION_KEY or GANTRY_ENCRYPTION_KEY_FILE): restore the key from your backup"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start without the key: %v, want %q", err, want)
		}
		if _, err := os.Stat(dataDirKey); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a key file was left behind: %v", err)
		}
		if strings.Contains(logs.String(), "generated a new encryption key") {
			t.Errorf("a key was generated:\n%s", logs.String())
		}
	})
}
