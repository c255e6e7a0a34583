package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/run"
)

// instanceFile names this server in its data directory: its built-in
// workers register under it, so that the next start can fail the runs
// they held when the server was killed.
const instanceFile = "instance-id"

// validInstance reports whether s can name a server instance: 1 to 128
// letters, digits, '.', '_' or '-'. Never empty: private workers are
// stored with no instance, and an empty one would match them all.
func validInstance(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// loadInstance returns the instance id kept in dir. When the file is
// missing, or holds no valid id (empty after a crash of an older server
// that wrote it in place, or edited), a new id is made and written in its
// place; fresh reports that, and replaced that a file was there (old is
// what it held). The runs held by the workers of a lost id are then failed
// by the reaper, as lost, once their heartbeats are older than the worker
// timeout.
func loadInstance(dir string) (instance string, fresh, replaced bool, old string, err error) {
	path := filepath.Join(dir, instanceFile)
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, false, "", fmt.Errorf("reading %s: %w", path, err)
	}
	existed := err == nil
	if s := strings.TrimSpace(string(raw)); validInstance(s) {
		return s, false, false, "", nil
	}
	instance = id.New("srv")
	if err := writeFileAtomic(path, []byte(instance+"\n"), 0o600); err != nil {
		return "", false, false, "", fmt.Errorf("writing %s: %w", path, err)
	}
	return instance, true, existed, string(raw), nil
}

// writeFileAtomic replaces path with data durably: a crash leaves either
// the old file or the new one whole, never an empty or partial file. It
// writes a temporary file in the same directory, syncs it, renames it over
// path and syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename: nothing left to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recoverInstance fails the runs that this server's built-in workers held
// when it last stopped without draining (for example, killed).
func (s *Server) recoverInstance(ctx context.Context) error {
	instance, fresh, replaced, old, err := loadInstance(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.instance = instance
	if replaced {
		s.log.Warn("the instance-id file held no valid id: this server has a new one; runs the built-in workers of the old one "+
			"held are failed as lost once their heartbeats are older than --worker-timeout", "file", filepath.Join(s.cfg.DataDir, instanceFile),
			"held", fmt.Sprintf("%.40q", old), "instance", instance)
	}
	if fresh {
		return nil // no worker was registered under an id just made
	}
	lost, err := s.registry.OfInstance(ctx, s.instance)
	if err != nil || len(lost) == 0 {
		return err
	}
	n, err := s.runs.FailLost(ctx, run.Lost{Workers: lost, Reason: "the server restarted while the run was in progress (its built-in worker was lost)"})
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("failed runs left in progress by the previous server process", "runs", n)
	}
	return s.registry.Forget(ctx, s.instance)
}
