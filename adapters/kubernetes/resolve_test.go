package kubernetes

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/navarch/navarch/adapters/registrytest"
)

// TestGatewayResolver: a host name is looked up when first asked for, outside the
// caller, which is woken when the answer comes; it is looked up again after a
// refresh, and a failed lookup keeps the last answer.
func TestGatewayResolver(t *testing.T) {
	var mu sync.Mutex
	answers := map[string][]string{"gw.example.com": {"203.0.113.9", "203.0.113.8"}}
	lookups := 0
	woken := make(chan struct{}, 10)
	r := newGatewayResolver(func() { woken <- struct{}{} }, registrytest.Logger())
	r.lookup = func(_ context.Context, host string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if a, ok := answers[host]; ok {
			return slices.Clone(a), nil
		}
		return nil, errors.New("no such host")
	}
	ctx := context.Background()
	hosts := []string{"gw.example.com"}
	if got := r.addresses(ctx, hosts); len(got["gw.example.com"]) != 0 {
		t.Fatalf("before any lookup: %v", got)
	}
	wake := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not woken", what)
		}
	}
	wake("the first answer")
	if got := r.addresses(ctx, hosts)["gw.example.com"]; !slices.Equal(got, []string{"203.0.113.8", "203.0.113.9"}) {
		t.Fatalf("after the lookup: %v", got)
	}

	mu.Lock()
	answers["gw.example.com"] = []string{"203.0.113.7"}
	mu.Unlock()
	r.addresses(ctx, hosts)
	mu.Lock()
	if lookups != 1 {
		t.Errorf("%d lookups before a refresh, want 1", lookups)
	}
	mu.Unlock()
	r.refresh()
	r.addresses(ctx, hosts)
	wake("a changed answer after a refresh")
	if got := r.addresses(ctx, hosts)["gw.example.com"]; !slices.Equal(got, []string{"203.0.113.7"}) {
		t.Fatalf("after the refresh: %v", got)
	}

	mu.Lock()
	delete(answers, "gw.example.com")
	mu.Unlock()
	r.refresh()
	r.addresses(ctx, hosts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		running := r.running["gw.example.com"]
		r.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failing lookup does not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.addresses(ctx, hosts)["gw.example.com"]; !slices.Equal(got, []string{"203.0.113.7"}) {
		t.Fatalf("after a failed lookup: %v, want the last answer", got)
	}
}
