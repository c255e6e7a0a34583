package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
)

// The export gives each event's change exactly as stored and hashed, so
// that a verifier can hash it as it comes: JSON lines do not re-escape <, >
// and & (Go's default), and CSV has the bytes as they are.
func TestAuditExportChangeExact(t *testing.T) {
	e := newAuditEnv(t)
	change := `{"after":{"note":"a<b>&c` + "\u2028" + `d"}}`
	if _, err := e.audit.Record(context.Background(), audit.Event{Action: "test.record", SubjectType: "test", SubjectID: "x",
		Change: json.RawMessage(change)}); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/api/v1/audit/export?action=test.*", nil)
	if r.status != http.StatusOK {
		t.Fatalf("export = %s", r)
	}
	line := strings.TrimSpace(string(r.body))
	if !strings.Contains(line, `"change":`+change+`,`) {
		t.Fatalf("the JSON line does not hold the change as stored (%s):\n%s", change, line)
	}
	var ev struct {
		Seq      int64           `json:"seq"`
		Change   json.RawMessage `json:"change"`
		Hash     string          `json:"hash"`
		PrevHash string          `json:"prev_hash"`
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev.Change) != change {
		t.Errorf("change %s, want %s", ev.Change, change)
	}
	r = e.do("GET", "/api/v1/audit/export?format=csv&action=test.*", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][10] != change {
		t.Fatalf("csv export: %q, %v; want the change column %s", rows, err, change)
	}
	// The recipe of docs/audit.md over the CSV row gives the stored hash.
	row := rows[1]
	at, err := time.Parse(time.RFC3339Nano, row[1])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	net := func(p string) { fmt.Fprintf(&b, "%d:%s,", len(p), p) }
	net("gantry-audit-v1")
	net(row[12])
	net(row[0])
	net(strconv.FormatInt(at.UnixNano(), 10))
	net(row[2])
	var roles []string
	if row[3] != "" {
		roles = strings.Split(row[3], ";")
	}
	net(strconv.Itoa(len(roles)))
	for _, r := range roles {
		net(r)
	}
	for _, f := range row[4:12] {
		net(f)
	}
	sum := sha256.Sum256([]byte(b.String()))
	if got := hex.EncodeToString(sum[:]); got != row[13] || got != ev.Hash {
		t.Errorf("recomputed hash %s, stored %s", got, row[13])
	}
}
