package spacelift

# Sends a webhook when a tracked run finishes, with a small JSON payload.

# Edit: the id of the webhook endpoint (as configured in Gantry).
webhook_endpoint := "deployments"

webhook contains {"endpoint_id": webhook_endpoint, "payload": payload} if {
	u := input.run_updated
	u.state == "FINISHED"
	u.run.type == "TRACKED"
	payload := {
		"event": "run_finished",
		"stack": u.stack.id,
		"run": u.run.id,
		"commit": object.get(u.run, ["commit", "hash"], ""),
		"url": object.get(u, ["urls", "run"], ""),
	}
}
