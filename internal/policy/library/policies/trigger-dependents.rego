package spacelift

# When a tracked run finishes, triggers every stack labelled
# depends-on:<id of the finished stack>.

# Edit: the label prefix that declares a dependency.
dependency_prefix := "depends-on:"

trigger contains stack.id if {
	input.run.state == "FINISHED"
	input.run.type == "TRACKED"
	some stack in input.stacks
	concat("", [dependency_prefix, input.stack.id]) in stack.labels
}
