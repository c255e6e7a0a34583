package db

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://gantry@db/gantry?sslmode=require", "postgres://gantry@db/gantry?sslmode=require"},
		{"postgres://gantry:SECRET@db:5432/gantry", "postgres://gantry:redacted@db:5432/gantry"},
		{"postgres://u@h/db?sslmode=disable&password=SECRET", "postgres://u@h/db?password=redacted&sslmode=disable"},
		{"postgresql://u@h/db?PassWord=SECRET&sslpassword=SECRET", "postgresql://u@h/db?PassWord=redacted&sslpassword=redacted"},
		{"postgres://u:SEC%40RET@h/db", "postgres://u:redacted@h/db"},
		// Ambiguous: pgx and net/url split these differently.
		{"postgres://gantry:SEC@RET@db/gantry", "redacted"},
		{"postgres://u:12/SECRET@h/db", "redacted"},
		{"postgres://u:SE#CRET@h/db", "redacted"},
		{"postgres://u:SE?CRET@h/db", "redacted"},
		{"postgres://h?password=SEC@RET", "redacted"},
		{"host=db user=gantry password=SECRET dbname=gantry", "host=db user=gantry password=redacted dbname=gantry"},
		{"host=db password = 'SE CR\\'ET' sslpassword=SECRET", "host=db password=redacted sslpassword=redacted"},
	}
	for _, tt := range tests {
		got := RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "SEC") || strings.Contains(got, "RET") {
			t.Errorf("RedactURL(%q) = %q: shows the password", tt.in, got)
		}
	}
}
