package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The drift and schedule schemas join the tables of openapi_test.go.
func init() {
	for name, typ := range map[string]reflect.Type{
		"DriftDetectionSet": reflect.TypeFor[apiv1.DriftDetectionSet](),
		"DriftDetection":    reflect.TypeFor[apiv1.DriftDetection](),
		"Schedule":          reflect.TypeFor[apiv1.Schedule](),
		"ScheduleCreate":    reflect.TypeFor[apiv1.ScheduleCreate](),
		"DriftAttribute":    reflect.TypeFor[apiv1.DriftAttribute](),
		"DriftResource":     reflect.TypeFor[apiv1.DriftResource](),
		"StackDrift":        reflect.TypeFor[apiv1.StackDrift](),
		"StackDriftDetail":  reflect.TypeFor[apiv1.StackDriftDetail](),
		"DriftReconcile":    reflect.TypeFor[apiv1.DriftReconcile](),
		"ScheduleList":      reflect.TypeFor[apiv1.List[apiv1.Schedule]](),
		"StackDriftList":    reflect.TypeFor[apiv1.List[apiv1.StackDrift]](),
	} {
		goSchemas[name] = typ
	}
	for _, name := range []string{"DriftDetectionSet", "ScheduleCreate", "DriftReconcile"} {
		requestOnly[name] = true
	}
}
