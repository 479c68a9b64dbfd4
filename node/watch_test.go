package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
)

// startDevNode runs a dev node in process, with configure applied to its
// configuration, and returns a client of its API. The node stops when the test
// ends.
func startDevNode(t *testing.T, configure func(*Config)) *client.Client {
	t.Helper()
	api, stop := runDevNode(t, configure)
	t.Cleanup(stop)
	return api
}

// runDevNode is startDevNode, with the function that stops the node.
func runDevNode(t *testing.T, configure func(*Config)) (api *client.Client, stop func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dev, cfg.DataDir = true, t.TempDir()
	cfg.XDSAddr, cfg.HTTPAddr, cfg.XDSTLSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	configure(&cfg)
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			n.Close()
		})
	}
	select {
	case <-n.ready:
	case err := <-done:
		cancel()
		n.Close()
		t.Fatalf("the node stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("the node was not ready after 30s")
	}
	return client.New("http://"+n.HTTPAddr(), ""), stop
}

// A watch that asks for bookmarks is told the store's revision while its kind is
// quiet, and while the changes of its kind are not ones its selector keeps, so that
// it resumes from a recent revision; a watch resumed from a bookmark misses nothing.
func TestWatchBookmarksKeepAnIdleWatchResumable(t *testing.T) {
	api := startDevNode(t, func(c *Config) { c.Store.WatchProgressInterval = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apply := func(kind, name, labels string) int64 {
		t.Helper()
		doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: %s
metadata: {name: %s, namespace: default, labels: {%s}}
spec:
  host: reviews
`, kind, name, labels)
		if kind == "VirtualService" {
			doc = fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: default, labels: {%s}}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`, name, labels)
		}
		resp, err := api.Apply(ctx, "", []client.File{{Source: name + ".yaml", Data: doc}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Revision
	}
	// bookmarkAfter reads events until a bookmark at rev or later; any other event is
	// a failure.
	bookmarkAfter := func(events <-chan client.WatchEvent, rev int64) int64 {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the watch ended waiting for a bookmark at %d", rev)
				}
				if ev.Type != client.WatchBookmark {
					t.Fatalf("a %s event (%s) where only bookmarks were due", ev.Type, ev.Object)
				}
				got, err := strconv.ParseInt(ev.ResourceVersion(), 10, 64)
				if err != nil {
					t.Fatalf("a bookmark without a revision: %s", ev.Object)
				}
				if got >= rev {
					return got
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no bookmark at revision %d or later after 20s", rev)
			}
		}
	}

	sel := client.Selection{Kind: "virtualservices", Namespace: "default", LabelSelector: "app=reviews", Bookmarks: true}
	events, err := api.Watch(ctx, sel, "")
	if err != nil {
		t.Fatal(err)
	}
	// Another kind changes: the watch's kind is idle.
	rev := bookmarkAfter(events, apply("DestinationRule", "reviews", "app: reviews"))
	// Its kind changes, in resources the selector leaves out.
	for i := range 3 {
		rev = max(rev, apply("VirtualService", "other", "app: other, round: r"+strconv.Itoa(i)))
		time.Sleep(200 * time.Millisecond)
	}
	rev = bookmarkAfter(events, rev)
	cancel()

	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apply("VirtualService", "reviews", "app: reviews")
	resumed, err := api.Watch(ctx, sel, strconv.FormatInt(rev, 10))
	if err != nil {
		t.Fatalf("watching from the bookmark's revision %d: %v", rev, err)
	}
	ev := <-resumed
	if r, err := ev.Resource(); err != nil || ev.Type != client.WatchAdded || r.Meta.Name != "reviews" {
		t.Fatalf("resumed from the bookmark: %s %s (%v), want ADDED reviews", ev.Type, ev.Object, err)
	}

	// A watch that does not ask is sent no bookmarks.
	plain, err := api.Watch(ctx, client.Selection{Kind: "virtualservices", Namespace: "default", LabelSelector: "app=reviews"}, strconv.FormatInt(rev, 10))
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-plain; ev.Type != client.WatchAdded {
		t.Fatalf("the first event of a watch without bookmarks: %s, want ADDED", ev.Type)
	}
	apply("DestinationRule", "reviews", "app: reviews, round: again")
	select {
	case ev := <-plain:
		t.Fatalf("a watch without bookmarks was sent %s %s", ev.Type, ev.Object)
	case <-time.After(time.Second): // three progress intervals
	}
}
