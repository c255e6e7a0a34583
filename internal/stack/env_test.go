package stack_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestEnvSecrets(t *testing.T) {
	const secret = "s3cr3t-value-do-not-leak"
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.create(t, stack.Stack{ID: "app"})
		f.create(t, stack.Stack{ID: "other"})

		set, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "TOKEN", Value: secret, Secret: true})
		if err != nil {
			t.Fatalf("SetEnv secret: %v", err)
		}
		if set.Value != "" {
			t.Fatalf("SetEnv returned the secret value %q", set.Value)
		}
		if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "REGION", Value: "eu-west-1"}); err != nil {
			t.Fatalf("SetEnv plain: %v", err)
		}
		if _, err := f.stacks.SetEnv(f.ctx, "other", stack.EnvVar{Name: "ONLY_OTHER", Value: "x"}); err != nil {
			t.Fatalf("SetEnv other: %v", err)
		}

		listed, err := f.stacks.ListEnv(f.ctx, "app")
		if err != nil {
			t.Fatalf("ListEnv: %v", err)
		}
		want := []stack.EnvVar{{Name: "REGION", Value: "eu-west-1"}, {Name: "TOKEN", Value: "", Secret: true}}
		if !reflect.DeepEqual(listed, want) {
			t.Fatalf("ListEnv = %+v, want %+v", listed, want)
		}

		var raw string
		if err := d.QueryRow(f.ctx, `SELECT value FROM stack_env WHERE stack_id = 'app' AND name = 'TOKEN'`).Scan(&raw); err != nil {
			t.Fatalf("read raw value: %v", err)
		}
		if raw == "" || strings.Contains(raw, secret) || strings.Contains(raw, "do-not-leak") {
			t.Fatalf("secret stored in clear: %q", raw)
		}

		job, err := f.stacks.EnvForJob(f.ctx, "app")
		if err != nil {
			t.Fatalf("EnvForJob: %v", err)
		}
		want = []stack.EnvVar{{Name: "REGION", Value: "eu-west-1"}, {Name: "TOKEN", Value: secret, Secret: true}}
		if !reflect.DeepEqual(job, want) {
			t.Fatalf("EnvForJob = %+v, want %+v", job, want)
		}

		// The ciphertext is bound to its row: moved to another stack it
		// does not decrypt.
		if _, err := d.Exec(f.ctx, `INSERT INTO stack_env (stack_id, name, value, secret) VALUES ('other', 'TOKEN', $1, TRUE)`, raw); err != nil {
			t.Fatal(err)
		}
		_, err = f.stacks.EnvForJob(f.ctx, "other")
		wantKind(t, err, errs.Internal)

		// A secret is never replaced by a plain value (a rotation that
		// forgot --secret); a new secret value replaces it, and a plain
		// variable may become secret.
		_, err = f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "TOKEN", Value: "visible"})
		wantKind(t, err, errs.Conflict)
		if err == nil || !strings.Contains(err.Error(), "TOKEN is secret: set it with --secret") || !strings.Contains(err.Error(), "delete it first") {
			t.Errorf("downgrade refused with %v", err)
		}
		if job, _ := f.stacks.EnvForJob(f.ctx, "app"); job[1] != (stack.EnvVar{Name: "TOKEN", Value: secret, Secret: true}) {
			t.Fatalf("after the refused downgrade: %+v", job[1])
		}
		if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "TOKEN", Value: "rotated", Secret: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "REGION", Value: "eu-west-2", Secret: true}); err != nil {
			t.Fatal(err)
		}
		if job, _ := f.stacks.EnvForJob(f.ctx, "app"); !reflect.DeepEqual(job, []stack.EnvVar{{Name: "REGION", Value: "eu-west-2", Secret: true}, {Name: "TOKEN", Value: "rotated", Secret: true}}) {
			t.Fatalf("after rotating: %+v", job)
		}
		if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "REGION", Value: "eu-west-1"}); !errs.Is(err, errs.Conflict) {
			t.Fatalf("REGION made plain again: %v", err)
		}
		if err := f.stacks.DeleteEnv(f.ctx, "app", "REGION"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: "REGION", Value: "eu-west-1"}); err != nil {
			t.Fatalf("plain after deleting the secret: %v", err)
		}

		if err := f.stacks.DeleteEnv(f.ctx, "app", "TOKEN"); err != nil {
			t.Fatalf("DeleteEnv: %v", err)
		}
		listed, _ = f.stacks.ListEnv(f.ctx, "app")
		if len(listed) != 1 || listed[0].Name != "REGION" {
			t.Fatalf("after DeleteEnv: %+v", listed)
		}
		wantKind(t, f.stacks.DeleteEnv(f.ctx, "app", "TOKEN"), errs.NotFound)
		wantKind(t, f.stacks.DeleteEnv(f.ctx, "missing", "TOKEN"), errs.NotFound)
		_, err = f.stacks.ListEnv(f.ctx, "missing")
		wantKind(t, err, errs.NotFound)
		// A job's caller has read its stack: no existence check.
		if vars, err := f.stacks.EnvForJob(f.ctx, "missing"); err != nil || len(vars) != 0 {
			t.Errorf("EnvForJob(missing) = %v, %v; want nothing", vars, err)
		}
	})
}

func TestSetEnvRefused(t *testing.T) {
	tests := []struct {
		name  string
		stack string
		v     stack.EnvVar
		kind  errs.Kind
	}{
		{"GANTRY_ prefix", "app", stack.EnvVar{Name: "GANTRY_RUN_ID", Value: "x"}, errs.Invalid},
		{"GANTRY_ prefix exactly", "app", stack.EnvVar{Name: "GANTRY_", Value: "x"}, errs.Invalid},
		{"TF_VAR_gantry_ prefix", "app", stack.EnvVar{Name: "TF_VAR_gantry_stack", Value: "x"}, errs.Invalid},
		{"TF_VAR_gantry_ prefix secret", "app", stack.EnvVar{Name: "TF_VAR_gantry_x", Value: "x", Secret: true}, errs.Invalid},
		{"the run's token under Spacelift's name", "app", stack.EnvVar{Name: "SPACELIFT_OIDC_TOKEN", Value: "x"}, errs.Invalid},
		{"a stage of a reserved name", "app", stack.EnvVar{Name: "wo_GANTRY_OIDC_TOKEN", Value: "x"}, errs.Invalid},
		{"empty name", "app", stack.EnvVar{Name: "", Value: "x"}, errs.Invalid},
		{"leading digit", "app", stack.EnvVar{Name: "1ABC", Value: "x"}, errs.Invalid},
		{"dash", "app", stack.EnvVar{Name: "A-B", Value: "x"}, errs.Invalid},
		{"equals sign", "app", stack.EnvVar{Name: "A=B", Value: "x"}, errs.Invalid},
		{"space", "app", stack.EnvVar{Name: "A B", Value: "x"}, errs.Invalid},
		{"newline", "app", stack.EnvVar{Name: "A\nB", Value: "x"}, errs.Invalid},
		{"too long name", "app", stack.EnvVar{Name: "A" + strings.Repeat("B", 255), Value: "x"}, errs.Invalid},
		{"too large value", "app", stack.EnvVar{Name: "BIG", Value: strings.Repeat("v", 256*1024+1)}, errs.TooLarge},
		{"missing stack", "missing", stack.EnvVar{Name: "OK", Value: "x"}, errs.NotFound},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.create(t, stack.Stack{ID: "app"})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.stacks.SetEnv(f.ctx, tt.stack, tt.v)
				wantKind(t, err, tt.kind)
			})
		}
		// Names that look close to the reserved ones are fine.
		for _, name := range []string{"gantry_lower", "TF_VAR_GANTRY_upper", "TF_VAR_region", "_x", "A" + strings.Repeat("B", 254)} {
			if _, err := f.stacks.SetEnv(f.ctx, "app", stack.EnvVar{Name: name, Value: "v"}); err != nil {
				t.Errorf("SetEnv(%q): %v", name, err)
			}
		}
		list, err := f.stacks.ListEnv(f.ctx, "app")
		if err != nil || len(list) != 5 {
			t.Fatalf("ListEnv = %d vars, %v; want the 5 accepted", len(list), err)
		}
	})
}
