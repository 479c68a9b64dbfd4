package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
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

// TestTLSAndCAKeys: an https server is trusted through TrustPEM only, and a CA key is
// never sent in clear to another host.
func TestTLSAndCAKeys(t *testing.T) {
	var imported bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imported = r.URL.Path == "/api/v1/ca/import"
		json.NewEncoder(w).Encode(CAInfo{TrustDomain: "cluster.local"})
	}))
	defer srv.Close()
	ctx := context.Background()

	c := New(srv.URL, "s3cret")
	if _, err := c.CA(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server signed by an unknown CA was trusted: %v", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := c.TrustPEM(caPEM); err != nil {
		t.Fatal(err)
	}
	if info, err := c.CA(ctx); err != nil || info.TrustDomain != "cluster.local" {
		t.Fatalf("over https with the CA trusted: %v %+v", err, info)
	}
	if _, err := c.ImportCA(ctx, CAImportRequest{Key: "key"}); err != nil || !imported {
		t.Fatalf("import over https: %v (reached the server: %v)", err, imported)
	}
	if err := New(srv.URL, "").TrustPEM([]byte("not PEM")); err == nil {
		t.Fatal("TrustPEM accepted a file without certificates")
	}

	// 192.0.2.1 is TEST-NET-1: the client must refuse before it dials anything.
	if _, err := New("192.0.2.1:15014", "s3cret").ImportCA(ctx, CAImportRequest{Key: "key"}); err == nil || !strings.Contains(err.Error(), "refusing to send a CA key in clear") {
		t.Fatalf("import over plain HTTP to another host: %v", err)
	}
	if _, err := New("192.0.2.1:15014", "s3cret").PutCredential(ctx, CredentialRequest{Key: "key"}); err == nil || !strings.Contains(err.Error(), "refusing to send a private key in clear") {
		t.Fatalf("a credential over plain HTTP to another host: %v", err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1", "127.0.0.2"} {
		if !IsLoopback(host) {
			t.Errorf("%s is loopback", host)
		}
	}
	if IsLoopback("10.0.0.1") || IsLoopback("example.com") {
		t.Error("a remote host taken for loopback")
	}
}

// TestClientMovesToTheNextServer: given several servers, a request goes to the next
// when one cannot be reached or answers 503 (it did nothing), and the client stays
// with the one that answered; any other answer, an error included, is the answer.
func TestClientMovesToTheNextServer(t *testing.T) {
	var applies []string
	serve := func(name string, status int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req ApplyRequest
			json.NewDecoder(r.Body).Decode(&req)
			applies = append(applies, name+":"+req.Files[0].Data)
			w.WriteHeader(status)
			if status != http.StatusOK {
				json.NewEncoder(w).Encode(ErrorResponse{Error: name + " says no"})
				return
			}
			json.NewEncoder(w).Encode(ApplyResponse{Revision: 7})
		}))
	}
	minority := serve("minority", http.StatusServiceUnavailable)
	defer minority.Close()
	healthy := serve("healthy", http.StatusOK)
	defer healthy.Close()
	refusing := serve("refusing", http.StatusBadRequest)
	defer refusing.Close()
	down := httptest.NewServer(http.NotFoundHandler()) // after the others: its port is not theirs
	downAddr := down.URL
	down.Close() // refuses connections from now on

	c := New(downAddr+", "+minority.URL+","+healthy.URL, "")
	for i := 0; i < 2; i++ {
		resp, err := c.Apply(context.Background(), "", []File{{Source: "a", Data: "doc"}})
		if err != nil || resp.Revision != 7 {
			t.Fatalf("apply %d: %v %+v", i, err, resp)
		}
	}
	if got := strings.Join(applies, " "); got != "minority:doc healthy:doc healthy:doc" {
		t.Errorf("requests seen: %s; want the body sent again to the next server, and the second apply straight to the healthy one", got)
	}

	applies = nil
	c = New(refusing.URL+","+healthy.URL, "")
	if _, err := c.Apply(context.Background(), "", []File{{Source: "a", Data: "doc"}}); err == nil || err.Error() != "refusing says no" {
		t.Errorf("a refusal: %v, want it returned as it is", err)
	}
	if len(applies) != 1 {
		t.Errorf("a refused request was sent on: %v", applies)
	}

	c = New(downAddr+","+minority.URL, "")
	_, err := c.Apply(context.Background(), "", []File{{Source: "a", Data: "doc"}})
	if err == nil || !strings.Contains(err.Error(), "cannot reach navarch at "+downAddr) || !strings.Contains(err.Error(), "minority says no") {
		t.Errorf("none answering: %v, want what each said", err)
	}
}
