package api

// SetLogPollWaits makes f be called each time a log request starts to wait
// for output, until the returned function restores the default.
func SetLogPollWaits(f func()) (restore func()) {
	logPollWaits = f
	return func() { logPollWaits = nil }
}
