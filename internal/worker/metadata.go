package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxMetadata bounds the custom metadata files of one run together.
const maxMetadata = 4 << 20

// customMetadata reads the files <key>.custom.spacelift.json and
// <key>.custom.gantry.json at the project root (tools like Infracost write
// them in hooks) into one object by key, for the plan policies'
// input.third_party_metadata.custom. A file that is not JSON fails the run:
// a policy reading it would otherwise decide on nothing.
func customMetadata(root string) (map[string]json.RawMessage, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && (strings.HasSuffix(e.Name(), ".custom.spacelift.json") || strings.HasSuffix(e.Name(), ".custom.gantry.json")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	out := map[string]json.RawMessage{}
	total := 0
	for _, name := range names {
		key := strings.TrimSuffix(strings.TrimSuffix(name, ".custom.spacelift.json"), ".custom.gantry.json")
		if key == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return nil, err
		}
		if total += len(data); total > maxMetadata {
			return nil, fmt.Errorf("custom metadata files are larger than %d bytes together", maxMetadata)
		}
		if !json.Valid(data) {
			return nil, fmt.Errorf("custom metadata file %s is not valid JSON", name)
		}
		out[key] = data
	}
	return out, nil
}

// uploadMetadata sends the project's custom metadata files, if any.
func (j *jobRun) uploadMetadata(ctx context.Context) error {
	md, err := customMetadata(j.root)
	if err != nil {
		return fail("reading custom policy metadata: %v", err)
	}
	if len(md) == 0 {
		return nil
	}
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	if err := j.w.proto.PutArtifact(ctx, j.job, "metadata.json", bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("uploading custom policy metadata: %w", err)
	}
	return nil
}
