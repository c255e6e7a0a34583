package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The worker pool schemas join the tables of openapi_test.go here, so that
// the shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"WorkerPool":       reflect.TypeFor[apiv1.WorkerPool](),
		"WorkerPoolCreate": reflect.TypeFor[apiv1.WorkerPoolCreate](),
		"WorkerPoolUpdate": reflect.TypeFor[apiv1.WorkerPoolUpdate](),
		"WorkerPoolToken":  reflect.TypeFor[apiv1.WorkerPoolToken](),
		"Worker":           reflect.TypeFor[apiv1.Worker](),
		"WorkerPoolList":   reflect.TypeFor[apiv1.List[apiv1.WorkerPool]](),
		"WorkerList":       reflect.TypeFor[apiv1.List[apiv1.Worker]](),
		"WorkerPoolKey":    reflect.TypeFor[apiv1.WorkerPoolKey](),
	} {
		goSchemas[name] = typ
	}
	requestOnly["WorkerPoolCreate"], requestOnly["WorkerPoolUpdate"], requestOnly["WorkerPoolKey"] = true, true, true
	strictBodies = append(strictBodies, "WorkerPoolCreate", "WorkerPoolUpdate", "WorkerPoolKey")
}
