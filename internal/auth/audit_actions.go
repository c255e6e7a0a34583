package auth

// AuditRead lets a principal list, export and verify the audit trail. It
// is checked in the root space: the trail spans every space.
const AuditRead = "audit:read"
