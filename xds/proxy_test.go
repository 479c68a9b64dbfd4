package xds

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseProxy(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{
		"NAMESPACE": "shop", "GENERATOR": "grpc", "SERVICE_ACCOUNT": "cart", "NETWORK": "east",
		"LABELS": map[string]any{"app": "cart", "version": "v2"},
	})
	tests := []struct {
		name    string
		node    *corev3.Node
		wantNS  string
		wantErr string
	}{
		{"istio sidecar id with metadata", &corev3.Node{Id: "sidecar~10.0.0.7~cart-1.shop~shop.svc.cluster.local", Metadata: md}, "shop", ""},
		{"namespace from the id", &corev3.Node{Id: "router~10.0.0.7~gw-1.edge~edge.svc.cluster.local"}, "edge", ""},
		{"missing id", &corev3.Node{}, "", "missing"},
		{"three parts", &corev3.Node{Id: "sidecar~10.0.0.7~cart"}, "", "type~ip~name~domain"},
		{"unknown type", &corev3.Node{Id: "gateway~10.0.0.7~x.y~y.svc.cluster.local"}, "", "invalid node type"},
		{"bad ip", &corev3.Node{Id: "sidecar~host~x.y~y.svc.cluster.local"}, "", "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProxy(tt.node)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Namespace != tt.wantNS {
				t.Fatalf("namespace %q, want %q", p.Namespace, tt.wantNS)
			}
		})
	}
	p, _ := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.7~cart-1.shop~shop.svc.cluster.local", Metadata: md})
	if p.Generator != GeneratorGRPC || p.ServiceAccount != "cart" || p.Labels["version"] != "v2" || p.Network != "east" {
		t.Fatalf("metadata not read: %+v", p)
	}
	q := *p
	q.Labels = map[string]string{"version": "v2", "app": "cart"}
	if p.classKey() != q.classKey() {
		t.Fatal("equal proxies must share a class")
	}
	q.Labels = map[string]string{"version": "v1", "app": "cart"}
	if p.classKey() == q.classKey() {
		t.Fatal("proxies with different labels must not share a class")
	}
}
