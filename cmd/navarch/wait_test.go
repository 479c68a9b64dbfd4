package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/xds"
)

// TestWaitNamesWhoIsBehind: a wait that times out names the proxies that have
// not taken the revision, with what one rejected, and the node that did not
// answer; one whose proxies all have it succeeds and counts them.
func TestWaitNamesWhoIsBehind(t *testing.T) {
	proxies := []xds.ProxyStatus{
		{ID: "sidecar~10.0.0.1~a.shop~shop.svc.cluster.local", Synced: 12},
		{ID: "sidecar~10.0.0.2~b.shop~shop.svc.cluster.local", Synced: 0,
			Types: map[string]*xds.TypeStatus{"cds": {Sent: "v2", Nacked: "v2", NackError: "bad cluster"}}},
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("GET /api/v1/members", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode([]client.MemberInfo{
			{Name: "n1", Gossip: "alive", HTTP: strings.TrimPrefix(srv.URL, "http://")},
			{Name: "n2", Gossip: "alive", HTTP: "127.0.0.1:1"}, // nothing listens
		})
	})
	mux.HandleFunc("GET /debug/proxies", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(proxies) })
	c := client.New(srv.URL, "")

	var out bytes.Buffer
	err := waitSynced(context.Background(), c, 12, 500*time.Millisecond, &out)
	if err == nil || !strings.Contains(err.Error(), "taken by 1 of 2 proxies") ||
		!strings.Contains(err.Error(), "sidecar~10.0.0.2~b.shop~shop.svc.cluster.local on n1 (rejected cds: bad cluster)") ||
		!strings.Contains(err.Error(), "not answering: n2") {
		t.Fatalf("wait with a proxy behind: %v", err)
	}
	if err := waitSynced(context.Background(), c, 11, time.Second, &out); err == nil {
		t.Fatal("a wait succeeded while a proxy rejected its configuration")
	}
	proxies[1].Synced, proxies[1].Types = 13, nil
	out.Reset()
	if err := waitSynced(context.Background(), c, 12, 5*time.Second, &out); err != nil || !strings.HasPrefix(out.String(), "revision 12 taken by 2 of 2 proxies (1 nodes; not answering: n2") {
		t.Fatalf("wait with every proxy at the revision: %v, %q", err, out.String())
	}
}
