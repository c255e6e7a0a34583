package seal_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/seal"
)

func TestSealRoundTrip(t *testing.T) {
	priv, pub, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pk, err := seal.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := seal.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if sk.Public() != pub {
		t.Fatal("the public key derived from the private key differs")
	}
	msg := bytes.Repeat([]byte("workspace "), 1000)
	ct, err := pk.Seal("workspace:run-1", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(ct) || bytes.Contains(ct, []byte("workspace workspace")) {
		t.Fatal("sealed data is not marked, or shows the plaintext")
	}
	got, err := sk.Open("workspace:run-1", ct)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %v", err)
	}
	if _, err := sk.Open("workspace:run-2", ct); err == nil {
		t.Fatal("opened with another info")
	}
	other, _, _ := seal.GenerateKey()
	ok, _ := seal.ParsePrivateKey(other)
	if _, err := ok.Open("workspace:run-1", ct); err == nil || !strings.Contains(err.Error(), "wrong pool key") {
		t.Fatalf("opened with another pool's key: %v", err)
	}
	tampered := append([]byte{}, ct...)
	tampered[len(tampered)-1] ^= 1
	if _, err := sk.Open("workspace:run-1", tampered); err == nil {
		t.Fatal("opened tampered data")
	}
	if _, err := sk.Open("x", []byte("plain")); err != seal.ErrNotSealed {
		t.Fatalf("open of plain data: %v", err)
	}
	s, err := pk.SealString("env:X", "hunter2")
	if err != nil || strings.Contains(s, "hunter2") {
		t.Fatal(err)
	}
	if v, err := sk.OpenString("env:X", s); err != nil || v != "hunter2" {
		t.Fatalf("OpenString = %q, %v", v, err)
	}
	for _, bad := range []string{"", "gantry-pool-public-v1:!!", pub[:40], priv} {
		if _, err := seal.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%.30q) accepted", bad)
		}
	}
}
