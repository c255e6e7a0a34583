-- +goose Up
-- Email endpoints (kind email): the SMTP server, its TLS mode (starttls,
-- tls or none), PEM certificates trusted for it, the sender and the default
-- recipients (a JSON array). The password is sealed with the server's key
-- under an AAD naming the endpoint, like the other endpoint secrets; the
-- other settings are not secret. Teams endpoints need no new column: their
-- URL is sealed in url_sealed, as a Slack URL is.
ALTER TABLE notify_endpoints ADD COLUMN smtp_host TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN smtp_port BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notify_endpoints ADD COLUMN smtp_username TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN smtp_password_sealed TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN smtp_tls TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN smtp_ca_pem TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN mail_from TEXT NOT NULL DEFAULT '';
ALTER TABLE notify_endpoints ADD COLUMN mail_to TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE notify_endpoints DROP COLUMN mail_to;
ALTER TABLE notify_endpoints DROP COLUMN mail_from;
ALTER TABLE notify_endpoints DROP COLUMN smtp_ca_pem;
ALTER TABLE notify_endpoints DROP COLUMN smtp_tls;
ALTER TABLE notify_endpoints DROP COLUMN smtp_password_sealed;
ALTER TABLE notify_endpoints DROP COLUMN smtp_username;
ALTER TABLE notify_endpoints DROP COLUMN smtp_port;
ALTER TABLE notify_endpoints DROP COLUMN smtp_host;
