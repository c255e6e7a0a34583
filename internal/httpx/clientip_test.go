package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.7", " "})
	if err != nil || len(trusted) != 2 {
		t.Fatalf("ParsePrefixes = %v, %v", trusted, err)
	}
	if _, err := ParsePrefixes([]string{"not-an-address"}); err == nil {
		t.Error("a bad range was accepted")
	}
	tests := []struct {
		name, peer string
		xff        []string
		trusted    bool
		want       string
	}{
		{"no trusted proxies: the header is ignored", "203.0.113.5:1234", []string{"1.2.3.4"}, false, "203.0.113.5"},
		{"untrusted peer: ignored", "203.0.113.5:1234", []string{"1.2.3.4"}, true, "203.0.113.5"},
		{"trusted peer: the client it names", "10.1.2.3:1234", []string{"198.51.100.9"}, true, "198.51.100.9"},
		{"the rightmost untrusted hop wins over a forged left part", "10.1.2.3:1234", []string{"1.1.1.1, 198.51.100.9, 192.0.2.7"}, true, "198.51.100.9"},
		{"several headers", "10.1.2.3:1234", []string{"1.1.1.1", "198.51.100.9"}, true, "198.51.100.9"},
		{"only proxies: the leftmost", "10.1.2.3:1234", []string{"10.9.9.9"}, true, "10.9.9.9"},
		{"malformed hop: stop there", "10.1.2.3:1234", []string{"198.51.100.9, garbage"}, true, "10.1.2.3"},
		{"no header", "10.1.2.3:1234", nil, true, "10.1.2.3"},
		{"IPv6 peer", "[2001:db8::1]:443", nil, true, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, h := range tt.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			tr := trusted
			if !tt.trusted {
				tr = nil
			}
			var got string
			WithClientIP(tr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ClientIP(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}
