package api

import (
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/notify"
)

// TestAuthorizeDeliveries: deliveries are authorized in their own space, not
// in the current space of the endpoint they name (an endpoint id may have
// been reused in another space since).
func TestAuthorizeDeliveries(t *testing.T) {
	ds := []notify.Delivery{{ID: "dlv-1", EndpointID: "ops", SpaceID: "team-a"}, {ID: "dlv-2", EndpointID: "ops", SpaceID: "team-b"}}
	if err := authorizeDeliveries(auth.Principal{Kind: "api_key", Name: "admin", Admin: true}, ds); err != nil {
		t.Errorf("admin: %v", err)
	}
	err := authorizeDeliveries(auth.Principal{Kind: "api_key", Name: "reader"}, ds)
	if err == nil || !strings.Contains(err.Error(), "space team-a") {
		t.Errorf("non-admin: %v, want refused in the delivery's space team-a", err)
	}
	if err := authorizeDeliveries(auth.Principal{Kind: "api_key", Name: "reader"}, nil); err != nil {
		t.Errorf("no deliveries: %v", err)
	}
}
