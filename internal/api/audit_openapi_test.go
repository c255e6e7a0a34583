package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The audit schemas join the tables of openapi_test.go here, so that the
// shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"AuditEvent":        reflect.TypeFor[apiv1.AuditEvent](),
		"AuditEventList":    reflect.TypeFor[apiv1.List[apiv1.AuditEvent]](),
		"AuditVerification": reflect.TypeFor[apiv1.AuditVerification](),
	} {
		goSchemas[name] = typ
	}
}
