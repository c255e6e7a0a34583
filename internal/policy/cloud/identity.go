package cloud

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Owner-level roles: full control of an account, subscription or project.
var (
	awsOwnerPolicies = map[string]bool{"AdministratorAccess": true, "PowerUserAccess": true}
	azureOwnerRoles  = map[string]bool{"owner": true, "contributor": true, "user access administrator": true}
	googleOwnerRoles = map[string]bool{"roles/owner": true, "roles/editor": true}
	googleIAM        = regexp.MustCompile(`^google_[a-z0-9_]+_iam_(member|binding|policy)$`)
)

// identity returns the identity_grant object for IAM resources, nil for
// anything else.
func (p *plan) identity(c *change) map[string]any {
	v := c.Values
	switch c.Type {
	case "aws_iam_policy":
		return awsPolicyGrant("", str(v["name"]), v["policy"])
	case "aws_iam_role_policy":
		return awsPolicyGrant("role/"+str(v["role"]), str(v["name"]), v["policy"])
	case "aws_iam_user_policy":
		return awsPolicyGrant("user/"+str(v["user"]), str(v["name"]), v["policy"])
	case "aws_iam_group_policy":
		return awsPolicyGrant("group/"+str(v["group"]), str(v["name"]), v["policy"])
	case "aws_iam_role_policy_attachment":
		return awsAttachment(p, c, "role/"+str(v["role"]))
	case "aws_iam_user_policy_attachment":
		return awsAttachment(p, c, "user/"+str(v["user"]))
	case "aws_iam_group_policy_attachment":
		return awsAttachment(p, c, "group/"+str(v["group"]))
	case "aws_iam_policy_attachment":
		var who []string
		for _, k := range []string{"roles", "users", "groups"} {
			for _, n := range strs(v[k]) {
				who = append(who, strings.TrimSuffix(k, "s")+"/"+n)
			}
		}
		return awsAttachment(p, c, who...)
	case "aws_iam_access_key":
		return grant([]string{"user/" + str(v["user"])}, "", false, false, true)
	case "azurerm_role_assignment":
		role := firstString(v["role_definition_name"], v["role_definition_id"])
		return grant(strs(v["principal_id"]), role, strings.Contains(role, "*"), azureOwnerRoles[lower(role)], false)
	case "azurerm_role_definition":
		return azureRoleDefinition(v)
	case "azuread_application_password", "azuread_service_principal_password",
		"azuread_application_certificate", "azuread_service_principal_certificate":
		who := firstString(v["application_id"], v["application_object_id"], v["service_principal_id"])
		return grant(strs(who), "", false, false, true)
	case "google_service_account_key":
		return grant(strs(v["service_account_id"]), "", false, false, true)
	case "google_project_iam_custom_role", "google_organization_iam_custom_role":
		perms := strs(v["permissions"])
		return grant(nil, str(v["role_id"]), hasWildcard(perms), false, false)
	}
	if googleIAM.MatchString(c.Type) {
		return googleGrant(c)
	}
	return nil
}

func grant(principals []string, role string, wildcard, owner, staticKey bool) map[string]any {
	return map[string]any{
		"principal":  strings.Join(principals, ","),
		"principals": stringsToAny(principals),
		"role":       role,
		"wildcard":   wildcard,
		"owner":      owner,
		"static_key": staticKey,
	}
}

func hasWildcard(ss []string) bool {
	for _, s := range ss {
		if strings.Contains(s, "*") {
			return true
		}
	}
	return false
}

func awsPolicyGrant(principal, role string, doc any) map[string]any {
	wildcard, admin := wildcardPolicy(parsePolicy(doc))
	return grant(strs(principal), role, wildcard, admin, false)
}

// awsAttachment reads the attached policy: an AWS managed admin policy by
// its ARN, or a customer policy of the same plan by ARN or reference.
func awsAttachment(p *plan, c *change, who ...string) map[string]any {
	arn := str(c.Values["policy_arn"])
	name := arn[strings.LastIndex(arn, "/")+1:]
	wildcard, owner := false, awsOwnerPolicies[name] && strings.HasPrefix(arn, "arn:aws")
	for _, pol := range p.byType["aws_iam_policy"] {
		if matchesID(arn, []string{str(pol.Values["arn"])}) || c.refersTo(pol, "policy_arn") {
			w, a := wildcardPolicy(parsePolicy(pol.Values["policy"]))
			wildcard, owner = wildcard || w, owner || a
			if name == "" {
				name = str(pol.Values["name"])
			}
		}
	}
	return grant(who, name, wildcard, owner, false)
}

func azureRoleDefinition(v map[string]any) map[string]any {
	var actions []string
	for _, perm := range list(v["permissions"]) {
		actions = append(actions, strs(get(perm, "actions"))...)
		actions = append(actions, strs(get(perm, "data_actions"))...)
	}
	return grant(nil, str(v["name"]), hasWildcard(actions), contains(actions, "*"), false)
}

func googleGrant(c *change) map[string]any {
	v := c.Values
	switch {
	case strings.HasSuffix(c.Type, "_iam_member"):
		role := str(v["role"])
		return grant(strs(v["member"]), role, strings.Contains(role, "*"), googleOwnerRoles[role], false)
	case strings.HasSuffix(c.Type, "_iam_binding"):
		role := str(v["role"])
		return grant(strs(v["members"]), role, strings.Contains(role, "*"), googleOwnerRoles[role], false)
	}
	return googlePolicyGrant(str(v["policy_data"]))
}

// googlePolicyGrant reads a google_*_iam_policy document: every member of
// every binding, the roles joined, owner if any binding is owner-level.
func googlePolicyGrant(policyData string) map[string]any {
	var doc struct {
		Bindings []struct {
			Role    string
			Members []string
		}
	}
	if json.Unmarshal([]byte(policyData), &doc) != nil {
		return grant(nil, "", false, false, false)
	}
	var members []string
	role, wildcard, owner := "", false, false
	for i, b := range doc.Bindings {
		members = append(members, b.Members...)
		if i > 0 {
			role += ","
		}
		role += b.Role
		wildcard = wildcard || hasWildcard([]string{b.Role})
		owner = owner || googleOwnerRoles[b.Role]
	}
	return grant(members, role, wildcard, owner, false)
}
