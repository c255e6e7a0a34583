package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// alwaysDenied are the addresses no delivery may connect to, whatever
// DenyCIDRs says: link-local (where cloud metadata services answer, e.g.
// 169.254.169.254), the unspecified addresses (which reach the local host)
// and AWS's IPv6 metadata address. A notification policy chooses the
// method, body and headers of a webhook request, which is enough to talk
// to a metadata service.
var alwaysDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// nat64 is the well-known NAT64 prefix: its addresses embed an IPv4
// address (in the last 32 bits) that a NAT64 gateway connects to.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// DeniedAddressError is the error of a connection refused by the deny list.
type DeniedAddressError struct {
	Addr   netip.Addr
	Prefix netip.Prefix // the denied range that holds Addr
}

func (e *DeniedAddressError) Error() string {
	return fmt.Sprintf("connecting to %s is not allowed: it is in the denied range %s", e.Addr, e.Prefix)
}

// denied returns the prefix among alwaysDenied and extra that holds addr,
// looking through IPv4-mapped and NAT64 forms.
func denied(addr netip.Addr, extra []netip.Prefix) (netip.Prefix, bool) {
	addr = addr.Unmap().WithZone("")
	cands := []netip.Addr{addr}
	if addr.Is6() && nat64.Contains(addr) {
		b := addr.As16()
		cands = append(cands, netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	for _, a := range cands {
		for _, lists := range [][]netip.Prefix{alwaysDenied, extra} {
			for _, p := range lists {
				if p.IsValid() && p.Contains(a) {
					return p, true
				}
				// An IPv4 range also denies the IPv4-mapped form, and
				// a mapped range the plain IPv4 address.
				if p.IsValid() && p.Addr().Is4In6() {
					if q, err := p.Addr().Unmap().Prefix(max(p.Bits()-96, 0)); err == nil && q.Contains(a) {
						return p, true
					}
				}
			}
		}
	}
	return netip.Prefix{}, false
}

// controlDial refuses, once an address is resolved and before connecting,
// the connections to denied addresses. Checking in the dialer (rather than
// the URL's host) also covers host names that resolve, or are re-bound, to
// such an address.
func controlDial(extra []netip.Prefix) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("connecting to %s is not allowed: not an IP address", address)
		}
		if p, ok := denied(ap.Addr(), extra); ok {
			return &DeniedAddressError{Addr: ap.Addr().Unmap().WithZone(""), Prefix: p}
		}
		return nil
	}
}

// newClient returns the dispatcher's HTTP client: requests bounded by
// Timeout, redirects not followed, no proxy (the deny list must see the
// address really connected to), and the deny list enforced in the dialer.
func (s *Service) newClient() *http.Client {
	return NewClient(s.Timeout, s.DenyCIDRs)
}

// NewClient returns an HTTP client for outgoing webhooks: requests bounded
// by timeout, redirects not followed, no proxy (the deny list must see the
// address really connected to), and connections to the always-denied
// addresses (link-local, metadata services, unspecified) and to deny
// refused in the dialer, after name resolution. Other packages that send
// webhooks (audit forwarding) use it too.
func NewClient(timeout time.Duration, deny []netip.Prefix) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: controlDial(deny)}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = dialer.DialContext
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		// A redirect is an answer, not a new destination: secrets and
		// signed bodies are not forwarded elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// deniedError returns the deny-list error inside err, if any.
func deniedError(err error) (*DeniedAddressError, bool) {
	var d *DeniedAddressError
	ok := errors.As(err, &d)
	return d, ok
}
