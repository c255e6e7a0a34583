package cloud

import "strings"

var databaseNormalizers = map[string]normalizer{
	"aws_db_instance":                    awsDatabase,
	"aws_rds_cluster":                    awsDatabase,
	"aws_rds_cluster_instance":           awsDatabase,
	"azurerm_mssql_server":               azureDatabase,
	"azurerm_postgresql_flexible_server": azureDatabase,
	"azurerm_mysql_flexible_server":      azureDatabase,
	"azurerm_postgresql_server":          azureDatabase,
	"azurerm_mysql_server":               azureDatabase,
	"google_sql_database_instance":       googleDatabase,
}

func databaseFields(engine string, public, encrypted, backups, cmk any) map[string]any {
	return map[string]any{
		"engine":               engine,
		"public_access":        public,
		"encrypted":            encrypted,
		"backups":              backups,
		"customer_managed_key": cmk,
	}
}

// positive is true for a number above zero, nil when unknown.
func positive(v any) any {
	n, ok := num(v)
	if !ok {
		return nil
	}
	return n > 0
}

func awsDatabase(_ *plan, c *change) map[string]any {
	v := c.Values
	public := boolp(v["publicly_accessible"])
	encrypted, backups := boolp(v["storage_encrypted"]), positive(v["backup_retention_period"])
	switch c.Type {
	case "aws_rds_cluster":
		public = false // cluster instances carry publicly_accessible
	case "aws_rds_cluster_instance":
		encrypted, backups = nil, nil // the cluster carries them
	}
	cmk := any(nil)
	if encrypted != nil {
		cmk = str(v["kms_key_id"]) != "" && !isUnknown(c.Unknown, "kms_key_id")
	}
	return databaseFields(str(v["engine"]), public, encrypted, backups, cmk)
}

// Azure database servers always encrypt storage (TDE for SQL) and keep
// automated backups (retention at least 7 days); public access is
// public_network_access_enabled unless the server is in a delegated subnet.
func azureDatabase(_ *plan, c *change) map[string]any {
	v := c.Values
	public := boolp(v["public_network_access_enabled"])
	if str(v["delegated_subnet_id"]) != "" {
		public = false
	}
	backups := any(true)
	if _, ok := v["backup_retention_days"]; ok {
		backups = firstKnown(positive(v["backup_retention_days"]), true)
	}
	cmk := len(list(v["customer_managed_key"])) > 0 || str(v["transparent_data_encryption_key_vault_key_id"]) != ""
	engine := map[string]string{
		"azurerm_mssql_server": "sqlserver", "azurerm_postgresql_flexible_server": "postgres",
		"azurerm_postgresql_server": "postgres", "azurerm_mysql_flexible_server": "mysql", "azurerm_mysql_server": "mysql",
	}[c.Type]
	return databaseFields(engine, public, true, backups, cmk)
}

// Cloud SQL is public when it has a public IPv4 address and an authorized
// network that covers the whole internet.
func googleDatabase(_ *plan, c *change) map[string]any {
	v := c.Values
	ip := get(v, "settings", "ip_configuration")
	var public any = false
	if ipv4 := get(ip, "ipv4_enabled"); ipv4 == nil && isUnknown(c.Unknown, "settings") {
		public = nil
	} else if ipv4 != false {
		for _, n := range list(get(ip, "authorized_networks")) {
			if s := str(get(n, "value")); s == "0.0.0.0/0" || s == "::/0" {
				public = true
			}
		}
	}
	backups := boolp(get(v, "settings", "backup_configuration", "enabled"))
	if backups == nil && len(list(get(v, "settings", "backup_configuration"))) == 0 {
		backups = false
	}
	engine := lower(str(v["database_version"]))
	if i := strings.IndexByte(engine, '_'); i > 0 {
		engine = engine[:i]
	}
	return databaseFields(engine, public, true, backups, str(v["encryption_key_name"]) != "")
}
