package spacelift

# Puts a message in the Gantry inbox whenever a run fails.

inbox contains {"title": title, "body": body, "severity": "ERROR"} if {
	u := input.run_updated
	u.state == "FAILED"
	title := sprintf("Run %s failed", [u.run.id])
	body := sprintf("Stack %s: %s run %s ended FAILED%s", [u.stack.id, u.run.type, u.run.id, note(u)])
}

note(u) := sprintf(" (%s)", [u.note]) if {
	is_string(u.note)
	u.note != ""
} else := ""
