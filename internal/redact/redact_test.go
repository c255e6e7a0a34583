package redact

import "testing"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://github.com/opentofu/opentofu/releases/download", "https://github.com/opentofu/opentofu/releases/download"},
		{"http://user:pass@mirror.local:8080/tofu", "http://redacted@mirror.local:8080/tofu"},
		{"https://ghp_TOKEN@mirror.local/tofu", "https://redacted@mirror.local/tofu"},
		{"http://user:p@ss@mirror.local/tofu", "http://redacted@mirror.local/tofu"},
		{"https://bucket.s3/tofu?X-Amz-Signature=SECRET&token=SECRET", "https://bucket.s3/tofu?X-Amz-Signature=redacted&token=redacted"},
		{"http://u:12/SECRET@mirror.local/tofu", "redacted"},
		{"http://u:pa#SECRET@mirror.local/tofu", "redacted"},
		{"user:SECRET@mirror.local", "redacted"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
