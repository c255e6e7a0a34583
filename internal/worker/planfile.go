package worker

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// showPlan writes the saved plan's JSON (`show -json`), its secrets
// masked, to a file of the job's directory and returns the file's path. A
// plan can be far larger than the memory a worker should hold (a built-in
// worker's is the server's): it goes from the tool to a file, is masked
// from file to file a value at a time, and is read back the same way.
func (j *jobRun) showPlan(ctx context.Context, env []string) (string, error) {
	raw, err := os.CreateTemp(j.dir, "plan-*.json")
	if err != nil {
		return "", fail("making the plan JSON: %v", err)
	}
	defer os.Remove(raw.Name())
	code, err := tofu.RunSplit(ctx, j.bin, j.root, env, raw, j.log, "show", "-json", "-no-color", planFile)
	if cerr := raw.Close(); err == nil && cerr != nil {
		err = fail("making the plan JSON: %v", cerr)
	}
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fail("show -json failed with code %d", code)
	}
	masked := strings.TrimSuffix(raw.Name(), ".json") + "-masked.json"
	if err := maskJSONFile(j.masker, raw.Name(), masked); err != nil {
		return "", fail("reading the plan JSON: %v", err)
	}
	return masked, nil
}

// maskJSONFile writes the JSON document of file src to dst with its
// secrets masked (src itself when it holds none).
func maskJSONFile(m *secrets.Masker, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	found, err := m.InReader(in)
	if err != nil {
		return err
	}
	if !found {
		return os.Link(src, dst)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := m.JSONStream(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// parsePlanFile counts the changes of the plan JSON in file path.
func parsePlanFile(path string) (tofu.Delta, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return tofu.Delta{}, false, err
	}
	defer f.Close()
	return tofu.ParsePlanReader(f)
}

// putFile uploads the file at path as the artifact name, streamed.
func (j *jobRun) putFile(ctx context.Context, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return j.w.proto.PutArtifact(ctx, j.job, name, f, fi.Size())
}
