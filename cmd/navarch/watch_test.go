package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

// The table of a watch keeps its columns as wide as the widest value so far, with
// the event first; -o name says the event and the resource.
func TestEventPrinter(t *testing.T) {
	rs, _, err := api.Decode("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-much-longer-name}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
`), "default")
	if err != nil {
		t.Fatal(err)
	}
	print := func(format string, fit bool) string {
		var b strings.Builder
		p, err := newEventPrinter(&b, format, false)
		if err != nil {
			t.Fatal(err)
		}
		if fit {
			p.fit(client.WatchAdded, rs[0])
		}
		for i, typ := range []string{client.WatchAdded, client.WatchDeleted} {
			if err := p.print(client.WatchEvent{Type: typ}, rs[i]); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	want := `EVENT      KIND             NAME      SUMMARY         AGE
ADDED      VirtualService   reviews   hosts=reviews   -
DELETED    VirtualService   a-much-longer-name   hosts=reviews   -
`
	if got := print("", true); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if got := print("name", false); got != "ADDED virtualservice.networking.istio.io/reviews\nDELETED virtualservice.networking.istio.io/a-much-longer-name\n" {
		t.Errorf("-o name:\n%s", got)
	}
	if _, err := newEventPrinter(&strings.Builder{}, "wide-ish", false); err == nil {
		t.Error("an unknown format was taken")
	}
}

// A watch whose node stops goes on through the next node; when etcd no longer keeps
// the revision it had reached, it lists again and shows what changed meanwhile.
func TestWatchRelistsAfterCompaction(t *testing.T) {
	vs := func(name, rv string) json.RawMessage {
		rs, _, err := api.Decode("vs.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: "+name+"}\n"+
			"spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n"), "default")
		if err != nil {
			t.Fatal(err)
		}
		rs[0].Meta.ResourceVersion = rv
		b, err := rs[0].MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lists := 0
	serve := func(first bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			switch {
			case q.Get("watch") == "" && first:
				lists++
				json.NewEncoder(w).Encode(client.ListResponse{Revision: 10, Items: []json.RawMessage{vs("a", "5"), vs("b", "6")}})
			case q.Get("watch") == "":
				lists++
				json.NewEncoder(w).Encode(client.ListResponse{Revision: 12, Items: []json.RawMessage{vs("a", "12"), vs("c", "11")}})
			case first: // the node stops
				json.NewEncoder(w).Encode(client.WatchEvent{Type: client.WatchError, Error: "the node is stopping"})
			case q.Get("resourceVersion") == "10":
				w.WriteHeader(http.StatusGone)
				json.NewEncoder(w).Encode(client.ErrorResponse{Error: "compacted"})
			default: // from the relist: nothing more happens
				w.WriteHeader(http.StatusOK)
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
			}
		}))
	}
	s1, s2 := serve(true), serve(false)
	defer s1.Close()
	defer s2.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedWriter{}
	done := make(chan error, 1)
	go func() {
		done <- watchResources(ctx, out, client.New(s1.URL+","+s2.URL, ""), "", api.VirtualService, "default", nil, labels.Everything(), "name")
	}()
	want := "ADDED virtualservice.networking.istio.io/a\nADDED virtualservice.networking.istio.io/b\n" +
		"MODIFIED virtualservice.networking.istio.io/a\nADDED virtualservice.networking.istio.io/c\nDELETED virtualservice.networking.istio.io/b\n"
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the watch ended with %v", err)
	}
	if got := out.String(); got != want || lists != 2 {
		t.Errorf("after %d lists:\n%s\nwant:\n%s", lists, got, want)
	}
}

// lockedWriter is a strings.Builder written by one goroutine and read by another.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
