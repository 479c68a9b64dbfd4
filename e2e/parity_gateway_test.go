package e2e

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/peers"
)

// gatewayParity is a gateway with a server of every kind, some sharing a port: two
// plain HTTP servers on port 80 (one redirecting to HTTPS), two HTTPS servers on 443
// told apart by SNI, each with its own credential, an ISTIO_MUTUAL server, a TLS
// PASSTHROUGH server routed by SNI, a TCP server and an AUTO_PASSTHROUGH server;
// VirtualServices bound to it by HTTP, TLS and TCP routes.
const gatewayParity = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}, {number: 8443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.20}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http-shop, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-api, protocol: HTTP}
    hosts: [api.example.com]
  - port: {number: 443, name: https-shop, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 443, name: https-api, protocol: HTTPS}
    hosts: [api.example.com]
    tls: {mode: SIMPLE, credentialName: api-cert, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]}
  - port: {number: 9443, name: https-mesh, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 8443, name: tls-db, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com, api.example.com]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-in}
spec:
  hosts: ["*"]
  gateways: [public]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db.example.com]
  gateways: [public]
  tls:
  - match: [{sniHosts: [db.example.com], port: 8443}]
    route: [{destination: {host: db.default.svc.cluster.local, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db-tcp}
spec:
  hosts: ["*"]
  gateways: [public]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: db.default.svc.cluster.local, port: {number: 5432}}}]
`

// gatewayNamespaces is two Gateways of two namespaces on the same ports of one
// gateway proxy (of istio-system), their servers' hosts qualified by the namespaces
// that may bind to them, and VirtualServices that bind or try to.
const gatewayNamespaces = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/shop.example.com"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["shop/shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: blog-gw, namespace: blog}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/blog.example.com"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["blog.example.com"]
    tls: {mode: SIMPLE, credentialName: blog-cert}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.31}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop-gw]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: blog, namespace: shop}
spec:
  hosts: [blog.example.com]
  gateways: [blog/blog-gw]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local}}], timeout: 3s}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sneaky, namespace: blog}
spec:
  hosts: [shop.example.com]
  gateways: [shop/shop-gw]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local}}], timeout: 9s}]
`

// gatewayTargetPorts is a gateway behind a service of its own (an endpoint at its
// address) whose ports 80 and 443 go to the gateway's 8080 and 8443, as a
// Kubernetes gateway Service's do, with Gateway servers on 80, 443 and 9000 (which
// the service lacks) and a VirtualService that matches port 80.
const gatewayTargetPorts = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  hosts: [istio-ingressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 80, targetPort: 8080, name: http2, protocol: HTTP}
  - {number: 443, targetPort: 8443, name: https, protocol: HTTPS}
  resolution: STATIC
  endpoints: [{address: 127.0.0.68, labels: {istio: ingressgateway}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: cert}}
  - {port: {number: 9000, name: admin, protocol: HTTP}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [public]
  http:
  - match: [{port: 80, uri: {prefix: /plain}}]
    route: [{destination: {host: istio-ingressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - route: [{destination: {host: istio-ingressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
`

// TestSameGatewayChainsAsIstiod compares the listeners of a gateway from istiod and
// from navarch, for a gateway with a server of every kind (gatewayParity), for
// two Gateways of two namespaces on the same ports (gatewayNamespaces) and for a
// gateway whose service translates its ports (gatewayTargetPorts): each filter
// chain by its match, its filters by name, where a TCP proxy sends connections and
// which route configuration a connection manager uses; then each of those route
// configurations, field by field, the names each virtual host answers to included
// (but for the rest of routeFieldsNotCompared). The TLS the chains terminate is
// TestSameGatewayTLSFieldsAsIstiod's.
func TestSameGatewayChainsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	for _, sc := range []struct {
		name, config, ns   string
		listeners, configs int // at least, from istiod
	}{
		{"every kind of server", workloadsYAML(v1, v2) + gatewayParity, "default", 6, 4},
		{"two namespaces' Gateways", gatewayNamespaces, "istio-system", 2, 3},
		{"ports translated by the gateway's service", gatewayTargetPorts, "istio-system", 3, 3},
	} {
		t.Run(sc.name, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, sc.config)
			id := "router~127.0.0.68~gw-0." + sc.ns + "~" + sc.ns + ".svc.cluster.local"
			md := map[string]any{"NAMESPACE": sc.ns, "LABELS": map[string]any{"istio": "ingressgateway"}}
			want, routes := gatewayChains(t, envoyConfig(t, istiod, id, md).listeners)
			var got map[string]string
			eventually(t, 30*time.Second, "navarch's gateway listeners", func() error {
				if got, _ = gatewayChains(t, envoyConfig(t, navarch, id, md).listeners); len(got) < len(want) {
					return fmt.Errorf("%d listeners, istiod has %d", len(got), len(want))
				}
				return nil
			})
			compareNamed(t, want, got)
			if len(want) < sc.listeners || len(routes) < sc.configs {
				t.Fatalf("istiod gave %d listeners and %d route configurations, this test expects more: %v", len(want), len(routes), routes)
			}
			wantRoutes, gotRoutes := map[string]map[string]string{}, map[string]map[string]string{}
			for _, name := range routes {
				wantRoutes[name] = protoFields(t, envoyRoutes(t, istiod, id, md, name), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)
				gotRoutes[name] = protoFields(t, envoyRoutes(t, navarch, id, md, name), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)
			}
			compareFields(t, wantRoutes, gotRoutes)
		})
	}
}

// gatewayRouteFieldsNotCompared is routeFieldsNotCompared without the domains.
var gatewayRouteFieldsNotCompared = regexp.MustCompile(`(^|\.)(caseSensitive)(\.|\[|$)`)

// gatewayChains describes each listener of ls by its filter chains, one line each,
// sorted, as TestSameGatewayChainsAsIstiod compares them, and returns the names of
// the route configurations the connection managers use.
func gatewayChains(t *testing.T, ls map[string]*listenerv3.Listener) (map[string]string, []string) {
	t.Helper()
	js := func(m proto.Message) string {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out := map[string]string{}
	routes := map[string]bool{}
	for name, l := range ls {
		var lines []string
		chains := slices.Clone(l.FilterChains)
		if l.DefaultFilterChain != nil {
			chains = append(chains, l.DefaultFilterChain)
		}
		for _, fc := range chains {
			line := "match=" + js(fc.GetFilterChainMatch())
			for _, f := range fc.Filters {
				line += " " + f.Name
				var tp tcpv3.TcpProxy
				var h hcmv3.HttpConnectionManager
				switch {
				case f.GetTypedConfig().UnmarshalTo(&tp) == nil:
					line += fmt.Sprintf("(cluster=%s weighted=%s)", tp.GetCluster(), js(tp.GetWeightedClusters()))
				case f.GetTypedConfig().UnmarshalTo(&h) == nil:
					line += fmt.Sprintf("(rds=%s)", h.GetRds().GetRouteConfigName())
					if r := h.GetRds().GetRouteConfigName(); r != "" {
						routes[r] = true
					}
				}
			}
			lines = append(lines, line)
		}
		slices.Sort(lines)
		out[name] = "\n\t\t" + strings.Join(lines, "\n\t\t")
	}
	return out, slices.Sorted(maps.Keys(routes))
}
