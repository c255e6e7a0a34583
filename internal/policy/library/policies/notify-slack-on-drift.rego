package spacelift

# Posts to Slack when a drift detection run finds changes.

# Edit: the id of the Slack channel (as configured in Gantry) to post to.
slack_channel := "infra-drift"

slack contains {"channel_id": slack_channel, "message": msg} if {
	u := input.run_updated
	u.run.drift_detection == true
	u.state == "FINISHED"
	n := count(object.get(u.run, "changes", []))
	n > 0
	msg := sprintf("Drift detected on stack %s: %d resource changes (run %s)", [u.stack.id, n, u.run.id])
}
