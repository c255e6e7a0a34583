//go:build !linux

package jobprocs

// Subreaping is Linux only: elsewhere only the tool's process group is
// stopped when a command ends.
func startSubreaping() {}

func endJob(string) []int { return nil }

// KillPrefixed does nothing outside Linux.
func KillPrefixed(string) []int { return nil }

func endCommand(string, int) []int { return nil }
