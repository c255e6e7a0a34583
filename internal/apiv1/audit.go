package apiv1

import (
	"encoding/json"
	"time"
)

// Audit outcomes.
const (
	AuditSuccess = "success"
	AuditDenied  = "denied"
	AuditFailed  = "failed"
)

// AuditEvent is one event of the audit trail. Hash is the hex SHA-256 of
// PrevHash and the other fields (docs/audit.md has the encoding).
type AuditEvent struct {
	Seq         int64           `json:"seq"`
	At          time.Time       `json:"at"` // to the nanosecond
	Actor       string          `json:"actor"`
	Roles       []string        `json:"roles"`
	SourceIP    string          `json:"source_ip"`
	RequestID   string          `json:"request_id"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Space       string          `json:"space"`
	Change      json.RawMessage `json:"change,omitempty"`
	Outcome     string          `json:"outcome"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
}

// AuditVerification is the answer of POST /audit/verify.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Checked  int64  `json:"checked"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	BrokenAt int64  `json:"broken_at,omitempty"`
	Reason   string `json:"reason,omitempty"`
}
