package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// The worker reads back what the tool made for it (the plan JSON, the
// saved plan, the packed workspace) without giving the run's code a
// window on it: the run's code runs as the worker's user and may leave a
// process running, which could replace a file of the job's directory by
// its path between the tool writing it and the worker reading it. So the
// plan JSON goes from the tool's pipe into a file without a name
// (privateFile), known only by the worker's descriptor, and the saved plan,
// which OpenTofu reads by its path, has its SHA-256 recorded when the plan
// ends and checked before anything uses it (checkPlan).

// showPlan returns the saved plan's JSON (`show -json`), its secrets
// masked, in a file without a name, at its start. A plan can be far
// larger than the memory a worker should hold (a built-in worker's is the
// server's): it goes from the tool's pipe to a file, is masked from file
// to file a value at a time, and is read back the same way.
func (j *jobRun) showPlan(ctx context.Context, env []string) (*os.File, error) {
	if err := j.checkPlan("showing"); err != nil {
		return nil, err
	}
	raw, err := privateFile(filepath.Dir(j.dir))
	if err != nil {
		return nil, fail("making the plan JSON: %v", err)
	}
	code, err := tofu.RunSplit(ctx, j.bin, j.root, env, raw, j.log, "show", "-json", "-no-color", planFile)
	if err == nil && code != 0 {
		err = fail("show -json failed with code %d", code)
	}
	if err == nil {
		// The tool read the plan by its path: it must still be the one
		// OpenTofu wrote.
		err = j.checkPlan("showing")
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	masked, err := maskJSONFile(j.masker, raw, filepath.Dir(j.dir))
	if err != nil {
		return nil, fail("reading the plan JSON: %v", err)
	}
	return masked, nil
}

// maskJSONFile returns the JSON document of file src with its secrets
// masked, at its start: src itself when it holds none, else a new file
// without a name in dir (src is closed).
func maskJSONFile(m *secrets.Masker, src *os.File, dir string) (*os.File, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		src.Close()
		return nil, err
	}
	found, err := m.InReader(src)
	if err == nil {
		_, err = src.Seek(0, io.SeekStart)
	}
	if err != nil || !found {
		if err != nil {
			src.Close()
			return nil, err
		}
		return src, nil
	}
	defer src.Close()
	out, err := privateFile(dir)
	if err != nil {
		return nil, err
	}
	if err := m.JSONStream(out, src); err != nil {
		out.Close()
		return nil, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// parsePlanFile counts the changes of the plan JSON in f, from its start.
func parsePlanFile(f *os.File) (tofu.Delta, bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return tofu.Delta{}, false, err
	}
	return tofu.ParsePlanReader(f)
}

// putFile uploads the file f, from its start, as the artifact name,
// streamed.
func (j *jobRun) putFile(ctx context.Context, name string, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return j.w.proto.PutArtifact(ctx, j.job, name, f, fi.Size())
}

// planPath is the saved plan's path.
func (j *jobRun) planPath() string { return filepath.Join(j.root, planFile) }

// planRel is the saved plan's path in the packed workspace (j.root has
// the links on the way to src resolved).
func (j *jobRun) planRel() string {
	src := filepath.Join(j.dir, "src")
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	rel, err := filepath.Rel(src, j.planPath())
	if err != nil {
		return planFile
	}
	return filepath.ToSlash(rel)
}

// recordPlan records the SHA-256 of the saved plan OpenTofu just wrote.
func (j *jobRun) recordPlan() error {
	sum, err := fileSum(j.planPath())
	if err != nil {
		return fail("reading the saved plan: %v", err)
	}
	j.planSum = sum
	return nil
}

// checkPlan fails when the saved plan is no longer the one recorded: code
// of the run (a hook, or a process it left running) replaced or changed
// it. doing says what the worker was about to do with it.
func (j *jobRun) checkPlan(doing string) error {
	if j.planSum == nil {
		return fail("no saved plan was recorded: not %s it", doing)
	}
	sum, err := fileSum(j.planPath())
	if err != nil {
		return fail("reading the saved plan %s before %s it: %v", planFile, doing, err)
	}
	if !bytes.Equal(sum, j.planSum) {
		return errPlanChanged(doing)
	}
	return nil
}

func errPlanChanged(doing string) error {
	return fail("the saved plan %s changed after OpenTofu wrote it (code of the run, or a process it left running, "+
		"replaced it): not %s it", planFile, doing)
}

func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// privateFile returns a new empty file in dir that has no name: only the
// returned descriptor reaches it (see private_linux.go).
func privateFile(dir string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if f, err := openUnnamed(dir); err == nil {
		return f, nil
	}
	// Where the file system has no unnamed files: a name removed at once.
	f, err := os.CreateTemp(dir, ".gantry-private-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("removing %s: %w", f.Name(), err)
	}
	return f, nil
}
