// Package secrets encrypts data at rest with AES-256-GCM, and masks secret
// values in text. Data is sealed with a data key that is stored only
// wrapped by the master key the operator controls (envelope encryption:
// see UnlockDataKey and RotateMasterKey).
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// version prefixes every sealed value so the format can evolve.
const version byte = 1

// Box seals and opens values with one AES-256-GCM key.
type Box struct{ aead cipher.AEAD }

// NewBox makes a Box from a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext; aad binds the ciphertext to its place (for
// example "state:<stack>") so it cannot be moved to another row.
func (b *Box) Seal(plaintext []byte, aad string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	_, _ = rand.Read(nonce)
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(aad))
}

// Open decrypts a value made by Seal with the same aad.
func (b *Box) Open(sealed []byte, aad string) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("sealed value is malformed")
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(aad))
	if err != nil {
		return nil, errors.New("sealed value does not decrypt with this key (wrong key or tampered data)")
	}
	return pt, nil
}

// Plaintext is a value read into memory with room around it to be sealed
// where it lies (Box.SealPlaintext): a large value (a state, a plan JSON)
// is then held once, not once in clear and once sealed.
type Plaintext struct{ buf []byte }

// GCM's standard nonce and tag sizes (NewBox uses cipher.NewGCM).
const (
	nonceSize = 12
	tagSize   = 16
	headroom  = 1 + nonceSize
)

// NewPlaintext returns room for n bytes of plaintext (Bytes).
func NewPlaintext(n int) *Plaintext {
	return &Plaintext{buf: make([]byte, headroom+n, headroom+n+tagSize)}
}

// Bytes returns the plaintext, to fill or read before it is sealed.
func (p *Plaintext) Bytes() []byte { return p.buf[headroom:] }

// Truncate keeps the first n bytes of the plaintext.
func (p *Plaintext) Truncate(n int) { p.buf = p.buf[:headroom+n] }

// SealPlaintext is Seal of p.Bytes() in p's own memory: p holds the sealed
// value afterwards, and its plaintext is gone.
func (b *Box) SealPlaintext(p *Plaintext, aad string) []byte {
	buf := p.buf
	p.buf = nil
	if b.aead.NonceSize() != nonceSize || b.aead.Overhead() != tagSize {
		return b.Seal(buf[headroom:], aad)
	}
	buf[0] = version
	nonce := buf[1:headroom]
	_, _ = rand.Read(nonce)
	// The ciphertext is written over the plaintext (an exact overlap, which
	// cipher.AEAD allows) and the tag into the spare capacity.
	return b.aead.Seal(buf[:headroom], nonce, buf[headroom:], []byte(aad))
}

// OpenInPlace is Open that decrypts into sealed's own memory: the plaintext
// returned shares it, and sealed is no longer a sealed value (whether or
// not it opens).
func (b *Box) OpenInPlace(sealed []byte, aad string) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("sealed value is malformed")
	}
	ct := sealed[1+ns:]
	pt, err := b.aead.Open(ct[:0], sealed[1:1+ns], ct, []byte(aad))
	if err != nil {
		return nil, errors.New("sealed value does not decrypt with this key (wrong key or tampered data)")
	}
	return pt, nil
}

// SealString seals s and returns base64 text for TEXT columns.
func (b *Box) SealString(s, aad string) string {
	return base64.StdEncoding.EncodeToString(b.Seal([]byte(s), aad))
}

// OpenString reverses SealString.
func (b *Box) OpenString(s, aad string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", errors.New("sealed value is not base64")
	}
	pt, err := b.Open(raw, aad)
	return string(pt), err
}

// ParseKey reads a 32-byte key written as 64 hex characters or base64.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("encryption key must be 32 bytes written as 64 hex characters or base64")
}

// LoadOrCreateKey returns the key given in configured (hex or base64), or
// the one stored in <dataDir>/encryption.key, creating that file (mode 0600)
// with a fresh random key when it does not exist.
func LoadOrCreateKey(configured, dataDir string) (key []byte, created bool, err error) {
	if key, err = LoadKey(configured, dataDir); key != nil || err != nil {
		return key, false, err
	}
	key, err = CreateKey(dataDir)
	return key, err == nil, err
}

// LoadKey returns the key given in configured (hex or base64), or the one
// stored in <dataDir>/encryption.key; nil and no error when neither is
// there.
func LoadKey(configured, dataDir string) ([]byte, error) {
	if configured != "" {
		return ParseKey(configured)
	}
	path := filepath.Join(dataDir, "encryption.key")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// CreateKey writes a fresh random key to <dataDir>/encryption.key (mode
// 0600), which must not exist, and returns it.
func CreateKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "encryption.key")
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}
