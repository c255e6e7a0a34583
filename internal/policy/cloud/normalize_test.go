package cloud

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func loadPlan(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// byAddress normalizes a fixture and indexes its entries by address.
func byAddress(t *testing.T, name string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range Normalize(loadPlan(t, name)) {
		m := e.(map[string]any)
		out[m["address"].(string)] = m
	}
	return out
}

// fieldsOf keeps some fields of a kind object, round-tripped through JSON so
// that numbers compare equal whatever their Go type.
func fieldsOf(t *testing.T, e map[string]any, kind string, fields ...string) map[string]any {
	t.Helper()
	if e == nil {
		t.Fatalf("no entry")
	}
	if e["kind"] != kind {
		t.Fatalf("%s: kind = %v, want %s", e["address"], e["kind"], kind)
	}
	obj := e[kind].(map[string]any)
	out := map[string]any{}
	for _, f := range fields {
		v, ok := obj[f]
		if !ok {
			t.Fatalf("%s: no field %s in %v", e["address"], f, obj)
		}
		out[f] = v
	}
	b, _ := json.Marshal(out)
	var norm map[string]any
	_ = json.Unmarshal(b, &norm)
	return norm
}

// TestSameKindSameFields: the AWS, Azure and Google variants of a risky
// (and of a safe) configuration normalize to the same values.
func TestSameKindSameFields(t *testing.T) {
	type variant struct{ aws, azure, google string }
	cases := []struct {
		name, fixture, kind string
		at                  variant
		fields              []string
	}{
		{"public bucket", "risky", KindStorageBucket,
			variant{"aws_s3_bucket.assets", "azurerm_storage_account.assets", "google_storage_bucket.assets"},
			[]string{"public_read", "public_write", "encrypted", "versioning", "customer_managed_key"}},
		{"bucket part", "risky", KindStorageBucket,
			variant{"aws_s3_bucket_acl.assets", "azurerm_storage_container.public", "google_storage_bucket_iam_member.public"},
			[]string{"public_read", "public_write"}},
		{"private bucket", "safe", KindStorageBucket,
			variant{"aws_s3_bucket.assets", "azurerm_storage_account.assets", "google_storage_bucket.assets"},
			[]string{"public_read", "public_write", "encrypted", "versioning"}},
		{"ssh from anywhere", "risky", KindNetworkRule,
			variant{"aws_security_group.bastion", "azurerm_network_security_rule.ssh", "google_compute_firewall.ssh"},
			[]string{"direction", "access", "from_anywhere", "ports", "protocol"}},
		{"https from anywhere", "safe", KindNetworkRule,
			variant{"aws_security_group.web", "azurerm_network_security_group.web", "google_compute_firewall.web"},
			[]string{"direction", "access", "from_anywhere", "ports", "protocol"}},
		{"owner grant", "risky", KindIdentityGrant,
			variant{"aws_iam_role_policy_attachment.deployer_admin", "azurerm_role_assignment.deployer_owner", "google_project_iam_member.deployer_owner"},
			[]string{"owner", "wildcard", "static_key"}},
		{"static key", "risky", KindIdentityGrant,
			variant{"aws_iam_access_key.ci", "azuread_application_password.ci", "google_service_account_key.ci"},
			[]string{"owner", "wildcard", "static_key"}},
		{"narrow grant", "safe", KindIdentityGrant,
			variant{"aws_iam_role_policy.reader", "azurerm_role_assignment.reader", "google_project_iam_member.viewer"},
			[]string{"owner", "wildcard", "static_key"}},
		{"public database", "risky", KindDatabase,
			variant{"aws_db_instance.orders", "azurerm_postgresql_flexible_server.orders", "google_sql_database_instance.orders"},
			[]string{"engine", "public_access", "encrypted", "backups"}},
		{"private database", "safe", KindDatabase,
			variant{"aws_db_instance.orders", "azurerm_postgresql_flexible_server.orders", "google_sql_database_instance.orders"},
			[]string{"engine", "public_access", "encrypted", "backups"}},
		{"public instance", "risky", KindComputeInstance,
			variant{"aws_instance.web", "azurerm_linux_virtual_machine.web", "google_compute_instance.web"},
			[]string{"public_ip"}},
		{"private instance", "safe", KindComputeInstance,
			variant{"aws_instance.web", "azurerm_linux_virtual_machine.web", "google_compute_instance.web"},
			[]string{"public_ip"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			aws := fieldsOf(t, byAddress(t, "aws_"+tc.fixture)[tc.at.aws], tc.kind, tc.fields...)
			azure := fieldsOf(t, byAddress(t, "azure_"+tc.fixture)[tc.at.azure], tc.kind, tc.fields...)
			google := fieldsOf(t, byAddress(t, "google_"+tc.fixture)[tc.at.google], tc.kind, tc.fields...)
			if !reflect.DeepEqual(aws, azure) || !reflect.DeepEqual(aws, google) {
				t.Errorf("differ:\n aws    %v\n azure  %v\n google %v", aws, azure, google)
			}
		})
	}
}

// TestFixtureValues pins the values the library policies rely on.
func TestFixtureValues(t *testing.T) {
	cases := []struct {
		fixture, address, kind string
		want                   map[string]any
	}{
		{"aws_risky", "aws_s3_bucket.assets", KindStorageBucket, map[string]any{"public_read": true, "versioning": true, "name": "acme-assets"}},
		{"aws_risky", "aws_security_group.bastion", KindNetworkRule, map[string]any{"from_anywhere": true, "ports": []any{[]any{22.0, 22.0}}}},
		{"aws_risky", "aws_instance.web", KindComputeInstance, map[string]any{"size": "m5.4xlarge", "public_ip": true}},
		{"azure_risky", "azurerm_linux_virtual_machine.web", KindComputeInstance, map[string]any{"size": "Standard_D16s_v5"}},
		{"google_risky", "google_compute_instance.web", KindComputeInstance, map[string]any{"size": "n2-standard-32"}},
		{"aws_safe", "aws_s3_bucket.assets", KindStorageBucket, map[string]any{"public_read": false, "customer_managed_key": true}},
		{"google_safe", "google_compute_firewall.ssh", KindNetworkRule, map[string]any{"from_anywhere": false}},
	}
	for _, tc := range cases {
		var fields []string
		for k := range tc.want {
			fields = append(fields, k)
		}
		got := fieldsOf(t, byAddress(t, tc.fixture)[tc.address], tc.kind, fields...)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s: got %v, want %v", tc.fixture, tc.address, got, tc.want)
		}
	}
}

func TestEntryCommonFields(t *testing.T) {
	cases := []struct {
		fixture, address, region, cloud, provider string
		tags                                      map[string]any
	}{
		{"aws_risky", "aws_instance.web", "us-east-1", "aws", "aws", map[string]any{"team": "web", "env": "prod", "managed-by": "gantry"}},
		{"aws_safe", "aws_instance.web", "eu-west-1", "aws", "aws", map[string]any{"team": "web", "env": "prod", "managed-by": "gantry", "owner": "platform", "cost-center": "cc-100"}},
		{"azure_risky", "azurerm_linux_virtual_machine.web", "eastus", "azure", "azurerm", map[string]any{"team": "web", "env": "prod"}},
		{"azure_risky", "azurerm_network_security_rule.ssh", "eastus", "azure", "azurerm", map[string]any{}},
		{"azure_risky", "azuread_application_password.ci", "", "azure", "azuread", map[string]any{}},
		{"google_risky", "google_compute_instance.web", "us-central1", "google", "google", map[string]any{"team": "web", "env": "prod", "goog-terraform-provisioned": "true"}},
		{"google_risky", "google_bigquery_dataset.ledger", "us", "google", "google", map[string]any{"protected": "true", "goog-terraform-provisioned": "true"}},
		{"google_safe", "google_compute_firewall.web", "europe-west1", "google", "google", map[string]any{}},
	}
	for _, tc := range cases {
		e := byAddress(t, tc.fixture)[tc.address]
		if e == nil {
			t.Fatalf("%s: no %s", tc.fixture, tc.address)
		}
		got := []any{e["region"], e["cloud"], e["provider"], e["tags"]}
		want := []any{tc.region, tc.cloud, tc.provider, tc.tags}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: got %v, want %v", tc.fixture, tc.address, got, want)
		}
	}
}

func TestOnlyChangedResources(t *testing.T) {
	for _, f := range []string{"aws_risky", "azure_risky", "google_risky"} {
		entries := byAddress(t, f)
		for addr, e := range entries {
			acts := e["actions"].([]any)
			if len(acts) == 1 && (acts[0] == "no-op" || acts[0] == "read") {
				t.Errorf("%s: %s with actions %v", f, addr, acts)
			}
		}
		if _, ok := entries["aws_sns_topic.alerts"]; ok {
			t.Errorf("no-op resource listed")
		}
	}
	// Order follows resource_changes.
	list := Normalize(loadPlan(t, "aws_risky"))
	if first := list[0].(map[string]any)["address"]; first != "aws_s3_bucket.assets" {
		t.Errorf("first entry %v", first)
	}
	if got := Normalize(map[string]any{}); got == nil || len(got) != 0 {
		t.Errorf("empty plan: %#v", got)
	}
}
