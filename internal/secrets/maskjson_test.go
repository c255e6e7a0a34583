package secrets

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestMaskJSON(t *testing.T) {
	m := NewMasker([]string{"hunter2-secret", "12345678"})
	in := `{"variables":{"db_password":{"value":"hunter2-secret"},"pin":{"value":12345678},"n":{"value":7}},
		"resource_changes":[{"change":{"after":{"conn":"postgres://u:hunter2-secret@db/x","tags":{"a":"b","hunter2-secret":"k"}}}}]}`
	out, err := m.JSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "12345678") || !json.Valid(out) {
		t.Fatalf("masked = %s", out)
	}
	if !strings.Contains(string(out), `"n":{"value":7}`) || !strings.Contains(string(out), `"a":"b"`) {
		t.Fatalf("masking changed other values: %s", out)
	}
	if got, _ := NewMasker(nil).JSON([]byte(in)); string(got) != in {
		t.Fatal("a masker without secrets changed the document")
	}
}

func TestVariableForms(t *testing.T) {
	pem := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nshort\n-----END KEY-----"
	m := NewMasker(VariableForms(pem))
	if got := m.String("printing MIIEvQIBADANBgkqhkiG9w0BAQEFAASC now"); strings.Contains(got, "MIIEvQ") {
		t.Fatalf("a line of a multi-line secret was not masked: %q", got)
	}
	if got := VariableForms("one-line-secret"); !slices.Equal(got, []string{"one-line-secret"}) {
		t.Errorf("VariableForms of a one-line value = %q", got)
	}
}

func TestFileForms(t *testing.T) {
	m := NewMasker(FileForms([]byte("  {\n  \"private_key\": \"abcdefghijkl\"\n}\n")))
	for _, printed := range []string{`"private_key": "abcdefghijkl"`, "{\n  \"private_key\": \"abcdefghijkl\"\n}"} {
		if got := m.String(printed); strings.Contains(got, "abcdefghijkl") {
			t.Errorf("mask(%q) = %q", printed, got)
		}
	}
}
