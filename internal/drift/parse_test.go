package drift

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func readPlan(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, data []byte) Result {
	t.Helper()
	res, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return res
}

// attr is an attribute with its values as JSON text, for comparing.
type attr struct {
	name, before, after string
	sensitive           bool
}

func attrs(r Resource) []attr {
	out := []attr{}
	for _, a := range r.Attributes {
		out = append(out, attr{a.Name, string(a.Before), string(a.After), a.Sensitive})
	}
	return out
}

func byAddress(t *testing.T, res Result, address string) Resource {
	t.Helper()
	for _, r := range res.Resources {
		if r.Address == address {
			return r
		}
	}
	t.Fatalf("no drifted resource %s in %+v", address, res.Resources)
	return Resource{}
}

func TestParsePlan(t *testing.T) {
	res := mustParse(t, readPlan(t, "drift_plan.json"))

	var addresses []string
	for _, r := range res.Resources {
		addresses = append(addresses, r.Address)
	}
	// Sorted by address; the data source and the resource whose values did
	// not change are left out.
	if want := []string{"aws_db_instance.main", "aws_s3_bucket.logs", "module.cdn.google_storage_bucket.assets"}; !reflect.DeepEqual(addresses, want) {
		t.Fatalf("drifted resources %v, want %v", addresses, want)
	}

	bucket := byAddress(t, res, "aws_s3_bucket.logs")
	if bucket.Type != "aws_s3_bucket" || bucket.Provider != "registry.opentofu.org/hashicorp/aws" || bucket.Cloud != "aws" || bucket.Action != Changed {
		t.Errorf("bucket = %+v", bucket)
	}
	want := []attr{
		{"tags.env", `"prod"`, `"dev"`, false},
		{"tags.owner", `null`, `"bob"`, false},
		{"versioning.0.enabled", `true`, `false`, false},
	}
	if got := attrs(bucket); !reflect.DeepEqual(got, want) {
		t.Errorf("bucket attributes\n got %v\nwant %v", got, want)
	}

	db := byAddress(t, res, "aws_db_instance.main")
	want = []attr{
		{"engine_version", `"15.3"`, `"15.4"`, false},
		{"password", "", "", true},
	}
	if got := attrs(db); !reflect.DeepEqual(got, want) {
		t.Errorf("database attributes\n got %v\nwant %v", got, want)
	}

	gone := byAddress(t, res, "module.cdn.google_storage_bucket.assets")
	if gone.Action != Deleted || gone.Cloud != "google" || len(gone.Attributes) != 0 {
		t.Errorf("deleted bucket = %+v, want action deleted, cloud google, no attributes", gone)
	}

	// Every drifted resource is also in resource_changes (applying puts
	// it back): that is not a pending configuration change.
	if res.PendingChanges {
		t.Error("PendingChanges for a plan that only puts drift back")
	}
	// The clouds of every managed resource, data sources left out.
	if want := []string{"aws", "azure", "google", "random"}; !reflect.DeepEqual(res.Clouds, want) {
		t.Errorf("clouds %v, want %v", res.Clouds, want)
	}

	// No secret anywhere in what is kept or shown.
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"SECRET", "hunter"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the result holds %q: %s", secret, out)
		}
	}
}

// change is one entry of resource_drift or resource_changes.
type change struct {
	Address      string `json:"address"`
	Mode         string `json:"mode"`
	Type         string `json:"type"`
	ProviderName string `json:"provider_name"`
	Change       struct {
		Actions         []string `json:"actions"`
		Before          any      `json:"before"`
		After           any      `json:"after"`
		BeforeSensitive any      `json:"before_sensitive,omitempty"`
		AfterSensitive  any      `json:"after_sensitive,omitempty"`
	} `json:"change"`
}

func managed(address, provider string, actions []string, before, after any) change {
	c := change{Address: address, Mode: "managed", Type: strings.Split(address, ".")[0], ProviderName: "registry.opentofu.org/" + provider}
	c.Change.Actions, c.Change.Before, c.Change.After = actions, before, after
	return c
}

func markSensitive(c change, before, after any) change {
	c.Change.BeforeSensitive, c.Change.AfterSensitive = before, after
	return c
}

func plan(t *testing.T, drift, changes []change) []byte {
	t.Helper()
	data, err := json.Marshal(map[string]any{"format_version": "1.2", "resource_drift": drift, "resource_changes": changes})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type obj = map[string]any

func TestParsePendingChanges(t *testing.T) {
	noop := managed("aws_vpc.main", "hashicorp/aws", []string{"no-op"}, obj{"cidr": "10.0.0.0/16"}, obj{"cidr": "10.0.0.0/16"})
	drifted := managed("aws_vpc.main", "hashicorp/aws", []string{"update"}, obj{"cidr": "10.0.0.0/16"}, obj{"cidr": "10.1.0.0/16"})
	putBack := managed("aws_vpc.main", "hashicorp/aws", []string{"update"}, obj{"cidr": "10.1.0.0/16"}, obj{"cidr": "10.0.0.0/16"})
	codeChange := managed("aws_instance.web", "hashicorp/aws", []string{"update"}, obj{"instance_type": "t3.micro"}, obj{"instance_type": "t3.small"})
	newOne := managed("aws_sqs_queue.jobs", "hashicorp/aws", []string{"create"}, nil, obj{"name": "jobs"})
	replaced := managed("aws_instance.web", "hashicorp/aws", []string{"delete", "create"}, obj{"ami": "a"}, obj{"ami": "b"})
	read := change{Address: "data.aws_ami.latest", Mode: "data", Type: "aws_ami", ProviderName: "registry.opentofu.org/hashicorp/aws"}
	read.Change.Actions = []string{"read"}
	for _, tc := range []struct {
		name           string
		drift, changes []change
		drifted        int
		pending        bool
	}{
		{"nothing", nil, []change{noop}, 0, false},
		{"only drift put back", []change{drifted}, []change{putBack}, 1, false},
		{"code change, no drift", nil, []change{noop, codeChange}, 0, true},
		{"new resource in the code", nil, []change{newOne}, 0, true},
		{"replacement in the code", nil, []change{replaced}, 0, true},
		{"drift and a code change", []change{drifted}, []change{putBack, codeChange}, 1, true},
		{"data source read", nil, []change{noop, read}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustParse(t, plan(t, tc.drift, tc.changes))
			if len(res.Resources) != tc.drifted || res.PendingChanges != tc.pending {
				t.Errorf("%d drifted, pending %v; want %d, %v", len(res.Resources), res.PendingChanges, tc.drifted, tc.pending)
			}
		})
	}
}

func TestParseActions(t *testing.T) {
	for _, tc := range []struct {
		actions []string
		want    string // "" when not drift
	}{
		{[]string{"update"}, Changed},
		{[]string{"delete", "create"}, Changed},
		{[]string{"create", "delete"}, Changed},
		{[]string{"delete"}, Deleted},
		{[]string{"create"}, Created},
		{[]string{"no-op"}, ""},
		{[]string{"read"}, ""},
		{[]string{"forget"}, ""},
	} {
		c := managed("aws_vpc.main", "hashicorp/aws", tc.actions, obj{"cidr": "a"}, obj{"cidr": "b"})
		if tc.actions[0] == "delete" && len(tc.actions) == 1 {
			c.Change.After = nil
		}
		if tc.actions[0] == "create" && len(tc.actions) == 1 {
			c.Change.Before = nil
		}
		res := mustParse(t, plan(t, []change{c}, nil))
		got := ""
		if len(res.Resources) == 1 {
			got = res.Resources[0].Action
		}
		if got != tc.want {
			t.Errorf("actions %v: drift %q, want %q", tc.actions, got, tc.want)
		}
	}
}

func TestParseSensitive(t *testing.T) {
	const secret = "TOPSECRET"
	for _, tc := range []struct {
		name string
		c    change
		want []attr
	}{
		{"whole attribute", markSensitive(managed("aws_db_instance.a", "hashicorp/aws", []string{"update"},
			obj{"password": secret + "1", "port": 5432}, obj{"password": secret + "2", "port": 5432}),
			obj{"password": true}, obj{"password": true}),
			[]attr{{"password", "", "", true}}},
		{"sensitive after only", markSensitive(managed("aws_db_instance.a", "hashicorp/aws", []string{"update"},
			obj{"password": secret + "1"}, obj{"password": secret + "2"}),
			obj{}, obj{"password": true}),
			[]attr{{"password", "", "", true}}},
		{"unchanged sensitive value", markSensitive(managed("aws_db_instance.a", "hashicorp/aws", []string{"update"},
			obj{"password": secret, "port": 5432}, obj{"password": secret, "port": 5433}),
			obj{"password": true}, obj{"password": true}),
			[]attr{{"port", "5432", "5433", false}}},
		{"nested map value", markSensitive(managed("kubernetes_secret.a", "hashicorp/kubernetes", []string{"update"},
			obj{"data": obj{"token": secret + "1", "user": "a"}}, obj{"data": obj{"token": secret + "2", "user": "b"}}),
			obj{"data": obj{"token": true}}, obj{"data": obj{"token": true}}),
			[]attr{{"data.token", "", "", true}, {"data.user", `"a"`, `"b"`, false}}},
		{"whole map", markSensitive(managed("kubernetes_secret.a", "hashicorp/kubernetes", []string{"update"},
			obj{"data": obj{"token": secret + "1"}}, obj{"data": obj{"token": secret + "2", "more": secret}}),
			obj{"data": true}, obj{"data": true}),
			[]attr{{"data", "", "", true}}},
		{"list element", markSensitive(managed("aws_instance.a", "hashicorp/aws", []string{"update"},
			obj{"keys": []any{"public", secret + "1"}}, obj{"keys": []any{"public", secret + "2"}}),
			obj{"keys": []any{false, true}}, obj{"keys": []any{false, true}}),
			[]attr{{"keys.1", "", "", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustParse(t, plan(t, []change{tc.c}, nil))
			if len(res.Resources) != 1 {
				t.Fatalf("%d drifted resources, want 1", len(res.Resources))
			}
			if got := attrs(res.Resources[0]); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("attributes\n got %v\nwant %v", got, tc.want)
			}
			out, _ := json.Marshal(res)
			if strings.Contains(string(out), secret) {
				t.Errorf("the result holds the secret: %s", out)
			}
		})
	}
}

// Sensitive values inside a list whose length changed, or inside an
// object that appeared or went, must stay hidden too.
func TestParseSensitiveInsideChangedShapes(t *testing.T) {
	const secret = "TOPSECRET"
	for _, tc := range []struct {
		name string
		c    change
	}{
		{"block removed from a list", markSensitive(managed("google_container_cluster.a", "hashicorp/google", []string{"update"},
			obj{"master_auth": []any{obj{"client_key": secret, "username": "admin"}}}, obj{"master_auth": []any{}}),
			obj{"master_auth": []any{obj{"client_key": true}}}, obj{"master_auth": []any{}})},
		{"element added to a list", markSensitive(managed("aws_instance.a", "hashicorp/aws", []string{"update"},
			obj{"keys": []any{"public"}}, obj{"keys": []any{"public", secret}}),
			obj{"keys": []any{false}}, obj{"keys": []any{false, true}})},
		{"object went", markSensitive(managed("aws_db_proxy.a", "hashicorp/aws", []string{"update"},
			obj{"auth": obj{"password": secret, "user": "app"}}, obj{"auth": nil}),
			obj{"auth": obj{"password": true}}, obj{})},
		{"object came", markSensitive(managed("aws_db_proxy.a", "hashicorp/aws", []string{"update"},
			obj{"auth": nil}, obj{"auth": obj{"password": secret, "user": "app"}}),
			obj{}, obj{"auth": obj{"password": true}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustParse(t, plan(t, []change{tc.c}, nil))
			out, _ := json.Marshal(res)
			if strings.Contains(string(out), secret) {
				t.Errorf("the result holds the secret: %s", out)
			}
			if len(res.Resources) != 1 || len(res.Resources[0].Attributes) == 0 {
				t.Errorf("the change is not reported at all: %s", out)
			}
		})
	}
}

func TestParseTruncatesHugeValues(t *testing.T) {
	huge := strings.Repeat("x", 100_000)
	c := managed("aws_iam_policy.a", "hashicorp/aws", []string{"update"}, obj{"policy": "{}", "name": "a"}, obj{"policy": huge, "name": "a"})
	res := mustParse(t, plan(t, []change{c}, nil))
	a := res.Resources[0].Attributes
	if len(a) != 1 || a[0].Name != "policy" || string(a[0].Before) != `"{}"` {
		t.Fatalf("attributes %+v", a)
	}
	var after string
	if err := json.Unmarshal(a[0].After, &after); err != nil {
		t.Fatalf("the truncated value is not a JSON string: %v", err)
	}
	if want := strings.Repeat("x", maxValue) + "... (truncated)"; after != want {
		t.Errorf("after is %d bytes, ends %q; want the value's first %d bytes, marked truncated", len(after), after[max(0, len(after)-20):], maxValue)
	}

	// Long values are cut on a character boundary, the value itself (not
	// its JSON: no quote of its own inside); long objects are the start of
	// their JSON, as a string.
	accents := strings.Repeat("é", 1500)
	list := make([]any, 1000)
	for i := range list {
		list[i] = "é"
	}
	c = managed("files_bucket.a", "hashicorp/files", []string{"update"}, obj{"tag": "x", "list": []any{}}, obj{"tag": accents, "list": list})
	res = mustParse(t, plan(t, []change{c}, nil))
	for _, at := range res.Resources[0].Attributes {
		var got string
		if err := json.Unmarshal(at.After, &got); err != nil {
			t.Fatalf("%s: the truncated value is not a JSON string: %v", at.Name, err)
		}
		if !utf8.ValidString(got) || strings.ContainsRune(got, utf8.RuneError) || !strings.HasSuffix(got, "... (truncated)") {
			t.Errorf("%s: value ends %q; want whole characters, marked truncated", at.Name, got[max(0, len(got)-30):])
		}
		switch at.Name {
		case "tag":
			if want := strings.Repeat("é", maxValue/2) + "... (truncated)"; got != want {
				t.Errorf("tag: %d bytes, starts %q; want the first %d bytes of the value", len(got), got[:10], maxValue)
			}
		case "list":
			if !strings.HasPrefix(got, `["é","é"`) || len(got) > maxValue+len("... (truncated)") {
				t.Errorf("list: %d bytes, starts %q; want the start of its JSON", len(got), got[:10])
			}
		}
	}

	// Many attributes: at most maxAttributes.
	before, afterObj := obj{}, obj{}
	for i := range 500 {
		before[fmt.Sprintf("a%03d", i)], afterObj[fmt.Sprintf("a%03d", i)] = i, i+1
	}
	res = mustParse(t, plan(t, []change{managed("x_thing.many", "acme/x", []string{"update"}, before, afterObj)}, nil))
	if n := len(res.Resources[0].Attributes); n != maxAttributes {
		t.Errorf("%d attributes kept, want %d", n, maxAttributes)
	}
}

func TestParseKeepsNumbersAndUnknownProviders(t *testing.T) {
	data := []byte(`{"resource_drift": [{"address": "x_thing.a", "mode": "managed", "type": "x_thing", "provider_name": "registry.example.com/acme/x",
		"change": {"actions": ["update"], "before": {"size": 1.50, "big": 12345678901234567890}, "after": {"size": 1.75, "big": 12345678901234567891}}}]}`)
	res := mustParse(t, data)
	want := []attr{{"big", "12345678901234567890", "12345678901234567891", false}, {"size", "1.50", "1.75", false}}
	if got := attrs(res.Resources[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("attributes\n got %v\nwant %v", got, want)
	}
	if res.Resources[0].Cloud != "x" || !reflect.DeepEqual(res.Clouds, []string{"x"}) {
		t.Errorf("cloud %q, clouds %v; want x", res.Resources[0].Cloud, res.Clouds)
	}
}

func TestParseRefusesBadJSON(t *testing.T) {
	for _, data := range []string{"", "{", "not json", `{"resource_drift": {}}`} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("Parse(%q): no error", data)
		}
	}
	// An empty plan is clean.
	res := mustParse(t, []byte(`{}`))
	if len(res.Resources) != 0 || res.PendingChanges || len(res.Clouds) != 0 {
		t.Errorf("empty plan: %+v", res)
	}
}

func TestCloud(t *testing.T) {
	for provider, want := range map[string]string{
		"registry.opentofu.org/hashicorp/aws":          "aws",
		"registry.terraform.io/hashicorp/aws":          "aws",
		"registry.opentofu.org/hashicorp/awscc":        "aws",
		"registry.opentofu.org/hashicorp/azurerm":      "azure",
		"registry.opentofu.org/hashicorp/azuread":      "azure",
		"registry.opentofu.org/azure/azapi":            "azure",
		"registry.opentofu.org/hashicorp/google":       "google",
		"registry.opentofu.org/hashicorp/google-beta":  "google",
		"registry.opentofu.org/hashicorp/random":       "random",
		"registry.opentofu.org/cloudflare/cloudflare":  "cloudflare",
		"registry.opentofu.org/integrations/github":    "github",
		"example.com/acme/internal":                    "internal",
		"aws":                                          "aws",
		"":                                             "",
		"registry.opentofu.org/hashicorp/google-other": "google-other",
	} {
		if got := Cloud(provider); got != want {
			t.Errorf("Cloud(%q) = %q, want %q", provider, got, want)
		}
	}
}
