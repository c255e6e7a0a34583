package spacelift

# Posts to Slack when a run fails.

# Edit: the id of the Slack channel (as configured in Gantry) to post to.
slack_channel := "infra-alerts"

slack contains {"channel_id": slack_channel, "message": msg} if {
	u := input.run_updated
	u.state == "FAILED"
	msg := sprintf("Run %s on stack %s failed (%s run, commit %s)", [u.run.id, u.stack.id, u.run.type, object.get(u.run, ["commit", "hash"], "")])
}
