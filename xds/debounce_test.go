package xds

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestDebounce drives debounce with real signals and counts pushes; it asserts how
// signals are grouped, not how long anything took.
func TestDebounce(t *testing.T) {
	cfg := DebounceConfig{Quiet: 50 * time.Millisecond, MinDelay: 200 * time.Millisecond, MaxDelay: time.Second}
	t.Run("a lone change is pushed at once", func(t *testing.T) {
		in, pushes, stop := runDebounce(t, cfg)
		defer stop()
		in <- struct{}{}
		waitPushes(t, pushes, 1)
	})
	t.Run("a burst is batched into few pushes", func(t *testing.T) {
		in, pushes, stop := runDebounce(t, cfg)
		defer stop()
		for i := 0; i < 50; i++ {
			select {
			case in <- struct{}{}:
			default:
			}
			time.Sleep(time.Millisecond)
		}
		waitPushes(t, pushes, 1)
		time.Sleep(3 * cfg.Quiet)
		if n := pushes(); n > 3 {
			t.Fatalf("a burst of 50 signals made %d pushes, want at most 3", n)
		}
	})
	t.Run("a steady stream still pushes before the max delay", func(t *testing.T) {
		in, pushes, stop := runDebounce(t, cfg)
		defer stop()
		done := make(chan struct{})
		go func() {
			defer close(done)
			end := time.Now().Add(3 * cfg.MaxDelay)
			for time.Now().Before(end) {
				select {
				case in <- struct{}{}:
				default:
				}
				time.Sleep(cfg.Quiet / 5)
			}
		}()
		<-done
		if n := pushes(); n < 3 {
			t.Fatalf("a stream of signals over 3 max delays made %d pushes, want at least 3", n)
		}
	})
}

func runDebounce(t *testing.T, cfg DebounceConfig) (chan struct{}, func() int, func()) {
	t.Helper()
	in := make(chan struct{}, 1)
	var mu sync.Mutex
	n := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, in, cfg, time.Now, func(time.Time) { mu.Lock(); n++; mu.Unlock() })
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	return in, count, func() { cancel(); <-done }
}

func waitPushes(t *testing.T, pushes func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pushes() < want {
		if time.Now().After(deadline) {
			t.Fatalf("got %d pushes, want %d", pushes(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
