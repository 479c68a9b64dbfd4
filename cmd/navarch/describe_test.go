package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/navarch/navarch/client"
)

func TestWriteDescription(t *testing.T) {
	d := &client.ServiceDescription{
		Proxy: "grpc sidecar in default",
		Service: client.ServiceListing{Host: "reviews.default.svc.cluster.local", Origin: "ServiceEntry default/reviews", Source: "serviceentry",
			Endpoints: []client.EndpointListing{{Address: "10.0.0.1", Healthy: true, Labels: map[string]string{"version": "v1"}}, {Address: "10.0.0.2"}}},
		Ports: []client.PortDescription{{Number: 9080, Name: "grpc", Protocol: "GRPC", TLS: "mTLS", Reason: "automatic mTLS: every endpoint requires it"}},
		DestinationRule: &client.RuleDescription{Namespace: "default", Name: "reviews", Host: "reviews", LoadBalancer: "LEAST_REQUEST",
			Subsets: []client.SubsetDescription{{Name: "v1", Labels: map[string]string{"version": "v1"}, Endpoints: 1}}},
		VirtualService: &client.VirtualServiceDescription{Namespace: "default", Name: "reviews", Hosts: []string{"reviews.default.svc.cluster.local"},
			HTTP: []client.RouteDescription{{Match: []string{"header end-user exact jason", "port 9080"},
				Destinations: []client.DestinationDescription{{Host: "reviews", Subset: "v1", Percent: 80}, {Host: "reviews", Port: 9081, Percent: 20}},
				Also:         []string{"timeout 2s"}}}},
		Inbound: []client.InboundDescription{{Endpoints: []string{"a (10.0.0.1)", "b (10.0.0.2)"}, MTLS: map[uint32]string{9080: "STRICT"},
			PeerAuthentications: []string{"istio-system/default"}}},
		Gateways: []client.GatewayExposure{
			{Gateway: "default/public", Port: 80, Protocol: "HTTP", Hosts: []string{"shop.example.com", "www.example.com"}, VirtualService: "default/shop",
				Routes:    []client.RouteDescription{{Match: []string{"uri prefix /reviews"}, Destinations: []client.DestinationDescription{{Host: "reviews", Percent: 100}}}},
				Addresses: []string{"10.0.0.50", "10.0.0.51"}},
			{Gateway: "default/edge", Port: 443, Protocol: "TLS", Hosts: []string{"reviews.example.com"}, VirtualService: "default/edge"},
		},
		Messages: []client.AnalysisMessage{{Code: "IST0101", Level: "Error", Kind: "VirtualService", Namespace: "default", Name: "reviews", Message: "no subset"}},
	}
	var out bytes.Buffer
	writeDescription(&out, d)
	want := `Service: reviews.default.svc.cluster.local (ServiceEntry default/reviews, serviceentry)
   As seen by: grpc sidecar in default
   Port grpc 9080/GRPC: mTLS
      automatic mTLS: every endpoint requires it
   Endpoints: 2, 1 healthy
      10.0.0.1 healthy version=v1
      10.0.0.2 unhealthy -
DestinationRule: default/reviews for "reviews"
   Subset v1 (version=v1): 1 endpoint
   Traffic policy: load balancer LEAST_REQUEST
VirtualService: default/reviews (hosts reviews.default.svc.cluster.local)
   HTTP route 1: match header end-user exact jason OR port 9080
      80% reviews subset v1
      20% reviews:9081
      also: timeout 2s
Exposed on gateways:
   default/public port 80/HTTP, hosts shop.example.com, www.example.com (VirtualService default/shop), at 10.0.0.50, 10.0.0.51
      HTTP route 1: match uri prefix /reviews
         100% reviews
   default/edge port 443/TLS, hosts reviews.example.com (VirtualService default/edge), no registered gateway workload
Endpoints' policies:
   a (10.0.0.1), b (10.0.0.2):
      mTLS STRICT on 9080 (PeerAuthentication istio-system/default)
      AuthorizationPolicies: -
Error [IST0101] (VirtualService default/reviews) no subset
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestWriteWorkloadDescription(t *testing.T) {
	d := &client.WorkloadDescription{
		Workload: client.EndpointListing{Name: "ratings-1", Namespace: "shop", Address: "10.0.0.7", Ports: map[string]uint32{"grpc": 8080},
			Labels: map[string]string{"app": "ratings"}, ServiceAccount: "ratings", Healthy: true, Source: "vm"},
		Origin: "WorkloadEntry shop/ratings-1", MTLS: "STRICT", MTLSFrom: "istio-system/default",
		Services: []client.WorkloadServiceInfo{{Host: "ratings.shop.svc.cluster.local", Namespace: "shop", DestinationRule: "shop/ratings",
			Ports: []client.WorkloadPortServing{{Name: "grpc", Number: 9090, Protocol: "GRPC", Target: 8080, MTLS: "PERMISSIVE", MTLSFrom: "shop/ratings"}}}},
		Authorization: []client.PolicyReference{{Namespace: "shop", Name: "deny", Action: "DENY"}},
		Gateways: []client.WorkloadGateway{{Gateway: "shop/public", Servers: []client.GatewayServer{
			{Port: 80, Name: "http", Protocol: "HTTP", Hosts: []string{"a.example.com", "b.example.com"}, Listen: 8080, TLS: "httpsRedirect"},
			{Port: 443, Protocol: "HTTPS", Hosts: []string{"a.example.com"}, Listen: 443, Bind: "10.0.0.7", TLS: "SIMPLE credential a-cert"},
			{Port: 80, Name: "tcp", Protocol: "TCP", Hosts: []string{"*"}, LeftOut: "port 8080: cannot share the port"},
		}}},
	}
	var out bytes.Buffer
	writeWorkloadDescription(&out, d)
	want := `Workload: shop/ratings-1 (WorkloadEntry shop/ratings-1, vm)
   Address: 10.0.0.7 (grpc=8080), healthy
   Labels: app=ratings
   Service account: ratings   Locality: -   Network: -
Service: ratings.shop.svc.cluster.local
   Port grpc 9090/GRPC: served on 8080, mTLS PERMISSIVE (PeerAuthentication shop/ratings)
   DestinationRule: shop/ratings   VirtualService: - (as a client in shop takes them)
mTLS: STRICT on ports no policy names (PeerAuthentication istio-system/default)
AuthorizationPolicies: shop/deny (DENY)
Sidecar: -
Gateway: shop/public
   Server 80/HTTP (http): hosts a.example.com, b.example.com, TLS httpsRedirect, listens on 8080
   Server 443/HTTPS: hosts a.example.com, TLS SIMPLE credential a-cert, listens on 10.0.0.7 port 443
   Server 80/TCP (tcp): hosts *, left out: port 8080: cannot share the port
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestDescribeUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"pod", "x"}, {"service"}, {"service", "a", "b"}, {"workload"}} {
		err := runDescribe(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), "usage: navarch describe service <host>") {
			t.Errorf("describe %q: %v, want the usage", args, err)
		}
	}
}
