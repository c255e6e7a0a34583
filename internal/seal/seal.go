// Package seal seals data to a worker pool's public key, so that only the
// pool's workers (holding the private key) can open it, and the server's
// database and keys alone cannot.
//
// It is HPKE (RFC 9180, Go's crypto/hpke) in base mode with the hybrid
// post-quantum KEM ML-KEM-768 + X25519, HKDF-SHA256 and AES-256-GCM. Keys
// are text: "gantry-pool-public-v1:<base64>" and
// "gantry-pool-private-v1:<base64>". A sealed message starts with Magic.
package seal

import (
	"bytes"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const (
	publicPrefix  = "gantry-pool-public-v1:"
	privatePrefix = "gantry-pool-private-v1:"
)

// Magic starts every sealed message.
var Magic = []byte("GSEAL1\n")

func kem() hpke.KEM   { return hpke.MLKEM768X25519() }
func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// GenerateKey returns a new key pair as text (private, public).
func GenerateKey() (private, public string, err error) {
	k, err := kem().GenerateKey()
	if err != nil {
		return "", "", err
	}
	raw, err := k.Bytes()
	if err != nil {
		return "", "", err
	}
	return privatePrefix + base64.StdEncoding.EncodeToString(raw),
		publicPrefix + base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}

// PublicKey is a pool's public key.
type PublicKey struct{ k hpke.PublicKey }

// PrivateKey is a pool's private key.
type PrivateKey struct{ k hpke.PrivateKey }

func decode(s, prefix, what string) ([]byte, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, fmt.Errorf("not a Gantry pool %s key (it must start with %q)", what, prefix)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("pool %s key: %w", what, err)
	}
	return raw, nil
}

// ParsePublicKey reads a public key.
func ParsePublicKey(s string) (PublicKey, error) {
	raw, err := decode(s, publicPrefix, "public")
	if err != nil {
		return PublicKey{}, err
	}
	k, err := kem().NewPublicKey(raw)
	if err != nil {
		return PublicKey{}, fmt.Errorf("pool public key: %w", err)
	}
	return PublicKey{k}, nil
}

// ParsePrivateKey reads a private key.
func ParsePrivateKey(s string) (PrivateKey, error) {
	raw, err := decode(s, privatePrefix, "private")
	if err != nil {
		return PrivateKey{}, err
	}
	k, err := kem().NewPrivateKey(raw)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("pool private key: %w", err)
	}
	return PrivateKey{k}, nil
}

// Public returns the public key of a private key, as text.
func (p PrivateKey) Public() string {
	return publicPrefix + base64.StdEncoding.EncodeToString(p.k.PublicKey().Bytes())
}

// PublicKey returns the public half.
func (p PrivateKey) PublicKey() PublicKey { return PublicKey{p.k.PublicKey()} }

// Seal encrypts plaintext to the key. info binds the message to its use
// (for example "workspace:<run>"): Open with another info fails.
func (k PublicKey) Seal(info string, plaintext []byte) ([]byte, error) {
	ct, err := hpke.Seal(k.k, kdf(), aead(), []byte(info), plaintext)
	if err != nil {
		return nil, err
	}
	return append(append([]byte{}, Magic...), ct...), nil
}

// ErrNotSealed is returned by Open for data without Magic.
var ErrNotSealed = errors.New("data is not sealed to a pool key")

// Open decrypts a sealed message.
func (p PrivateKey) Open(info string, sealed []byte) ([]byte, error) {
	ct, ok := bytes.CutPrefix(sealed, Magic)
	if !ok {
		return nil, ErrNotSealed
	}
	pt, err := hpke.Open(p.k, kdf(), aead(), []byte(info), ct)
	if err != nil {
		return nil, fmt.Errorf("opening sealed data: wrong pool key, or the data was changed (%v)", err)
	}
	return pt, nil
}

// IsSealed reports whether data is a sealed message.
func IsSealed(data []byte) bool { return bytes.HasPrefix(data, Magic) }

// SealString seals a short text (a secret value) and returns it as base64.
func (k PublicKey) SealString(info, s string) (string, error) {
	b, err := k.Seal(info, []byte(s))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// OpenString opens what SealString made.
func (p PrivateKey) OpenString(info, s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("sealed value: %w", err)
	}
	pt, err := p.Open(info, b)
	return string(pt), err
}
