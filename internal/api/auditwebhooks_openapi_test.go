package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The audit forwarding schemas join the tables of openapi_test.go here, so
// that the shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"AuditWebhook":       reflect.TypeFor[apiv1.AuditWebhook](),
		"AuditWebhookCreate": reflect.TypeFor[apiv1.AuditWebhookCreate](),
		"AuditDelivery":      reflect.TypeFor[apiv1.AuditDelivery](),
		"AuditWebhookList":   reflect.TypeFor[apiv1.List[apiv1.AuditWebhook]](),
		"AuditDeliveryList":  reflect.TypeFor[apiv1.List[apiv1.AuditDelivery]](),
	} {
		goSchemas[name] = typ
	}
	requestOnly["AuditWebhookCreate"] = true
	strictBodies = append(strictBodies, "AuditWebhookCreate")
}
