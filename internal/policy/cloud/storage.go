package cloud

import (
	"encoding/json"
	"strings"
)

type normalizer func(p *plan, c *change) map[string]any

var storageNormalizers = map[string]normalizer{
	"aws_s3_bucket":                                      awsBucket,
	"aws_s3_bucket_acl":                                  awsBucketPart,
	"aws_s3_bucket_public_access_block":                  awsBucketPart,
	"aws_s3_bucket_policy":                               awsBucketPart,
	"aws_s3_bucket_versioning":                           awsBucketPart,
	"aws_s3_bucket_server_side_encryption_configuration": awsBucketPart,
	"aws_s3_bucket_ownership_controls":                   awsBucketPart,
	"azurerm_storage_account":                            azureAccount,
	"azurerm_storage_container":                          azureContainer,
	"google_storage_bucket":                              googleBucket,
	"google_storage_bucket_iam_member":                   googleBucketPart,
	"google_storage_bucket_iam_binding":                  googleBucketPart,
	"google_storage_bucket_iam_policy":                   googleBucketPart,
	"google_storage_bucket_acl":                          googleBucketPart,
	"google_storage_bucket_access_control":               googleBucketPart,
	"google_storage_default_object_access_control":       googleBucketPart,
}

func bucketFields(name string, read, write, encrypted, versioning, cmk any) map[string]any {
	return map[string]any{
		"name":                 name,
		"public_read":          read,
		"public_write":         write,
		"encrypted":            encrypted,
		"versioning":           versioning,
		"customer_managed_key": cmk,
	}
}

// --- AWS: aws_s3_bucket and the split resources of provider v4+ ---

var awsBucketParts = []string{
	"aws_s3_bucket_acl", "aws_s3_bucket_public_access_block", "aws_s3_bucket_policy",
	"aws_s3_bucket_versioning", "aws_s3_bucket_server_side_encryption_configuration",
	"aws_s3_bucket_ownership_controls",
}

// s3 accumulates what a bucket and its split resources say.
type s3 struct {
	aclRead, aclWrite, polRead, polWrite bool
	aclBlocked, polBlocked               bool
	versioning, cmk                      any
}

func (b *s3) add(c *change) {
	v := c.Values
	switch c.Type {
	case "aws_s3_bucket", "aws_s3_bucket_acl":
		switch str(v["acl"]) {
		case "public-read":
			b.aclRead = true
		case "public-read-write":
			b.aclRead, b.aclWrite = true, true
		case "authenticated-read":
			b.aclRead = true
		}
		if c.Type == "aws_s3_bucket" {
			b.addInline(v)
		}
	case "aws_s3_bucket_policy":
		r, w := publicAccess(parsePolicy(v["policy"]))
		b.polRead, b.polWrite = b.polRead || r, b.polWrite || w
	case "aws_s3_bucket_public_access_block":
		b.aclBlocked = b.aclBlocked || anyTrue(v["block_public_acls"], v["ignore_public_acls"])
		b.polBlocked = b.polBlocked || anyTrue(v["block_public_policy"], v["restrict_public_buckets"])
	case "aws_s3_bucket_ownership_controls":
		if str(get(v, "rule", "object_ownership")) == "BucketOwnerEnforced" {
			b.aclBlocked = true
		}
	case "aws_s3_bucket_versioning":
		if s := str(get(v, "versioning_configuration", "status")); s != "" {
			b.versioning = s == "Enabled"
		}
	case "aws_s3_bucket_server_side_encryption_configuration":
		b.cmk = kmsRule(get(v, "rule", "apply_server_side_encryption_by_default"))
	}
}

// addInline reads the deprecated inline arguments of aws_s3_bucket.
func (b *s3) addInline(v map[string]any) {
	r, w := publicAccess(parsePolicy(v["policy"]))
	b.polRead, b.polWrite = r, w
	if e := boolp(get(v, "versioning", "enabled")); e != nil && b.versioning == nil {
		b.versioning = e
	}
	sse := get(v, "server_side_encryption_configuration", "rule", "apply_server_side_encryption_by_default")
	if sse != nil && b.cmk == nil {
		b.cmk = kmsRule(sse)
	}
}

func kmsRule(sse any) any {
	alg := str(get(sse, "sse_algorithm"))
	if alg == "" {
		return nil
	}
	return strings.HasPrefix(alg, "aws:kms") && str(get(sse, "kms_master_key_id")) != ""
}

func awsBucket(p *plan, c *change) map[string]any {
	b := &s3{}
	b.add(c)
	name := str(c.Values["bucket"])
	for _, part := range p.related(c, "bucket", []string{name, str(c.Values["id"])}, awsBucketParts...) {
		if !isDelete(part.Actions) {
			b.add(part)
		}
	}
	if b.versioning == nil && creates(c) {
		b.versioning = false
	}
	if b.cmk == nil && creates(c) {
		b.cmk = false
	}
	// S3 encrypts every object at rest (SSE-S3) since January 2023.
	return bucketFields(name, b.aclRead && !b.aclBlocked || b.polRead && !b.polBlocked,
		b.aclWrite && !b.aclBlocked || b.polWrite && !b.polBlocked, true, b.versioning, b.cmk)
}

// awsBucketPart reports the bucket a split resource configures, as the plan
// leaves it; without that bucket in the plan, what the part alone says.
func awsBucketPart(p *plan, c *change) map[string]any {
	for _, b := range p.byType["aws_s3_bucket"] {
		ids := []string{str(b.Values["bucket"]), str(b.Values["id"])}
		if matchesID(str(c.Values["bucket"]), ids) || c.refersTo(b, "bucket") {
			return awsBucket(p, b)
		}
	}
	b := &s3{}
	b.add(c)
	var read, write any = b.aclRead && !b.aclBlocked || b.polRead && !b.polBlocked, b.aclWrite || b.polWrite
	if c.Type == "aws_s3_bucket_public_access_block" || c.Type == "aws_s3_bucket_ownership_controls" {
		read, write = false, false
	}
	return bucketFields(str(c.Values["bucket"]), read, write, true, b.versioning, b.cmk)
}

func creates(c *change) bool {
	return contains(c.Actions, "create")
}

// --- Azure: storage account and containers ---

func azureAccount(p *plan, c *change) map[string]any {
	v := c.Values
	ids := []string{str(v["name"]), str(v["id"])}
	containers := p.related(c, "storage_account_name", ids, "azurerm_storage_container")
	containers = append(containers, p.related(c, "storage_account_id", ids, "azurerm_storage_container")...)
	public := false
	for _, ct := range containers {
		if !isDelete(ct.Actions) && publicContainer(ct) {
			public = true
		}
	}
	cmk := len(list(v["customer_managed_key"])) > 0 ||
		len(p.related(c, "storage_account_id", ids, "azurerm_storage_account_customer_managed_key")) > 0
	versioning := any(false)
	if len(list(v["blob_properties"])) > 0 || isUnknown(c.Unknown, "blob_properties") {
		versioning = boolp(get(v, "blob_properties", "versioning_enabled"))
	}
	return bucketFields(str(v["name"]), public && accountOpen(v), false, true, versioning, cmk)
}

// accountOpen: the account lets containers be public and can be reached
// from the internet.
func accountOpen(v map[string]any) bool {
	if v["allow_nested_items_to_be_public"] == false || v["public_network_access_enabled"] == false {
		return false
	}
	return str(get(v, "network_rules", "default_action")) != "Deny"
}

func publicContainer(c *change) bool {
	t := str(c.Values["container_access_type"])
	return t == "blob" || t == "container"
}

func azureContainer(p *plan, c *change) map[string]any {
	for _, acct := range p.byType["azurerm_storage_account"] {
		ids := []string{str(acct.Values["name"]), str(acct.Values["id"])}
		if matchesID(str(c.Values["storage_account_name"]), ids) || matchesID(str(c.Values["storage_account_id"]), ids) ||
			c.refersTo(acct, "storage_account_name") || c.refersTo(acct, "storage_account_id") {
			f := azureAccount(p, acct)
			f["name"] = str(c.Values["name"])
			f["public_read"] = publicContainer(c) && accountOpen(acct.Values)
			return f
		}
	}
	return bucketFields(str(c.Values["name"]), publicContainer(c), false, true, nil, nil)
}

// --- Google: storage bucket, its IAM and ACL resources ---

var googleBucketParts = []string{
	"google_storage_bucket_iam_member", "google_storage_bucket_iam_binding", "google_storage_bucket_iam_policy",
	"google_storage_bucket_acl", "google_storage_bucket_access_control", "google_storage_default_object_access_control",
}

func googleBucket(p *plan, c *change) map[string]any {
	v := c.Values
	name := str(v["name"])
	uniform := v["uniform_bucket_level_access"] == true
	var read, write bool
	for _, part := range p.related(c, "bucket", []string{name}, googleBucketParts...) {
		if isDelete(part.Actions) || uniform && isGoogleACL(part.Type) {
			continue
		}
		r, w := googlePartAccess(part)
		read, write = read || r, write || w
	}
	if str(v["public_access_prevention"]) == "enforced" {
		read, write = false, false
	}
	versioning := any(false)
	if len(list(v["versioning"])) > 0 || isUnknown(c.Unknown, "versioning") {
		versioning = boolp(get(v, "versioning", "enabled"))
	}
	cmk := str(get(v, "encryption", "default_kms_key_name")) != ""
	// Cloud Storage encrypts every object at rest with Google-managed keys.
	return bucketFields(name, read, write, true, versioning, cmk)
}

func isGoogleACL(t string) bool { return !strings.Contains(t, "_iam_") }

func googleBucketPart(p *plan, c *change) map[string]any {
	for _, b := range p.byType["google_storage_bucket"] {
		if matchesID(str(c.Values["bucket"]), []string{str(b.Values["name"])}) || c.refersTo(b, "bucket") {
			return googleBucket(p, b)
		}
	}
	r, w := googlePartAccess(c)
	return bucketFields(strings.TrimPrefix(str(c.Values["bucket"]), "b/"), r, w, true, nil, nil)
}

// googlePartAccess reads whether an IAM or ACL resource opens a bucket to
// allUsers or allAuthenticatedUsers, for reading or writing.
func googlePartAccess(c *change) (read, write bool) {
	v := c.Values
	grant := func(role string, members ...string) {
		for _, m := range members {
			if m == "allUsers" || m == "allAuthenticatedUsers" {
				read = true
				write = write || writerRole(role)
			}
		}
	}
	switch c.Type {
	case "google_storage_bucket_iam_member":
		grant(str(v["role"]), str(v["member"]))
	case "google_storage_bucket_iam_binding":
		grant(str(v["role"]), strs(v["members"])...)
	case "google_storage_bucket_iam_policy":
		var doc struct {
			Bindings []struct {
				Role    string
				Members []string
			}
		}
		if json.Unmarshal([]byte(str(v["policy_data"])), &doc) == nil {
			for _, b := range doc.Bindings {
				grant(b.Role, b.Members...)
			}
		}
	case "google_storage_bucket_acl":
		switch str(v["predefined_acl"]) {
		case "publicRead":
			read = true
		case "publicReadWrite":
			read, write = true, true
		}
		for _, re := range strs(v["role_entity"]) {
			role, entity, _ := strings.Cut(re, ":")
			grant(role, entity)
		}
	default: // access controls
		grant(str(v["role"]), str(v["entity"]))
	}
	return read, write
}

func writerRole(role string) bool {
	r := lower(role)
	for _, w := range []string{"admin", "creator", "writer", "owner", "objectuser"} {
		if strings.Contains(r, w) {
			return true
		}
	}
	return false
}
