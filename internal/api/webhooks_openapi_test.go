package api

import (
	"reflect"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The notification schemas join the tables of openapi_test.go here, so
// that the shared test file needs no edit for them.
func init() {
	for name, typ := range map[string]reflect.Type{
		"Webhook":            reflect.TypeFor[apiv1.Webhook](),
		"WebhookCreate":      reflect.TypeFor[apiv1.WebhookCreate](),
		"WebhookUpdate":      reflect.TypeFor[apiv1.WebhookUpdate](),
		"WebhookEmail":       reflect.TypeFor[apiv1.WebhookEmail](),
		"WebhookEmailCreate": reflect.TypeFor[apiv1.WebhookEmailCreate](),
		"WebhookEmailUpdate": reflect.TypeFor[apiv1.WebhookEmailUpdate](),
		"Notification":       reflect.TypeFor[apiv1.Notification](),
		"Delivery":           reflect.TypeFor[apiv1.Delivery](),
		"DeliveryAttempt":    reflect.TypeFor[apiv1.DeliveryAttempt](),
		"WebhookList":        reflect.TypeFor[apiv1.List[apiv1.Webhook]](),
		"NotificationList":   reflect.TypeFor[apiv1.List[apiv1.Notification]](),
		"DeliveryList":       reflect.TypeFor[apiv1.List[apiv1.Delivery]](),
	} {
		goSchemas[name] = typ
	}
	requestOnly["WebhookCreate"], requestOnly["WebhookUpdate"] = true, true
	requestOnly["WebhookEmailCreate"], requestOnly["WebhookEmailUpdate"] = true, true
	strictBodies = append(strictBodies, "WebhookCreate", "WebhookUpdate", "WebhookEmailCreate", "WebhookEmailUpdate")
}
