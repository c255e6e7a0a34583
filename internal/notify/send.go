package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/truncate"
)

// maxResponse bounds how much of an answer is read.
const maxResponse = 64 << 10

// Headers of every request.
const (
	HeaderSignature = "X-Signature-256"
	// HeaderSignatureSHA1 is the HMAC-SHA1 signature Spacelift sends
	// next to X-Signature-256 (as GitHub does), for receivers written
	// for it: SHA-1 is kept for compatibility only.
	HeaderSignatureSHA1 = "X-Signature"
	HeaderDelivery      = "X-Gantry-Delivery"
	HeaderEvent         = "X-Gantry-Event"
)

// Sign returns the X-Signature-256 value of body under secret:
// "sha256=" and the hex HMAC-SHA256, as GitHub and Spacelift send it.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignSHA1 returns the X-Signature value of body under secret: "sha1="
// and the hex HMAC-SHA1, as GitHub's X-Hub-Signature and Spacelift's
// X-Signature. Only for receivers that still check it: verify
// X-Signature-256.
func SignSHA1(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// send makes one HTTP request for a claimed delivery. The outcome's error
// text is masked: it never holds the secret, a header value or a Slack URL.
func (s *Service) send(ctx context.Context, client *http.Client, e revealedEndpoint, c claimed) outcome {
	start := time.Now()
	o := outcome{at: start}
	req, err := http.NewRequestWithContext(ctx, c.method, e.URL, strings.NewReader(c.body))
	if err != nil {
		o.err, o.final = e.masker.String("cannot build the request: "+unwrapURLError(err)), true
		return o
	}
	for k, v := range e.Headers {
		req.Header.Set(k, v)
	}
	var msgHeaders map[string]string
	if err := json.Unmarshal([]byte(c.headers), &msgHeaders); err == nil {
		for k, v := range msgHeaders {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gantry-Notifications")
	req.Header.Set(HeaderDelivery, c.id)
	if c.event != "" {
		req.Header.Set(HeaderEvent, c.event)
	}
	if e.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(e.Secret, []byte(c.body)))
		req.Header.Set(HeaderSignatureSHA1, SignSHA1(e.Secret, []byte(c.body)))
	}
	resp, err := client.Do(req)
	if err != nil {
		o.dur = time.Since(start)
		if d, ok := deniedError(err); ok {
			// Not retried: the address will not become allowed.
			o.err, o.final = e.masker.String(d.Error()), true
		} else if ctx.Err() != nil {
			o.err = "canceled: the server stopped during the request"
		} else {
			o.err = e.masker.String(unwrapURLError(err))
		}
		return o
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	o.dur, o.status = time.Since(start), resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Mask before cutting, so that no part of a secret is left.
		o.err = e.masker.String(fmt.Sprintf("HTTP %d%s", resp.StatusCode, excerpt([]byte(e.masker.String(string(answer))))))
	}
	return o
}

// unwrapURLError drops the URL that net/http puts in its errors (a Slack
// URL is a secret), keeping the operation and the cause.
func unwrapURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// excerpt is the start of an answer as one line, for the attempt's error.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(dbText(string(b), 0)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = truncate.String(s, 200) + "..."
	}
	return ": " + s
}
