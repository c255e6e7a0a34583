package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// config is what `gantry login` saves.
type config struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath is $GANTRY_CONFIG, else $XDG_CONFIG_HOME/gantry/config.json,
// else ~/.config/gantry/config.json.
func configPath() (string, error) {
	if p := os.Getenv("GANTRY_CONFIG"); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the configuration file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "gantry", "config.json"), nil
}

// loadConfig reads the configuration; a missing file is an empty one.
func loadConfig() (config, error) {
	var cfg config
	path, err := configPath()
	if err != nil {
		return cfg, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read configuration: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("read configuration %s: %w", path, err)
	}
	return cfg, nil
}

// saveConfig writes the configuration readable by its owner only, replacing
// the old file atomically.
func saveConfig(cfg config) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("save configuration: %w", err)
	}
	f, err := os.CreateTemp(dir, ".config-*.json") // created with mode 0600
	if err != nil {
		return "", fmt.Errorf("save configuration: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("save configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save configuration: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return "", fmt.Errorf("save configuration: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("save configuration: %w", err)
	}
	return path, nil
}
