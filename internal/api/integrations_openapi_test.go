package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The integration schemas join the tables of openapi_test.go.
func init() {
	for name, typ := range map[string]reflect.Type{
		"Integration":               reflect.TypeFor[apiv1.Integration](),
		"IntegrationList":           reflect.TypeFor[apiv1.List[apiv1.Integration]](),
		"IntegrationCreate":         reflect.TypeFor[apiv1.IntegrationCreate](),
		"IntegrationUpdate":         reflect.TypeFor[apiv1.IntegrationUpdate](),
		"IntegrationAttach":         reflect.TypeFor[apiv1.IntegrationAttach](),
		"IntegrationAttachment":     reflect.TypeFor[apiv1.IntegrationAttachment](),
		"IntegrationAttachmentList": reflect.TypeFor[apiv1.List[apiv1.IntegrationAttachment]](),
		"OIDCSetup":                 reflect.TypeFor[apiv1.OIDCSetup](),
	} {
		goSchemas[name] = typ
	}
	for _, n := range []string{"IntegrationCreate", "IntegrationUpdate", "IntegrationAttach"} {
		requestOnly[n] = true
		strictBodies = append(strictBodies, n)
	}
}
