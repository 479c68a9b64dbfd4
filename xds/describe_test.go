package xds

import (
	"reflect"
	"strings"
	"testing"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
)

// describeMesh is a service with two versions, the rules that route and secure it,
// and a Sidecar that keeps namespace "scoped" to itself.
const describeMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}, {number: 9443, name: grpc-admin, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 10.0.0.11, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 10.0.0.12, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    portLevelSettings: [{port: {number: 9443}, tls: {mode: ISTIO_MUTUAL}}]
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}, {uri: {prefix: /admin}, port: 9443}]
    route: [{destination: {host: reviews, subset: v2}}]
    fault: {abort: {percentage: {value: 10}, httpStatus: 503}}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 120}
    - {destination: {host: reviews, subset: v2}, weight: 30}
    timeout: 2s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: v2, namespace: shop}
spec: {selector: {matchLabels: {version: v2}}, portLevelMtls: {9080: {mode: PERMISSIVE}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-web, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v1-only, namespace: shop}
spec:
  selector: {matchLabels: {version: v1}}
  rules: [{from: [{source: {namespaces: [shop]}}]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec: {egress: [{hosts: [./*]}]}
`

// Describe says which rules a client takes for a service, what they do, how the
// client secures each port and why, and groups the endpoints by the policies they
// serve under.
func TestDescribe(t *testing.T) {
	snap := snapshotOf(t, describeMesh)
	s := &Server{cfg: DefaultConfig()}
	d, svc, err := s.Describe(snap, grpcProxy("shop", map[string]string{"app": "web"}), "reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Hostname != "reviews.shop.svc.cluster.local" || d.Proxy != "grpc sidecar in shop (app=web)" {
		t.Fatalf("service %s, proxy %q", svc.Hostname, d.Proxy)
	}
	wantRule := &client.RuleDescription{Namespace: "shop", Name: "reviews", Host: "reviews", LoadBalancer: "consistent hash (header x-user)",
		Subsets: []client.SubsetDescription{
			{Name: "v1", Labels: map[string]string{"version": "v1"}, Endpoints: 1},
			{Name: "v2", Labels: map[string]string{"version": "v2"}, Endpoints: 1},
			{Name: "v3", Labels: map[string]string{"version": "v3"}, Endpoints: 0},
		}}
	if !reflect.DeepEqual(d.DestinationRule, wantRule) {
		t.Errorf("destination rule %+v\nwant %+v", d.DestinationRule, wantRule)
	}
	vs := d.VirtualService
	if vs == nil || vs.Name != "reviews" || len(vs.HTTP) != 2 {
		t.Fatalf("virtual service %+v", vs)
	}
	wantFirst := client.RouteDescription{Name: "jason", Match: []string{"header end-user exact jason", "uri prefix /admin, port 9443"},
		Destinations: []client.DestinationDescription{{Host: "reviews", Subset: "v2", Percent: 100}},
		Also:         []string{"fault abort 10% status 503"}}
	if !reflect.DeepEqual(vs.HTTP[0], wantFirst) {
		t.Errorf("first route %+v\nwant %+v", vs.HTTP[0], wantFirst)
	}
	if got := vs.HTTP[1].Destinations; len(got) != 2 || got[0].Percent != 80 || got[1].Percent != 20 {
		t.Errorf("weights 120/30 are relative, as in Istio: %+v", got)
	}
	// 9080: v2 serves it PERMISSIVE, so a proxyless client, which cannot tell, stays
	// plaintext; 9443: the DestinationRule's port-level ISTIO_MUTUAL.
	if p := d.Ports[0]; p.Number != 9080 || p.TLS != "plaintext" || !strings.Contains(p.Reason, "not every endpoint requires mTLS") {
		t.Errorf("port 9080: %+v", p)
	}
	if p := d.Ports[1]; p.Number != 9443 || p.TLS != "mTLS" || p.Reason != "DestinationRule shop/reviews: tls mode ISTIO_MUTUAL" {
		t.Errorf("port 9443: %+v", p)
	}
	wantInbound := []client.InboundDescription{
		{Endpoints: []string{"reviews-v1 (10.0.0.11)"}, MTLS: map[uint32]string{9080: "STRICT", 9443: "STRICT"},
			PeerAuthentications: []string{"istio-system/default"},
			Authorization:       []client.PolicyReference{{Namespace: "shop", Name: "deny-web", Action: "DENY"}, {Namespace: "shop", Name: "v1-only", Action: "ALLOW"}}},
		{Endpoints: []string{"reviews-v2 (10.0.0.12)"}, MTLS: map[uint32]string{9080: "PERMISSIVE", 9443: "STRICT"},
			PeerAuthentications: []string{"shop/v2", "istio-system/default"},
			Authorization:       []client.PolicyReference{{Namespace: "shop", Name: "deny-web", Action: "DENY"}}},
	}
	if !reflect.DeepEqual(d.Inbound, wantInbound) {
		t.Errorf("inbound %+v\nwant %+v", d.Inbound, wantInbound)
	}
	if len(d.Errors) > 0 {
		t.Errorf("errors: %v", d.Errors)
	}

	// An Envoy takes mTLS by endpoint (both have a service account, so a sidecar).
	d, _, err = s.Describe(snap, &Proxy{ID: "sidecar~10.0.0.9~web.shop~shop.svc.cluster.local", Type: TypeSidecar, IP: "10.0.0.9", Namespace: "shop"},
		"reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Ports[0]; p.TLS != "mTLS" || !strings.Contains(p.Reason, "by endpoint") {
		t.Errorf("an Envoy's port 9080: %+v", p)
	}
	// One without a service account (nor Istio's label) has no sidecar to take it.
	mixed := snapshotOf(t, strings.Replace(describeMesh, "labels: {app: reviews, version: v2}, serviceAccount: reviews", "labels: {app: reviews, version: v2}", 1))
	d, _, err = s.Describe(mixed, &Proxy{ID: "sidecar~10.0.0.9~web.shop~shop.svc.cluster.local", Type: TypeSidecar, IP: "10.0.0.9", Namespace: "shop"},
		"reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Ports[0]; p.TLS != "mTLS to 1 of 2 endpoints, plaintext to the others" {
		t.Errorf("an Envoy's port 9080 with one endpoint without a sidecar: %+v", p)
	}

	// Under STRICT everywhere a proxyless client uses mTLS by itself.
	strict := snapshotOf(t, strings.Replace(describeMesh, "portLevelMtls: {9080: {mode: PERMISSIVE}}", "mtls: {mode: STRICT}", 1))
	d, _, err = s.Describe(strict, grpcProxy("shop", nil), "reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Ports[0]; p.TLS != "mTLS" || !strings.Contains(p.Reason, "every endpoint requires it") {
		t.Errorf("port 9080 under STRICT: %+v", p)
	}

	// A namespace whose Sidecar does not import the service is told so.
	d, _, err = s.Describe(snap, grpcProxy("scoped", nil), "reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "Sidecar scoped/default does not import the service") {
		t.Errorf("a Sidecar that hides the service: %v", d.Errors)
	}
}

func TestDescribeRefuses(t *testing.T) {
	snap := snapshotOf(t, strings.Replace(describeMesh, "resolution: STATIC", "resolution: STATIC\n  exportTo: [.]", 1))
	s := &Server{cfg: DefaultConfig()}
	for _, tt := range []struct {
		proxy *Proxy
		host  string
		want  string
	}{
		{grpcProxy("other", nil), "reviews.shop.svc.cluster.local", "service reviews.shop.svc.cluster.local (namespace shop) is not exported to namespace other (exportTo .)"},
		{grpcProxy("shop", nil), "ratings.shop.svc.cluster.local", "no service ratings.shop.svc.cluster.local in the registry"},
		{&Proxy{Type: TypeRouter, Namespace: "shop"}, "reviews.shop.svc.cluster.local", `proxy type "router": describe explains what sidecars and proxyless clients get`},
	} {
		if _, _, err := s.Describe(snap, tt.proxy, tt.host); err == nil || err.Error() != tt.want {
			t.Errorf("%s from %s: %v, want %q", tt.host, tt.proxy.Namespace, err, tt.want)
		}
	}
}

// DescribeWorkload says what a workload serves and under which policies, each mode
// with the PeerAuthentication it comes from.
func TestDescribeWorkload(t *testing.T) {
	snap := snapshotOf(t, describeMesh, `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: batch, namespace: scoped}
spec: {address: 10.0.0.30, labels: {app: batch}}
`)
	s := &Server{cfg: DefaultConfig()}
	find := func(ns, name string) *registry.Workload { return workloadNamed(t, snap, ns, name) }
	d := s.DescribeWorkload(snap, find("shop", "reviews-v2"))
	want := &client.WorkloadDescription{Revision: snap.Revision, Origin: "WorkloadEntry shop/reviews-v2",
		MTLS: "STRICT", MTLSFrom: "istio-system/default", PeerAuthentications: []string{"istio-system/default", "shop/v2"},
		Services: []client.WorkloadServiceInfo{{Host: "reviews.shop.svc.cluster.local", Namespace: "shop",
			DestinationRule: "shop/reviews", VirtualService: "shop/reviews",
			Ports: []client.WorkloadPortServing{
				{Name: "grpc", Number: 9080, Protocol: "GRPC", Target: 9080, MTLS: "PERMISSIVE", MTLSFrom: "shop/v2"},
				{Name: "grpc-admin", Number: 9443, Protocol: "GRPC", Target: 9443, MTLS: "STRICT", MTLSFrom: "istio-system/default"},
			}}},
		Authorization: []client.PolicyReference{{Namespace: "shop", Name: "deny-web", Action: "DENY"}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("reviews-v2:\n%+v\nwant\n%+v", d, want)
	}
	d = s.DescribeWorkload(snap, find("scoped", "batch"))
	if len(d.Services) != 0 || d.Sidecar != "scoped/default" || d.MTLS != "STRICT" || len(d.Authorization) != 0 {
		t.Errorf("batch: %+v", d)
	}
}

// describeGatewaysMesh exposes reviews (of describeMesh) on two gateways: one
// registered, by HTTP routes and by SNI, one not registered.
const describeGatewaysMesh = describeMesh + `
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress-1, namespace: shop}
spec: {address: 10.0.0.50, labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com, blog.example.com]}
  - {port: {number: 443, name: tls, protocol: TLS}, hosts: [secure.example.com], tls: {mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: edge}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
  - match: [{uri: {prefix: /old}}]
    route: [{destination: {host: reviews, subset: v1}, weight: 0}, {destination: {host: ratings}, weight: 100}]
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: blog, namespace: shop}
spec:
  hosts: [blog.example.com]
  gateways: [public]
  http: [{route: [{destination: {host: ratings}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: shop}
spec:
  hosts: [secure.example.com]
  gateways: [public]
  tls: [{match: [{sniHosts: [secure.example.com], port: 443}], route: [{destination: {host: reviews, port: {number: 9443}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: [reviews.example.org]
  gateways: [edge, mesh]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: elsewhere, namespace: shop}
spec:
  hosts: [reviews.example.net]
  gateways: [public]
  http: [{route: [{destination: {host: reviews}}]}]
`

// Describe says where gateways expose a service: the Gateway's server, the
// names clients use there, the VirtualService and its routes that reach the
// service (not those to other services, nor of weight 0), and the gateway's
// registered addresses; a VirtualService whose hosts no server admits exposes
// nothing.
func TestDescribeGateways(t *testing.T) {
	snap := snapshotOf(t, describeGatewaysMesh)
	s := &Server{cfg: DefaultConfig()}
	d, _, err := s.Describe(snap, grpcProxy("shop", nil), "reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	want := []client.GatewayExposure{
		{Gateway: "shop/edge", Port: 8080, Protocol: "HTTP", Hosts: []string{"reviews.example.org"}, VirtualService: "shop/edge",
			Routes: []client.RouteDescription{{Destinations: []client.DestinationDescription{{Host: "reviews", Percent: 100}}}}},
		{Gateway: "shop/public", Port: 80, Protocol: "HTTP", Hosts: []string{"shop.example.com"}, VirtualService: "shop/shop",
			Routes: []client.RouteDescription{{Match: []string{"uri prefix /reviews"},
				Destinations: []client.DestinationDescription{{Host: "reviews", Subset: "v1", Port: 9080, Percent: 100}}}},
			Addresses: []string{"10.0.0.50"}},
		{Gateway: "shop/public", Port: 443, Protocol: "TLS", Hosts: []string{"secure.example.com"}, VirtualService: "shop/secure",
			Addresses: []string{"10.0.0.50"}},
	}
	if !reflect.DeepEqual(d.Gateways, want) {
		t.Errorf("gateways:\n%+v\nwant\n%+v", d.Gateways, want)
	}
	// A service no gateway routes to is exposed nowhere.
	d, _, err = s.Describe(snapshotOf(t, describeMesh), grpcProxy("shop", nil), "reviews.shop.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if d.Gateways == nil || len(d.Gateways) != 0 {
		t.Errorf("without gateways: %+v", d.Gateways)
	}
}

// A gateway's workload is described with the Gateways that select it: each
// server with the port the gateway listens on for it (its service's target
// port), its TLS, or why the build leaves it out.
func TestDescribeGatewayWorkload(t *testing.T) {
	snap := snapshotOf(t, describeGatewaysMesh, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ingress, namespace: shop}
spec:
  hosts: [ingress.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  workloadSelector: {labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-clash, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: tcp, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 8443, name: https, protocol: HTTPS}, hosts: [shop/www.example.com], tls: {mode: SIMPLE, credentialName: www-cert}}
`)
	s := &Server{cfg: DefaultConfig()}
	d := s.DescribeWorkload(snap, workloadNamed(t, snap, "shop", "ingress-1"))
	want := []client.WorkloadGateway{
		{Gateway: "shop/public", Servers: []client.GatewayServer{
			{Port: 80, Name: "http", Protocol: "HTTP", Hosts: []string{"shop.example.com", "blog.example.com"}, Listen: 8080},
			{Port: 443, Name: "tls", Protocol: "TLS", Hosts: []string{"secure.example.com"}, Listen: 443, TLS: "PASSTHROUGH"},
		}},
		{Gateway: "shop/tcp-clash", Servers: []client.GatewayServer{
			{Port: 80, Name: "tcp", Protocol: "TCP", Hosts: []string{"*"},
				LeftOut: "port 8080: cannot share the port with shop/public.0 (HTTP, TCP and TLS servers each need a port of their own)"},
			{Port: 8443, Name: "https", Protocol: "HTTPS", Hosts: []string{"shop/www.example.com"}, Listen: 8443, TLS: "SIMPLE credential www-cert"},
		}},
	}
	if !reflect.DeepEqual(d.Gateways, want) {
		t.Errorf("gateways:\n%+v\nwant\n%+v", d.Gateways, want)
	}
	// A workload no Gateway selects has none.
	if d := s.DescribeWorkload(snap, workloadNamed(t, snap, "shop", "reviews-v1")); d.Gateways != nil {
		t.Errorf("reviews-v1: gateways %+v", d.Gateways)
	}
}

// workloadNamed is snap's workload ns/name; the test fails without one.
func workloadNamed(t *testing.T, snap *registry.Snapshot, ns, name string) *registry.Workload {
	t.Helper()
	for _, w := range snap.Workloads() {
		if w.Namespace == ns && w.Name == name {
			return w
		}
	}
	t.Fatalf("no workload %s/%s", ns, name)
	return nil
}
