// Package smtptest runs a real SMTP server for tests: the npm package
// smtp-server (e2e/smtpserver/server.mjs, installed by
// `npm ci --prefix e2e/smtpserver`, which scripts/test.sh runs) on
// 127.0.0.1, offering STARTTLS with a self-signed certificate made here and
// requiring AUTH PLAIN, or offering neither. The messages it receives come
// back to the test with their envelope.
package smtptest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a server.
type Options struct {
	// Username and Password are the credentials AUTH PLAIN accepts.
	Username, Password string
	// NoSTARTTLS starts a server that offers no STARTTLS (smtp-server's
	// disabledCommands) and accepts AUTH and mail in plain text, so that a
	// client falling back to plain text would get its message through.
	NoSTARTTLS bool
}

// Event is one line the server printed: an AUTH attempt or a message.
type Event struct {
	Event  string   `json:"event"` // "auth" or "message"
	User   string   `json:"user"`
	Secure bool     `json:"secure"` // over TLS
	OK     bool     `json:"ok"`     // auth: accepted
	From   string   `json:"from"`   // message: MAIL FROM
	To     []string `json:"to"`     // message: RCPT TO
	Raw    string   `json:"raw"`    // message: the data, as received
	Port   int      `json:"port"`   // listening
}

// Server is a running test SMTP server.
type Server struct {
	Host   string // 127.0.0.1
	Port   int
	CAPEM  string // the server's self-signed certificate (empty with NoSTARTTLS)
	CAFile string // a file holding CAPEM

	mu     sync.Mutex
	events []Event
	stderr strings.Builder
	notify chan struct{}
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Dir returns the directory of the test server's package (e2e/smtpserver
// in the module), failing t when its dependencies are not installed.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("smtptest: no go.mod above the working directory")
		}
		dir = parent
	}
	pkg := filepath.Join(dir, "e2e", "smtpserver")
	if _, err := os.Stat(filepath.Join(pkg, "node_modules", "smtp-server")); err != nil {
		t.Fatalf("the test SMTP server is not installed: run `npm ci --prefix e2e/smtpserver` (scripts/test.sh does): %v", err)
	}
	return pkg
}

// Start starts a server for the test; it stops when the test ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	pkg := Dir(t)
	s := &Server{Host: "127.0.0.1", notify: make(chan struct{}, 1)}
	env := append(os.Environ(), "SMTP_PORT=0", "SMTP_USERNAME="+opt.Username, "SMTP_PASSWORD="+opt.Password)
	if opt.NoSTARTTLS {
		env = append(env, "SMTP_NO_STARTTLS=1")
	} else {
		dir := t.TempDir()
		certPEM, keyPEM, err := SelfSigned("localhost", "127.0.0.1", "::1")
		if err != nil {
			t.Fatal(err)
		}
		s.CAPEM, s.CAFile = string(certPEM), filepath.Join(dir, "cert.pem")
		keyFile := filepath.Join(dir, "key.pem")
		if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "SMTP_CERT_FILE="+s.CAFile, "SMTP_KEY_FILE="+keyFile)
	}
	cmd := exec.Command("node", filepath.Join(pkg, "server.mjs"))
	cmd.Env = env
	cmd.Stderr = &lockedWriter{s: s}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 32<<20)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			if ev.Event == "listening" {
				ready <- ev.Port
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
	}()
	select {
	case s.Port = <-ready:
	case <-time.After(30 * time.Second):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("the test SMTP server did not start: %s", s.stderr.String())
	}
	return s
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

// Events returns what the server printed so far, auth attempts and
// messages, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Event {
	var out []Event
	for _, ev := range s.Events() {
		if ev.Event == "message" {
			out = append(out, ev)
		}
	}
	return out
}

// WaitMessages waits until at least n messages arrived and returns them.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.notify:
		case <-deadline:
			got := len(s.Messages())
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("the test SMTP server got %d messages, want %d (stderr: %s)", got, n, s.stderr.String())
			return nil
		}
	}
}

// SelfSigned returns a self-signed ECDSA certificate for the given DNS
// names and IP addresses, and its key, in PEM.
func SelfSigned(hosts ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "gantry test SMTP server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("smtptest: a certificate needs a host")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
