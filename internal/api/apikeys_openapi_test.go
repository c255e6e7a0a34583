package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The API key schemas join the tables of openapi_test.go here, so that the
// shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"APIKey":        reflect.TypeFor[apiv1.APIKey](),
		"APIKeyCreate":  reflect.TypeFor[apiv1.APIKeyCreate](),
		"APIKeyCreated": reflect.TypeFor[apiv1.APIKeyCreated](),
		"APIKeyList":    reflect.TypeFor[apiv1.List[apiv1.APIKey]](),
	} {
		goSchemas[name] = typ
	}
	requestOnly["APIKeyCreate"] = true
	strictBodies = append(strictBodies, "APIKeyCreate")
}

func init() { goSchemas["Whoami"] = reflect.TypeFor[apiv1.Whoami]() }
