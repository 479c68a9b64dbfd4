package mirror

import (
	"context"
	"time"
)

// Coalesce calls flush for batches of the signals received from in, until ctx ends.
// A batch starts with a signal and ends once no signal came for quiet, or maxDelay
// after it started, whichever is first: a lone change waits quiet, a burst is
// written once, and a storm that never pauses is still written every maxDelay. flush
// runs on the calling goroutine; signals that arrive while it runs start the next
// batch.
func Coalesce(ctx context.Context, in <-chan struct{}, quiet, maxDelay time.Duration, flush func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
		}
		deadline := time.Now().Add(maxDelay)
		if !gather(ctx, in, quiet, deadline) {
			return
		}
		flush()
	}
}

// gather takes signals from in until none came for quiet or deadline passes. It
// returns false if ctx ended.
func gather(ctx context.Context, in <-chan struct{}, quiet time.Duration, deadline time.Time) bool {
	for {
		wait := min(quiet, time.Until(deadline))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-in:
			t.Stop()
		case <-t.C:
			return true
		}
	}
}
