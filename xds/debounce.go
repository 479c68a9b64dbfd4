package xds

import (
	"context"
	"time"
)

// DebounceConfig tunes how watch events are batched into pushes.
type DebounceConfig struct {
	// Quiet is how long without events ends a batch. An event that comes after at
	// least Quiet of silence is pushed at once, with no wait.
	Quiet time.Duration
	// MinDelay and MaxDelay bound how long a batch may grow while events keep coming:
	// the bound is four times the last push's duration, clamped to [MinDelay, MaxDelay],
	// so cheap pushes go out quickly and expensive ones are batched more.
	MinDelay, MaxDelay time.Duration
}

// DefaultDebounceConfig pushes a lone change at once, batches a burst until it pauses
// for 10 ms, and never delays a change by more than one second.
func DefaultDebounceConfig() DebounceConfig {
	return DebounceConfig{Quiet: 10 * time.Millisecond, MinDelay: 50 * time.Millisecond, MaxDelay: time.Second}
}

// debounce calls push for batches of the signals received from in, until ctx ends,
// with when the batch's first signal came. Pushes run one at a time on the calling
// goroutine; signals that arrive during a push are batched into the next one. now is
// time.Now except in tests.
func debounce(ctx context.Context, in <-chan struct{}, cfg DebounceConfig, now func() time.Time, push func(first time.Time)) {
	var lastEvent time.Time
	lastPush := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
		}
		start := now()
		if !lastEvent.IsZero() && start.Sub(lastEvent) < cfg.Quiet {
			// Busy: events are coming close together; batch them.
			limit := min(max(4*lastPush, cfg.MinDelay), cfg.MaxDelay)
			if !absorb(ctx, in, cfg.Quiet, start.Add(limit), now) {
				return
			}
		}
		lastEvent = now()
		push(start)
		lastPush = now().Sub(lastEvent)
		lastEvent = now()
	}
}

// absorb takes signals from in until none arrived for quiet, or until deadline.
// It returns false if ctx ended.
func absorb(ctx context.Context, in <-chan struct{}, quiet time.Duration, deadline time.Time, now func() time.Time) bool {
	for {
		wait := min(quiet, deadline.Sub(now()))
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
			return true // quiet long enough, or the deadline came
		}
	}
}
