package server

import (
	"slices"
	"testing"
)

// Wake-ups waiting to be published go out in one NOTIFY, each key once.
func TestBatchEvents(t *testing.T) {
	events := make(chan []string, 8)
	events <- []string{"log:r1", "run:r1"}
	events <- []string{"pool:", "log:r1"}
	got := batchEvents([]string{"run:r1"}, events)
	if want := []string{"run:r1", "log:r1", "pool:"}; !slices.Equal(got, want) {
		t.Errorf("batchEvents = %v, want %v", got, want)
	}
	if len(events) != 0 {
		t.Errorf("%d payloads left behind", len(events))
	}
}
