package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The context schemas join the tables of openapi_test.go here, so that the
// shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"Context":               reflect.TypeFor[apiv1.Context](),
		"ContextHooks":          reflect.TypeFor[apiv1.ContextHooks](),
		"ContextCreate":         reflect.TypeFor[apiv1.ContextCreate](),
		"ContextUpdate":         reflect.TypeFor[apiv1.ContextUpdate](),
		"ContextEnvVar":         reflect.TypeFor[apiv1.ContextEnvVar](),
		"ContextEnvVarSet":      reflect.TypeFor[apiv1.ContextEnvVarSet](),
		"ContextFile":           reflect.TypeFor[apiv1.ContextFile](),
		"ContextFileSet":        reflect.TypeFor[apiv1.ContextFileSet](),
		"ContextHookAdd":        reflect.TypeFor[apiv1.ContextHookAdd](),
		"ContextAttachment":     reflect.TypeFor[apiv1.ContextAttachment](),
		"ContextAttach":         reflect.TypeFor[apiv1.ContextAttach](),
		"StackContext":          reflect.TypeFor[apiv1.StackContext](),
		"EffectiveEnvVar":       reflect.TypeFor[apiv1.EffectiveEnvVar](),
		"EffectiveFile":         reflect.TypeFor[apiv1.EffectiveFile](),
		"EffectiveEnv":          reflect.TypeFor[apiv1.EffectiveEnv](),
		"ContextList":           reflect.TypeFor[apiv1.List[apiv1.Context]](),
		"ContextEnvVarList":     reflect.TypeFor[apiv1.List[apiv1.ContextEnvVar]](),
		"ContextFileList":       reflect.TypeFor[apiv1.List[apiv1.ContextFile]](),
		"ContextAttachmentList": reflect.TypeFor[apiv1.List[apiv1.ContextAttachment]](),
		"StackContextList":      reflect.TypeFor[apiv1.List[apiv1.StackContext]](),
	} {
		goSchemas[name] = typ
	}
	bodies := []string{"ContextCreate", "ContextUpdate", "ContextEnvVarSet", "ContextFileSet", "ContextHookAdd", "ContextAttach"}
	for _, name := range bodies {
		requestOnly[name] = true
	}
	strictBodies = append(strictBodies, append(bodies, "ContextHooks")...)
}
