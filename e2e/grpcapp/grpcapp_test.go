package grpcapp

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func TestBootstrapWith(t *testing.T) {
	b := BootstrapWith(BootstrapOptions{Servers: []string{"127.0.0.1:15012"}, Namespace: "shop", Name: "web-1",
		CertDir: "/certs", XDSOverTLS: true, Labels: map[string]string{"app": "web"}})
	var doc struct {
		Servers []struct {
			URI   string `json:"server_uri"`
			Creds []struct {
				Type   string            `json:"type"`
				Config map[string]string `json:"config"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
		Providers map[string]struct {
			Config map[string]string `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Node.ID != "sidecar~127.0.0.1~web-1.shop~shop.svc.cluster.local" {
		t.Fatalf("node id %q", doc.Node.ID)
	}
	if c := doc.Servers[0].Creds[0]; c.Type != "tls" || c.Config["certificate_file"] != "/certs/cert-chain.pem" {
		t.Fatalf("channel creds %+v, want TLS with the workload's certificate", c)
	}
	if doc.Providers["default"].Config["ca_certificate_file"] != "/certs/root-cert.pem" {
		t.Fatalf("certificate providers %+v", doc.Providers)
	}
}

func TestBackendAnswersWithItsName(t *testing.T) {
	b, err := StartBackend("v7")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	cc, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil || resp.Hostname != "v7" || b.Calls() != 1 {
		t.Fatalf("%v %v, %d calls", resp, err, b.Calls())
	}
}
