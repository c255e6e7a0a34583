package spacelift

# Retries a failed tracked run once: triggers the same stack and flags the
# run "retried". The triggered run carries the flag, so when it fails too
# nothing is retried again.

# Edit: the flag that marks a retry.
retry_flag := "retried"

trigger contains input.stack.id if retry

flag contains retry_flag if retry

retry if {
	input.run.state == "FAILED"
	input.run.type == "TRACKED"
	not retry_flag in object.get(input.run, "flags", [])
}
