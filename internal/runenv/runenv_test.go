package runenv

import "testing"

func TestReserved(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"GANTRY_RUN_ID", "the reserved prefix GANTRY_"},
		{"GANTRY_", "the reserved prefix GANTRY_"},
		{"TF_VAR_gantry_run_id", "the reserved prefix TF_VAR_gantry_"},
		{"ro_GANTRY_OIDC_TOKEN", "the reserved prefix GANTRY_"},
		{"SPACELIFT_OIDC_TOKEN", "the reserved name SPACELIFT_OIDC_TOKEN"},
		{"wo_SPACELIFT_OIDC_TOKEN", "the reserved name SPACELIFT_OIDC_TOKEN"},
		{"SPACELIFT_OIDC_TOKEN_X", ""},
		{"TF_VAR_spacelift_run_id", ""}, // overridable, as in Spacelift
		{"TF_LOG", ""},
		{"gantry_lower", ""},
		{"TF_VAR_GANTRY_upper", ""},
	} {
		if got := Reserved(tt.name); got != tt.want {
			t.Errorf("Reserved(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
