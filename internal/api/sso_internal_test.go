package api

import (
	"net/http/httptest"
	"testing"
)

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/stacks/net":          "/stacks/net",
		"/runs?state=FAILED":   "/runs?state=FAILED",
		"//evil.example":       "/",
		"/\\evil.example":      "/",
		"/\t/evil.example":     "/",
		"/%09/evil.example":    "/%09/evil.example", // stays a path: the browser gets it percent-encoded
		"https://evil.example": "/",
		"/\n/evil":             "/",
		"evil":                 "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tt := range []struct {
		method  string
		headers map[string]string
		ok      bool
	}{
		{"GET", nil, true},
		{"POST", nil, false},
		{"POST", map[string]string{"Origin": "http://gantry.example"}, true},
		{"POST", map[string]string{"Origin": "http://evil.example"}, false},
		{"POST", map[string]string{"Origin": "null"}, false},
		{"DELETE", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://gantry.example"}, false},
		{"POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
	} {
		r := httptest.NewRequest(tt.method, "http://gantry.example/api/v1/stacks", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if err := sameOrigin(r, ""); (err == nil) != tt.ok {
			t.Errorf("%s %v: %v, want ok %v", tt.method, tt.headers, err, tt.ok)
		}
	}
	// With a public URL, the whole origin (scheme and host) must be its.
	for origin, ok := range map[string]bool{
		"https://gantry.example":      true,
		"HTTPS://Gantry.Example":      true,
		"http://gantry.example":       false,
		"https://gantry.example:8443": false,
		"https://evil.example":        false,
	} {
		r := httptest.NewRequest("POST", "http://gantry.example/api/v1/stacks", nil)
		r.Header.Set("Origin", origin)
		if err := sameOrigin(r, "https://gantry.example/"); (err == nil) != ok {
			t.Errorf("Origin %s, public URL https://gantry.example/: %v, want ok %v", origin, err, ok)
		}
	}
}
