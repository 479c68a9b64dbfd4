// Package wait is how navarch pauses: for a while, or until its work is cancelled.
package wait

import (
	"context"
	"time"
)

// Sleep waits d (nothing when d <= 0) and reports false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Every calls f every d until ctx ends (first after d, not at once). It blocks; the
// caller owns the goroutine.
func Every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
