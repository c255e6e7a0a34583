package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The RBAC schemas join the tables of openapi_test.go.
func init() {
	for name, typ := range map[string]reflect.Type{
		"TaskCreate":        reflect.TypeFor[apiv1.TaskCreate](),
		"RoleAction":        reflect.TypeFor[apiv1.RoleAction](),
		"RoleActionList":    reflect.TypeFor[apiv1.List[apiv1.RoleAction]](),
		"Role":              reflect.TypeFor[apiv1.Role](),
		"RoleList":          reflect.TypeFor[apiv1.List[apiv1.Role]](),
		"RoleCreate":        reflect.TypeFor[apiv1.RoleCreate](),
		"RoleBinding":       reflect.TypeFor[apiv1.RoleBinding](),
		"RoleBindingList":   reflect.TypeFor[apiv1.List[apiv1.RoleBinding]](),
		"RoleBindingCreate": reflect.TypeFor[apiv1.RoleBindingCreate](),
		"User":              reflect.TypeFor[apiv1.User](),
		"UserList":          reflect.TypeFor[apiv1.List[apiv1.User]](),
	} {
		goSchemas[name] = typ
	}
	requestOnly["TaskCreate"] = true
	requestOnly["RoleCreate"] = true
	requestOnly["RoleBindingCreate"] = true
	strictBodies = append(strictBodies, "TaskCreate", "RoleCreate", "RoleBindingCreate")
}
