package secrets

import (
	"encoding/json"
	"io"
	"reflect"
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

// JSONStream masks as JSON does, a value at a time: the same document
// once decoded, members in their order.
func TestJSONStreamMasksAsJSON(t *testing.T) {
	m := NewMasker([]string{"hunter2-secret", "12345678"})
	docs := []string{
		`{"variables":{"db_password":{"value":"hunter2-secret"},"pin":{"value":12345678},"n":{"value":7}},
			"resource_changes":[{"change":{"after":{"conn":"postgres://u:hunter2-secret@db/x","tags":{"a":"b","hunter2-secret":"k"}}}}]}`,
		`{"a":[],"b":{},"c":[[1,2.5e3,-0.1],{"x":null,"y":true,"z":false}],"d":"\u003chtml\u003e \"q\" \\ é 😀","e":[{"k":[{}]}]}`,
		`[1,"12345678",12345678,{"v":"hunter2-secret"}]`,
		`"hunter2-secret"`,
		`12345678`,
		`{"format_version":"1.2","resource_changes":[]}`,
	}
	for _, doc := range docs {
		var sb strings.Builder
		if err := m.JSONStream(&sb, strings.NewReader(doc)); err != nil {
			t.Fatalf("JSONStream(%s): %v", doc, err)
		}
		got := sb.String()
		if !json.Valid([]byte(got)) || strings.Contains(got, "hunter2") || strings.Contains(got, "12345678") {
			t.Errorf("JSONStream(%s) = %s", doc, got)
			continue
		}
		want, err := m.JSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		_ = json.Unmarshal([]byte(got), &g)
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("JSONStream(%s) = %s, want as JSON masks it: %s", doc, got, want)
		}
	}
	// Keys masked alike stay apart (JSON, decoding to a map, kept one).
	var sb0 strings.Builder
	if err := m.JSONStream(&sb0, strings.NewReader(`{"hunter2-secret":1,"x-hunter2-secret":2,"*****":3,"12345678":4}`)); err != nil ||
		sb0.String() != `{"*****":1,"x-*****":2,"*****#2":3,"*****#3":4}` {
		t.Errorf("keys masked alike = %s, %v", sb0.String(), err)
	}
	// Order is kept; a document without secrets comes out equal.
	plain := `{"z":1,"a":[true,null,"x"],"m":{"b":2.50,"a":"<&>"}}`
	var sb strings.Builder
	if err := m.JSONStream(&sb, strings.NewReader(plain)); err != nil || sb.String() != plain {
		t.Errorf("JSONStream(%s) = %s, %v; want it unchanged", plain, sb.String(), err)
	}
	for _, bad := range []string{``, `{"a":`, `{"a" 1}`, `[1,]`, `{} {}`} {
		if err := m.JSONStream(io.Discard, strings.NewReader(bad)); err == nil {
			t.Errorf("JSONStream(%q) accepted it", bad)
		}
	}
}

// InReader finds a secret wherever it is, across the pieces it reads.
func TestMaskerInReader(t *testing.T) {
	m := NewMasker([]string{"hunter2-secret"})
	for _, tt := range []struct {
		doc  string
		want bool
	}{
		{strings.Repeat("x", 3<<20), false},
		{strings.Repeat("x", 1<<20-5) + "hunter2-secret" + "y", true}, // across the first piece's end
		{strings.Repeat("x", 2<<20) + "aHVudGVyMi1zZWNyZXQ=", true},   // base64
		{"", false},
	} {
		got, err := m.InReader(strings.NewReader(tt.doc))
		if err != nil || got != tt.want {
			t.Errorf("InReader(%d bytes) = %v, %v; want %v", len(tt.doc), got, err, tt.want)
		}
	}
}
