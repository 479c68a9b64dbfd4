package mirror

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// runCoalesce runs Coalesce in the background and returns its input and flush count.
func runCoalesce(t *testing.T, quiet, max time.Duration) (chan struct{}, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan struct{}, 1)
	var flushes atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Coalesce(ctx, in, quiet, max, func() { flushes.Add(1) })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return in, &flushes
}

func signal(in chan struct{}) {
	select {
	case in <- struct{}{}:
	default:
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCoalesce(t *testing.T) {
	t.Run("a burst is flushed once", func(t *testing.T) {
		in, flushes := runCoalesce(t, 200*time.Millisecond, 5*time.Second)
		for i := 0; i < 100; i++ {
			signal(in)
		}
		waitFor(t, "one flush", func() bool { return flushes.Load() == 1 })
		time.Sleep(400 * time.Millisecond)
		if n := flushes.Load(); n != 1 {
			t.Fatalf("%d flushes for one burst, want 1", n)
		}
	})
	t.Run("separate changes are flushed separately", func(t *testing.T) {
		in, flushes := runCoalesce(t, 10*time.Millisecond, time.Second)
		for i := int32(1); i <= 3; i++ {
			signal(in)
			waitFor(t, "a flush per change", func() bool { return flushes.Load() == i })
		}
	})
	t.Run("a storm that never pauses is still flushed", func(t *testing.T) {
		in, flushes := runCoalesce(t, 200*time.Millisecond, 50*time.Millisecond)
		stop := time.Now().Add(time.Second)
		for time.Now().Before(stop) && flushes.Load() < 2 {
			signal(in)
			time.Sleep(5 * time.Millisecond)
		}
		if n := flushes.Load(); n < 2 {
			t.Fatalf("%d flushes during a second of signals every 5ms, want the max delay to force some", n)
		}
	})
	t.Run("nothing is flushed without a signal", func(t *testing.T) {
		_, flushes := runCoalesce(t, time.Millisecond, time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		if n := flushes.Load(); n != 0 {
			t.Fatalf("%d flushes without a signal", n)
		}
	})
}
