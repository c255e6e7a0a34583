package run

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"slices"
)

// MaxRuntimeValue bounds the value of a variable a RuntimeConfig keeps:
// longer ones are left out (policies rarely read such blobs, and every run
// keeps its own copy).
const MaxRuntimeValue = 64 << 10

// RuntimeConfig is what a run ran with, as policies see it (Spacelift's
// runtime_config): the stack's project root and tool version (as set, ""
// for whatever the worker has), the hooks of the stack and its contexts by
// phase (before_init, after_plan, ... as Spacelift names them), and the
// plain environment variables of both. Secrets are never in it.
type RuntimeConfig struct {
	ProjectRoot string              `json:"project_root"`
	ToolVersion string              `json:"terraform_version"`
	Hooks       map[string][]string `json:"hooks,omitempty"`
	Environment map[string]string   `json:"environment,omitempty"`
}

// AddEnv adds a variable, unless it is secret or its value is longer than
// MaxRuntimeValue.
func (c *RuntimeConfig) AddEnv(name, value string, secret bool) {
	if secret || len(value) > MaxRuntimeValue {
		return
	}
	if c.Environment == nil {
		c.Environment = map[string]string{}
	}
	c.Environment[name] = value
}

// SetHooks sets the commands of a hook phase (an empty list is left out).
func (c *RuntimeConfig) SetHooks(phase string, cmds []string) {
	if len(cmds) == 0 {
		delete(c.Hooks, phase)
		return
	}
	if c.Hooks == nil {
		c.Hooks = map[string][]string{}
	}
	c.Hooks[phase] = slices.Clone(cmds)
}

// Equal reports whether two configurations are the same.
func (c RuntimeConfig) Equal(o RuntimeConfig) bool {
	return c.ProjectRoot == o.ProjectRoot && c.ToolVersion == o.ToolVersion &&
		maps.EqualFunc(c.Hooks, o.Hooks, slices.Equal) && maps.Equal(c.Environment, o.Environment)
}

// SetRuntimeConfig records what a run's plan (or task) job runs with: what
// policies see of it from then on (runtime_config), and the tool, which an
// apply job after a confirmation uses (the plan JSON's upload records its
// version). One statement: it is on every run's way to its worker.
func (s *Service) SetRuntimeConfig(ctx context.Context, runID string, c RuntimeConfig, tool string) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `UPDATE runs SET runtime_config = $2, tool = $3 WHERE id = $1`, runID, string(data), tool)
	return err
}

// RuntimeConfig returns what a run ran with, nil if no job of it ever
// started (or it ran before Gantry recorded it).
func (s *Service) RuntimeConfig(ctx context.Context, runID string) (*RuntimeConfig, error) {
	var data string
	err := s.db.QueryRow(ctx, `SELECT runtime_config FROM runs WHERE id = $1`, runID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeRuntimeConfig(data)
}

// PreviousRuntimeConfig returns what the newest run of the stack before
// runID that started a job ran with (nil if none).
func (s *Service) PreviousRuntimeConfig(ctx context.Context, stackID, runID string) (*RuntimeConfig, error) {
	var data string
	err := s.db.QueryRow(ctx, `SELECT runtime_config FROM runs WHERE stack_id = $1 AND id < $2 AND runtime_config <> ''
		ORDER BY id DESC LIMIT 1`, stackID, runID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeRuntimeConfig(data)
}

func decodeRuntimeConfig(data string) (*RuntimeConfig, error) {
	if data == "" {
		return nil, nil
	}
	var c RuntimeConfig
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return nil, err
	}
	return &c, nil
}
