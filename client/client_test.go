package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientSendsTokenAndDecodesErrors(t *testing.T) {
	var gotAuth string
	var gotBody ApplyRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/api/v1/apply":
			json.NewDecoder(r.Body).Decode(&gotBody)
			json.NewEncoder(w).Encode(ApplyResponse{Results: []Result{{Kind: "VirtualService", Namespace: "default", Name: "reviews", Action: "created"}}})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(ErrorResponse{Error: "VirtualService default/nope: not found"})
		}
	}))
	defer srv.Close()
	c := New(strings.TrimPrefix(srv.URL, "http://"), "s3cret")
	resp, err := c.Apply(context.Background(), "shop", []File{{Source: "a.yaml", Data: "kind: x"}})
	if err != nil || len(resp.Results) != 1 || resp.Results[0].Action != "created" {
		t.Fatalf("apply: %v %+v", err, resp)
	}
	if gotAuth != "Bearer s3cret" || gotBody.Namespace != "shop" || gotBody.Files[0].Source != "a.yaml" {
		t.Fatalf("the server saw auth %q body %+v", gotAuth, gotBody)
	}
	_, err = c.Get(context.Background(), "vs", "default", "nope")
	if !IsNotFound(err) || err.Error() != "VirtualService default/nope: not found" {
		t.Fatalf("get: %v, want the server's not-found message", err)
	}
}
