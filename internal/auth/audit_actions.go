package auth

// AuditRead lets a principal list, export and verify the audit trail. It
// is checked in the root space: the trail spans every space.
const AuditRead = "audit:read"

// AuditManage lets a principal create and delete audit forwarding
// endpoints (audit webhooks). It is checked in the root space; reading
// them and their delivery status needs AuditRead.
const AuditManage = "audit:manage"
