package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	b, err := NewBox(k)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Seal([]byte("hello"), "state:a")
	if bytes.Contains(s, []byte("hello")) {
		t.Fatal("plaintext visible")
	}
	got, err := b.Open(s, "state:a")
	if err != nil || string(got) != "hello" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := b.Open(s, "state:b"); err == nil {
		t.Fatal("opened with other aad")
	}
	s[len(s)-1] ^= 1
	if _, err := b.Open(s, "state:a"); err == nil {
		t.Fatal("opened tampered value")
	}
	other, _ := NewBox(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(b.Seal([]byte("x"), ""), ""); err == nil {
		t.Fatal("opened with other key")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreateKey("", dir)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "encryption.key"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	k2, created, err := LoadOrCreateKey("", dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatal("reload differs")
	}
	if _, _, err := LoadOrCreateKey("short", dir); err == nil {
		t.Fatal("accepted bad key")
	}
	hexKey := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	k3, _, err := LoadOrCreateKey(hexKey, dir)
	if err != nil || k3[31] != 0x1f {
		t.Fatalf("hex key: %v", err)
	}
}

func TestMasker(t *testing.T) {
	m := NewMasker([]string{"s3cr3t-value", "ab"})
	cases := map[string]string{
		"token=s3cr3t-value done":  "token=***** done",
		"b64 czNjcjN0LXZhbHVl end": "b64 ***** end",
		"ab stays":                 "ab stays",
	}
	for in, want := range cases {
		if got := m.String(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
	q := NewMasker([]string{`p"q\r`})
	if got := q.String(`{"v":"p\"q\\r"}`); got != `{"v":"*****"}` {
		t.Errorf("json-escaped: %q", got)
	}
}

// TestSealInPlace: a value sealed where it lies (SealPlaintext) opens with
// Open, one opened in place (OpenInPlace) is the value Seal sealed, and
// neither allocates a second buffer of the value's size.
func TestSealInPlace(t *testing.T) {
	b, err := NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("state "), 1000)
	p := NewPlaintext(len(value))
	copy(p.Bytes(), value)
	mem := &p.Bytes()[0]
	sealed := b.SealPlaintext(p, "state:a")
	if &sealed[headroom] != mem {
		t.Fatal("SealPlaintext did not seal in the plaintext's memory")
	}
	if bytes.Contains(sealed, []byte("state state")) {
		t.Fatal("plaintext visible")
	}
	got, err := b.Open(sealed, "state:a")
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Open of a value sealed in place = %v", err)
	}
	again := b.Seal(value, "state:a")
	opened, err := b.OpenInPlace(again, "state:a")
	if err != nil || !bytes.Equal(opened, value) {
		t.Fatalf("OpenInPlace = %v", err)
	}
	if &opened[0] != &again[headroom] {
		t.Fatal("OpenInPlace did not open in the sealed value's memory")
	}
	tampered := b.Seal(value, "state:a")
	tampered[len(tampered)-1] ^= 1
	if _, err := b.OpenInPlace(tampered, "state:a"); err == nil {
		t.Fatal("OpenInPlace opened a tampered value")
	}
	p = NewPlaintext(10)
	copy(p.Bytes(), "0123456789")
	p.Truncate(4)
	if got, err := b.Open(b.SealPlaintext(p, ""), ""); err != nil || string(got) != "0123" {
		t.Fatalf("a truncated plaintext opens as %q, %v", got, err)
	}
}
