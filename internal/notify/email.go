package notify

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/errs"
)

// TLS modes of an email endpoint.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS before
	// anything else; a server that does not offer it is refused.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "tls"
	// TLSNone sends in plain text; only allowed to a loopback host (a local
	// relay), and never with credentials.
	TLSNone = "none"
)

// Default SMTP ports: submission with STARTTLS, and SMTPS.
const (
	DefaultSMTPPort    = 587
	DefaultSMTPSPort   = 465
	maxRecipients      = 50
	maxSubject         = 900 // bytes, before encoding: the header line stays under 998
	maxCAPEM           = 256 << 10
	maxEmailCredential = 4096
)

// EmailSettings is the SMTP configuration of an email endpoint.
type EmailSettings struct {
	Host string
	Port int // 0: DefaultSMTPPort (DefaultSMTPSPort with TLSImplicit)
	// Username and Password authenticate with AUTH PLAIN, only over TLS;
	// no username means no authentication.
	Username string
	// Password is write-only: empty when read back; HasPassword tells
	// whether one is set.
	Password    string
	HasPassword bool
	TLS         string // TLSStartTLS (default), TLSImplicit or TLSNone
	// CAPEM holds PEM certificates trusted for the server's certificate,
	// on top of the system's (for a private CA or a self-signed server).
	CAPEM string
	From  string   // the From address
	To    []string // default recipients, when a rule names none
}

func (s EmailSettings) isZero() bool {
	return s.Host == "" && s.Port == 0 && s.Username == "" && s.Password == "" && s.TLS == "" &&
		s.CAPEM == "" && s.From == "" && len(s.To) == 0
}

// EmailUpdate changes the fields it sets (non-nil) of an email endpoint.
type EmailUpdate struct {
	Host     *string
	Port     *int
	Username *string
	Password *string // "" removes the password
	TLS      *string
	CAPEM    *string // "" removes the CA certificates
	From     *string
	To       *[]string
}

func (u EmailUpdate) isZero() bool { return u == EmailUpdate{} }

func (u EmailUpdate) apply(s *EmailSettings) {
	set(&s.Host, u.Host)
	set(&s.Port, u.Port)
	set(&s.Username, u.Username)
	set(&s.Password, u.Password)
	set(&s.TLS, u.TLS)
	set(&s.CAPEM, u.CAPEM)
	set(&s.From, u.From)
	set(&s.To, u.To)
}

var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// validHostname reports whether h is a DNS host name: labels of 1 to 63
// letters, digits and inner dashes, separated by dots, maybe a final dot.
// (One regular expression with {0,61} would compile to many KiB.)
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if len(l) > 63 || !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// isLoopbackHost reports whether host names the local host: localhost (or
// a name under .localhost) or a loopback IP address.
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// validateEmail checks and completes the settings of an email endpoint.
func validateEmail(s *EmailSettings) error {
	s.Host = strings.TrimSpace(s.Host)
	if s.Host == "" {
		return errs.E(errs.Invalid, "an email endpoint needs an SMTP host")
	}
	if _, err := netip.ParseAddr(s.Host); err != nil && (len(s.Host) > 253 || !validHostname(s.Host)) {
		return errs.E(errs.Invalid, "SMTP host %q is not a host name or an IP address", s.Host)
	}
	if s.TLS == "" {
		s.TLS = TLSStartTLS
	}
	switch s.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopbackHost(s.Host) {
			return errs.E(errs.Invalid, "tls none (plain text) is only allowed to a loopback SMTP host (localhost, 127.0.0.1, ::1), "+
				"not %q: use starttls or tls", s.Host)
		}
		if s.Username != "" || s.Password != "" {
			return errs.E(errs.Invalid, "SMTP credentials are only sent over TLS: with tls none, set no username or password")
		}
	default:
		return errs.E(errs.Invalid, "tls must be %q, %q or %q, got %q", TLSStartTLS, TLSImplicit, TLSNone, s.TLS)
	}
	if s.Port == 0 {
		s.Port = DefaultSMTPPort
		if s.TLS == TLSImplicit {
			s.Port = DefaultSMTPSPort
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		return errs.E(errs.Invalid, "SMTP port must be from 1 to 65535, got %d", s.Port)
	}
	if strings.ContainsAny(s.Username, "\r\n\x00") || len(s.Username) > maxEmailCredential {
		return errs.E(errs.Invalid, "the SMTP username must be one line of at most %d bytes", maxEmailCredential)
	}
	if strings.ContainsAny(s.Password, "\r\n\x00") || len(s.Password) > maxEmailCredential {
		return errs.E(errs.Invalid, "the SMTP password must be one line of at most %d bytes", maxEmailCredential)
	}
	if s.Password != "" && s.Username == "" {
		return errs.E(errs.Invalid, "an SMTP password needs a username")
	}
	if s.Username != "" && s.Password == "" {
		return errs.E(errs.Invalid, "an SMTP username needs a password")
	}
	if s.CAPEM != "" {
		if len(s.CAPEM) > maxCAPEM {
			return errs.E(errs.Invalid, "the SMTP CA certificates must be at most %d bytes", maxCAPEM)
		}
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(s.CAPEM)) {
			return errs.E(errs.Invalid, "the SMTP CA certificates hold no PEM certificate")
		}
	}
	from, err := parseAddress("from", s.From)
	if err != nil {
		return err
	}
	s.From = formatAddress(from)
	to, err := parseAddresses("to", s.To)
	if err != nil {
		return err
	}
	s.To = formatAddresses(to)
	return nil
}

// parseAddress validates one address (`a@b.example` or
// `Name <a@b.example>`). CR and LF are refused: they would start a new
// header.
func parseAddress(field, s string) (*mail.Address, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errs.E(errs.Invalid, "the %s address is empty", field)
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return nil, errs.E(errs.Invalid, "the %s address %q holds a line break: header injection is refused", field, s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, errs.E(errs.Invalid, "the %s address %q is not an email address: %v", field, s, err)
	}
	if len(a.Address) > 254 || !utf8.ValidString(a.Name) {
		return nil, errs.E(errs.Invalid, "the %s address %q is not an email address", field, s)
	}
	return a, nil
}

// parseAddresses validates a list of recipients (at most maxRecipients,
// duplicates dropped).
func parseAddresses(field string, list []string) ([]*mail.Address, error) {
	if len(list) > maxRecipients {
		return nil, errs.E(errs.Invalid, "at most %d %s addresses, got %d", maxRecipients, field, len(list))
	}
	var out []*mail.Address
	seen := map[string]bool{}
	for _, s := range list {
		a, err := parseAddress(field, s)
		if err != nil {
			return nil, err
		}
		if k := strings.ToLower(a.Address); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// formatAddress is the canonical text of an address: the bare address
// when it has no name, else the quoted, encoded name and the address.
func formatAddress(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.String()
}

func formatAddresses(as []*mail.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, formatAddress(a))
	}
	return out
}

// displaySMTP is the URL shown for an email endpoint.
func displaySMTP(s EmailSettings) string {
	scheme := "smtp"
	if s.TLS == TLSImplicit {
		scheme = "smtps"
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// emailDoc is the stored body of an email delivery: what the rule asked
// for, with the recipients resolved when it was enqueued.
type emailDoc struct {
	Subject string   `json:"subject"`
	Body    string   `json:"body"`
	To      []string `json:"to"`
}

// checkSubject refuses a subject that cannot be one header line.
func checkSubject(subject string) error {
	switch {
	case strings.TrimSpace(subject) == "":
		return errs.E(errs.Invalid, "the email subject is empty")
	case strings.ContainsAny(subject, "\r\n"):
		return errs.E(errs.Invalid, "the email subject holds a line break: header injection is refused")
	case len(subject) > maxSubject:
		return errs.E(errs.Invalid, "the email subject is %d bytes, more than the limit of %d", len(subject), maxSubject)
	}
	return nil
}

// emailBody returns the delivery body of an email message to an endpoint
// whose default recipients are defaults, or why there is none.
func emailBody(m Message, defaults []string) (string, string) {
	if err := checkSubject(m.Subject); err != nil {
		return "", errs.Public(err)
	}
	to := m.To
	if len(to) == 0 {
		to = defaults
	}
	if len(to) == 0 {
		return "", "the email message has no recipients: the rule gives no `to` and the endpoint has no default recipients"
	}
	addrs, err := parseAddresses("to", to)
	if err != nil {
		return "", errs.Public(err)
	}
	b := marshalPlain(emailDoc{Subject: m.Subject, Body: m.Body, To: formatAddresses(addrs)})
	return string(b), tooLarge(b)
}

// outgoingEmail is a message ready to be written as RFC 5322 text.
type outgoingEmail struct {
	From      *mail.Address
	To        []*mail.Address
	Subject   string
	Body      string
	MessageID string // without the angle brackets
	Date      time.Time
	// Extra are further headers (X-Gantry-Delivery, X-Gantry-Event),
	// checked like the others.
	Extra [][2]string
}

// encodeSubject returns the Subject header value: as is when printable
// ASCII, else Q-encoded UTF-8 (RFC 2047), the encoded words folded one per
// line so that no line grows past the limit.
func encodeSubject(s string) string {
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\r\n =?")
}

// build writes the message: CRLF line ends, the body quoted-printable.
// Every header value is checked to be one line, so no text of a policy
// can add a header.
func (m outgoingEmail) build() ([]byte, error) {
	if m.From == nil || len(m.To) == 0 {
		return nil, errs.E(errs.Invalid, "an email needs a sender and at least one recipient")
	}
	if err := checkSubject(m.Subject); err != nil {
		return nil, err
	}
	if !utf8.ValidString(m.Subject) || !utf8.ValidString(m.Body) {
		return nil, errs.E(errs.Invalid, "the email subject and body must be valid UTF-8")
	}
	to := make([]string, 0, len(m.To))
	for _, a := range m.To {
		to = append(to, a.String())
	}
	headers := [][2]string{
		{"From", m.From.String()},
		{"To", strings.Join(to, ",\r\n ")},
		{"Subject", encodeSubject(m.Subject)},
		{"Date", m.Date.Format(time.RFC1123Z)},
		{"Message-ID", "<" + m.MessageID + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
	}
	headers = append(headers, m.Extra...)
	var b bytes.Buffer
	for _, h := range headers {
		// Folding (CRLF then a space) is the only line break allowed.
		if strings.ContainsAny(strings.ReplaceAll(h[1], "\r\n ", ""), "\r\n\x00") {
			return nil, errs.E(errs.Invalid, "email header %s holds a line break: header injection is refused", h[0])
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(m.Body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// messageIDDomain is the right part of Message-IDs: the sender's domain.
func messageIDDomain(from *mail.Address) string {
	if _, d, ok := strings.Cut(from.Address, "@"); ok && validHostname(d) {
		return strings.ToLower(d)
	}
	return "gantry.invalid"
}
