package consul

import (
	"context"
	"testing"
	"time"
)

// TestConnectionsPreempt checks the bound on open queries: while the services fit the
// slots a query waits the full time; once they outgrow them, queries holding a slot
// for the full time are cut short and new ones wait at most the shared time.
func TestConnectionsPreempt(t *testing.T) {
	c := newConnections(2, 500*time.Millisecond)
	ctx := context.Background()
	c.watch(1)
	c.watch(1)
	var held []context.Context
	var releases []func()
	for range 2 {
		qctx, wait, release, ok := c.acquire(ctx, time.Minute)
		if !ok || wait != time.Minute {
			t.Fatalf("with room for every service: wait %s, ok %v; want the full minute", wait, ok)
		}
		held, releases = append(held, qctx), append(releases, release)
	}
	if outgrown := c.watch(1); !outgrown {
		t.Fatal("a third service over two slots was not reported")
	}
	for i, qctx := range held {
		select {
		case <-qctx.Done():
		case <-time.After(time.Second):
			t.Fatalf("query %d still holds its slot for the full time", i)
		}
	}
	for _, release := range releases {
		release()
	}
	_, wait, release, ok := c.acquire(ctx, time.Minute)
	if !ok || wait != 500*time.Millisecond {
		t.Fatalf("sharing: wait %s, ok %v; want the shared 500ms", wait, ok)
	}
	release()
	if c.watch(1) {
		t.Fatal("outgrowing is reported once")
	}
	c.watch(-1)
	c.watch(-1)
	qctx, wait, release, _ := c.acquire(ctx, time.Minute)
	defer release()
	if wait != time.Minute || qctx.Err() != nil {
		t.Fatalf("back within the slots: wait %s, err %v; want the full minute", wait, qctx.Err())
	}
}
