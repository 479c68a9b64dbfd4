package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/navarch/navarch/client"
	navarchversion "github.com/navarch/navarch/internal/version"
	"github.com/navarch/navarch/xds"
)

// navarch version lists the builds of the live nodes, each with its nodes, and the
// releases of their proxies, most common first; a node that does not answer is
// named on stderr, and a failed node is not counted.
func TestVersionAsksTheCluster(t *testing.T) {
	var proxies []xds.ProxyStatus
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	self := strings.TrimPrefix(srv.URL, "http://")
	mux.HandleFunc("GET /api/v1/members", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode([]client.MemberInfo{
			{Name: "n1", Gossip: "alive", HTTP: self, Version: "v1.5.0"},
			{Name: "n2", Gossip: "alive", HTTP: self, Version: "v1.4.0"},
			{Name: "n3", Gossip: "alive", HTTP: "127.0.0.1:1", Version: "v1.4.0"}, // nothing listens
			{Name: "n4", Gossip: "failed", HTTP: self, Version: "v1.3.0"},
		})
	})
	mux.HandleFunc("GET /debug/proxies", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(proxies) })
	version := func() (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := runVersion(context.Background(), []string{"--server", srv.URL}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String()
	}
	out, errOut := version()
	if want := "client version: " + navarchversion.String() + "\ncontrol plane version: v1.4.0 (n2, n3), v1.5.0 (n1)\ndata plane version: none (no proxies connected)\n"; out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if !strings.Contains(errOut, "warning: not counted: the proxies of n3") {
		t.Errorf("stderr %q does not name n3", errOut)
	}
	proxies = []xds.ProxyStatus{{IstioVersion: "1.29.0"}, {UserAgent: "gRPC Go 1.75.0"}, {IstioVersion: "1.29.0", UserAgent: "envoy 1.37.0"}, {}}
	// n1 and n2 both answer with these: each proxy counted once per node.
	if out, _ = version(); !strings.HasSuffix(out, "data plane version: 1.29.0 (4 proxies), gRPC Go 1.75.0 (2 proxies), unknown (2 proxies)\n") {
		t.Errorf("got\n%s", out)
	}
	var short bytes.Buffer
	if err := runVersion(context.Background(), []string{"--remote=false", "--server", "http://127.0.0.1:1"}, &short, io.Discard); err != nil || short.String() != "navarch "+navarchversion.String()+"\n" {
		t.Errorf("--remote=false: %q, %v", short.String(), err)
	}
}
