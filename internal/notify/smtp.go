package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"syscall"
	"time"
)

// smtpError is a failed step of an SMTP session: what was being done and
// the cause. final says not to try again.
type smtpError struct {
	step  string
	err   error
	final bool
}

func (e *smtpError) Error() string { return e.step + ": " + e.err.Error() }

// ErrNoSTARTTLS is the error of an endpoint with tls starttls whose server
// does not offer STARTTLS: the message is not sent in plain text instead.
var ErrNoSTARTTLS = errors.New("the SMTP server does not offer STARTTLS, and tls is starttls: " +
	"the message is not sent in plain text (fix the server, or use tls \"tls\" for implicit TLS)")

// classify makes an error of step an smtpError: a reply of the server
// 5xx is permanent, 4xx and network errors are retried.
func classify(step string, err error) *smtpError {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return &smtpError{step: step, err: fmt.Errorf("SMTP %d %s", tp.Code, tp.Msg), final: tp.Code >= 500}
	}
	var se *smtpError
	if errors.As(err, &se) {
		return se
	}
	if _, ok := deniedError(err); ok || errors.Is(err, errNotLoopback) {
		return &smtpError{step: step, err: err, final: true}
	}
	return &smtpError{step: step, err: err}
}

// errNotLoopback refuses a plain-text (tls none) connection to an address
// that is not a loopback one.
var errNotLoopback = errors.New("not a loopback address, and tls is none (plain text)")

// controlSMTPDial is controlDial, and with loopbackOnly (tls none) it also
// refuses every resolved address that is not a loopback one: plain text
// never leaves the host, whatever the name resolves to.
func controlSMTPDial(extra []netip.Prefix, loopbackOnly bool) func(network, address string, c syscall.RawConn) error {
	deny := controlDial(extra)
	return func(network, address string, c syscall.RawConn) error {
		if err := deny(network, address, c); err != nil {
			return err
		}
		if ap, err := netip.ParseAddrPort(address); loopbackOnly && (err != nil || !ap.Addr().Unmap().IsLoopback()) {
			return fmt.Errorf("connecting to %s is not allowed: %w", address, errNotLoopback)
		}
		return nil
	}
}

// tlsConfig is the TLS client configuration for an email endpoint: the
// server's certificate must be valid for its host, signed by a CA of the
// system or of the endpoint's CAPEM.
func tlsConfig(s EmailSettings) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if s.CAPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(s.CAPEM)) {
			return nil, errors.New("the endpoint's CA certificates hold no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// heloName is the name Gantry gives in EHLO: the host's name when it is a
// valid one, else localhost.
func heloName() string {
	if h, err := os.Hostname(); err == nil && validHostname(h) {
		return h
	}
	return "localhost"
}

// sendEmail makes one SMTP session for a claimed email delivery, bounded
// by Timeout from dialing to QUIT. The outcome's error text is masked.
func (s *Service) sendEmail(ctx context.Context, e revealedEndpoint, c claimed) outcome {
	start := time.Now()
	o := outcome{at: start}
	msg, from, to, err := emailMessage(e.Email, c, start)
	if err != nil {
		o.err, o.final = e.masker.String("cannot build the email: "+err.Error()), true
		return o
	}
	err = s.smtpSession(ctx, e.Email, from, to, msg)
	o.dur = time.Since(start)
	if err == nil {
		o.sent = true
		return o
	}
	se := classify("SMTP", err)
	if ctx.Err() != nil {
		o.err = "canceled: the server stopped during the SMTP session"
		return o
	}
	o.err, o.final = e.masker.String(se.Error()), se.final
	return o
}

// emailMessage builds the message of a delivery and its envelope.
func emailMessage(st EmailSettings, c claimed, at time.Time) ([]byte, string, []string, error) {
	var doc emailDoc
	if err := json.Unmarshal([]byte(c.body), &doc); err != nil {
		return nil, "", nil, fmt.Errorf("the stored message is not an email document: %w", err)
	}
	from, err := mail.ParseAddress(st.From)
	if err != nil {
		return nil, "", nil, fmt.Errorf("the from address: %w", err)
	}
	rcpts, err := parseAddresses("to", doc.To)
	if err != nil {
		return nil, "", nil, err
	}
	m := outgoingEmail{From: from, To: rcpts, Subject: doc.Subject, Body: doc.Body, Date: at,
		MessageID: c.id + "@" + messageIDDomain(from), Extra: [][2]string{{HeaderDelivery, c.id}}}
	if c.event != "" {
		m.Extra = append(m.Extra, [2]string{HeaderEvent, c.event})
	}
	b, err := m.build()
	if err != nil {
		return nil, "", nil, err
	}
	env := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		env = append(env, r.Address)
	}
	return b, from.Address, env, nil
}

// smtpSession connects, secures the connection as st.TLS says,
// authenticates, and sends msg.
func (s *Service) smtpSession(ctx context.Context, st EmailSettings, from string, to []string, msg []byte) error {
	timeout := s.Timeout
	deadline := time.Now().Add(timeout)
	cfg, err := tlsConfig(st)
	if err != nil {
		return &smtpError{step: "TLS configuration", err: err, final: true}
	}
	dialer := &net.Dialer{Timeout: timeout, Control: controlSMTPDial(s.DenyCIDRs, st.TLS == TLSNone)}
	addr := net.JoinHostPort(st.Host, strconv.Itoa(st.Port))
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return classify("connecting to "+addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	// The server stopping ends the session at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if st.TLS == TLSImplicit {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return classify("TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, st.Host)
	if err != nil {
		return classify("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(heloName()); err != nil {
		return classify("EHLO", err)
	}
	if st.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return &smtpError{step: "STARTTLS", err: ErrNoSTARTTLS, final: true}
		}
		if err := c.StartTLS(cfg); err != nil {
			return classify("STARTTLS", err)
		}
	}
	if st.Username != "" {
		if _, secure := c.TLSConnectionState(); !secure {
			// Never the case (validation refuses credentials with tls
			// none), but credentials must not go out in plain text.
			return &smtpError{step: "AUTH", err: errors.New("refusing to authenticate over a connection without TLS"), final: true}
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return &smtpError{step: "AUTH", err: errors.New("the SMTP server does not offer AUTH, but the endpoint has a username"), final: true}
		}
		if err := c.Auth(smtp.PlainAuth("", st.Username, st.Password, st.Host)); err != nil {
			return classify("AUTH PLAIN", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return classify("MAIL FROM", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return classify("RCPT TO <"+r+">", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classify("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify("DATA", err)
	}
	if err := w.Close(); err != nil {
		return classify("end of DATA", err)
	}
	// The message is accepted once DATA is: a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}
