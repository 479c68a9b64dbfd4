package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/navarch/navarch/client"
)

// Completion offers this build's commands, a command's subcommands and flags (from
// its own usage), kinds, and the names of the resources the node holds in the
// namespace the command line names.
func TestComplete(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("Authorization"))
		if r.URL.Path == "/debug/registry" {
			json.NewEncoder(w).Encode(client.RegistryListing{Services: []client.ServiceListing{{Host: "ratings.shop.svc.cluster.local",
				Endpoints: []client.EndpointListing{{Name: "ratings-1", Namespace: "shop"}, {Name: "ratings-2", Namespace: "other"}}}},
				Unselected: []client.EndpointListing{{Name: "vm-1", Namespace: "shop"}}})
			return
		}
		json.NewEncoder(w).Encode(client.ListResponse{Items: []json.RawMessage{
			json.RawMessage(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews","namespace":"shop"},"spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"}}]}]}}`)}})
	}))
	defer srv.Close()
	t.Setenv("NAVARCH_SERVER", "")
	t.Setenv("NAVARCH_TOKEN", "s3cret")
	for _, c := range []struct {
		words []string
		has   []string
		not   []string
	}{
		{[]string{""}, []string{"get", "apply", "status", "completion"}, []string{"__complete"}},
		{[]string{"ca", ""}, []string{"show", "import", "rotate"}, nil},
		{[]string{"apply", "-"}, []string{"-f", "-n", "--dry-run", "--server"}, []string{"--f"}},
		{[]string{"ca", "import", "--"}, []string{"--cert", "--key"}, nil},
		{[]string{"get", ""}, []string{"all", "virtualservices", "vs", "dr"}, nil},
		{[]string{"edit", "vs", "-n", "shop", "--server", srv.URL, ""}, []string{"reviews"}, nil},
		{[]string{"version", ""}, nil, []string{"get"}},
		{[]string{"describe", ""}, []string{"service", "workload"}, nil},
		{[]string{"describe", "service", "--server", srv.URL, ""}, []string{"ratings.shop.svc.cluster.local"}, nil},
		{[]string{"describe", "workload", "-n", "shop", "--server", srv.URL, ""}, []string{"ratings-1", "vm-1"}, []string{"ratings-2"}},
	} {
		got := complete(context.Background(), c.words)
		for _, w := range c.has {
			if !slices.Contains(got, w) {
				t.Errorf("%q: %v lacks %s", c.words, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("%q: %v has %s", c.words, got, w)
			}
		}
	}
	if len(asked) != 3 || asked[0] != "/api/v1/config/virtualservices?namespace=shop Bearer s3cret" {
		t.Errorf("the node was asked %v, want the list of the namespace the command line names, with the token", asked)
	}
}
