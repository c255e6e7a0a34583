package api

import (
	"reflect"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/policy/engine"
)

// The policy schemas join the tables of openapi_test.go here, so that the
// shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"Policy":               reflect.TypeFor[apiv1.Policy](),
		"PolicyCreate":         reflect.TypeFor[apiv1.PolicyCreate](),
		"PolicyUpdate":         reflect.TypeFor[apiv1.PolicyUpdate](),
		"PolicyAttachment":     reflect.TypeFor[apiv1.PolicyAttachment](),
		"PolicyAttach":         reflect.TypeFor[apiv1.PolicyAttach](),
		"PolicySample":         reflect.TypeFor[apiv1.PolicySample](),
		"PolicySimulate":       reflect.TypeFor[apiv1.PolicySimulate](),
		"PolicyDecision":       reflect.TypeFor[apiv1.PolicyDecision](),
		"PolicySimulation":     reflect.TypeFor[apiv1.PolicySimulation](),
		"PolicyReplay":         reflect.TypeFor[apiv1.PolicyReplay](),
		"PolicyReplayItem":     reflect.TypeFor[apiv1.PolicyReplayItem](),
		"PolicyReplayResult":   reflect.TypeFor[apiv1.PolicyReplayResult](),
		"LibraryPolicy":        reflect.TypeFor[apiv1.LibraryPolicy](),
		"LibraryImport":        reflect.TypeFor[apiv1.LibraryImport](),
		"PolicyReceipt":        reflect.TypeFor[apiv1.PolicyReceipt](),
		"Review":               reflect.TypeFor[apiv1.Review](),
		"ReviewCreate":         reflect.TypeFor[apiv1.ReviewCreate](),
		"PushEvent":            reflect.TypeFor[apiv1.PushEvent](),
		"PushPullRequest":      reflect.TypeFor[apiv1.PushPullRequest](),
		"PushResult":           reflect.TypeFor[apiv1.PushResult](),
		"PolicyList":           reflect.TypeFor[apiv1.List[apiv1.Policy]](),
		"PolicyAttachmentList": reflect.TypeFor[apiv1.List[apiv1.PolicyAttachment]](),
		"PolicySampleList":     reflect.TypeFor[apiv1.List[apiv1.PolicySample]](),
		"LibraryPolicyList":    reflect.TypeFor[apiv1.List[apiv1.LibraryPolicy]](),
		"PolicyReceiptList":    reflect.TypeFor[apiv1.List[apiv1.PolicyReceipt]](),
		"ReviewList":           reflect.TypeFor[apiv1.List[apiv1.Review]](),
	} {
		goSchemas[name] = typ
	}
	otherSchemas["PolicyType"] = "enum, checked against the policy engine's types"
	for _, name := range []string{"PolicyCreate", "PolicyUpdate", "PolicyAttach", "PolicySimulate", "PolicyReplay",
		"LibraryImport", "ReviewCreate", "PushEvent", "PushPullRequest"} {
		requestOnly[name] = true
	}
	strictBodies = append(strictBodies, "PolicyCreate", "PolicyUpdate", "PolicyAttach", "PolicySimulate", "PolicyReplay",
		"LibraryImport", "ReviewCreate", "PushEvent", "PushPullRequest")
}

// TestOpenAPIPolicyTypes checks the PolicyType enum against the engine.
func TestOpenAPIPolicyTypes(t *testing.T) {
	schemas := obj(obj(loadOpenAPI(t)["components"])["schemas"])
	got := stringSet(obj(schemas["PolicyType"])["enum"])
	want := []string{engine.TypeApproval, engine.TypePush, engine.TypeLogin, engine.TypeNotification, engine.TypePlan, engine.TypeTrigger}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("PolicyType enum %v, the engine has types %v", got, want)
	}
	for _, typ := range got {
		if !engine.ValidType(typ) {
			t.Errorf("PolicyType enum has %q, which the engine refuses", typ)
		}
	}
}
