package worker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

func TestMaskJSON(t *testing.T) {
	m := secrets.NewMasker([]string{"hunter2-secret", "12345678"})
	in := `{"variables":{"db_password":{"value":"hunter2-secret"},"pin":{"value":12345678},"n":{"value":7}},
		"resource_changes":[{"change":{"after":{"conn":"postgres://u:hunter2-secret@db/x","tags":{"a":"b","hunter2-secret":"k"}}}}]}`
	out, err := maskJSON(m, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "12345678") || !json.Valid(out) {
		t.Fatalf("masked = %s", out)
	}
	if !strings.Contains(string(out), `"n":{"value":7}`) || !strings.Contains(string(out), `"a":"b"`) {
		t.Fatalf("masking changed other values: %s", out)
	}
	if got, _ := maskJSON(secrets.NewMasker(nil), []byte(in)); string(got) != in {
		t.Fatal("a job without secrets changed its plan JSON")
	}
}

func TestSecretLines(t *testing.T) {
	pem := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nshort\n-----END KEY-----"
	lines := secretLines([]workerapi.EnvVar{{Name: "K", Value: pem, Secret: true}, {Name: "P", Value: "a\nbbbbbbbbbbbb"}})
	m := secrets.NewMasker(lines)
	if got := m.String("printing MIIEvQIBADANBgkqhkiG9w0BAQEFAASC now"); strings.Contains(got, "MIIEvQ") {
		t.Fatalf("a line of a multi-line secret was not masked: %q", got)
	}
	if got := m.String("bbbbbbbbbbbb"); got != "bbbbbbbbbbbb" {
		t.Fatal("a line of a plain variable was masked")
	}
}
