package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/navarch/navarch/internal/peers"
)

// statsParity adds to sniffParity and listenerParity: a subset of web2's and a
// VirtualService that sends web2's TCP port to it, so that a TCP proxy's stat prefix
// names a subset; a VirtualService that splits the dns service's TCP port between
// it and web2; a gateway's TCP and TLS passthrough servers, routed to web2; and an
// AuthorizationPolicy, so that inbound TCP chains and the gateway's have RBAC
// filters.
const statsParity = `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web2}
spec:
  host: web2.default.svc.cluster.local
  subsets: [{name: v1, labels: {app: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web2}
spec:
  hosts: [web2.default.svc.cluster.local]
  tcp: [{match: [{port: 8083}], route: [{destination: {host: web2.default.svc.cluster.local, subset: v1, port: {number: 8083}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: dns-split}
spec:
  hosts: [dns.default.svc.cluster.local]
  tcp:
  - route:
    - {destination: {host: dns.default.svc.cluster.local, port: {number: 53}}, weight: 80}
    - {destination: {host: web2.default.svc.cluster.local, port: {number: 8083}}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp-in, protocol: TCP}
    hosts: ["*"]
  - port: {number: 31443, name: tls-in, protocol: TLS}
    hosts: ["*"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-in}
spec:
  hosts: ["*"]
  gateways: [tcp]
  tcp: [{match: [{port: 31400}], route: [{destination: {host: web2.default.svc.cluster.local, port: {number: 8083}}}]}]
  tls: [{match: [{port: 31443, sniHosts: [web2.example.com]}], route: [{destination: {host: web2.default.svc.cluster.local, subset: v1, port: {number: 8083}}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil}
spec:
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/evil/sa/evil]}}]}]
`

// TestSameStatNamesAsIstiod compares the names under which Envoy keeps its
// statistics, as istiod and navarch give them to web's sidecar and to a gateway:
// each cluster's alternative stat name and the stat prefixes of each listener's
// HTTP connection managers, TCP proxies and RBAC filters. Dashboards and istio-agent's bootstrap
// (whose tag extractors take a cluster's name up to a ';') rely on them. Under
// Istio's default mesh config, and under one that names clusters by the mesh's
// outboundClusterStatName and inboundClusterStatName patterns.
func TestSameStatNamesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + statsParity
	for _, mesh := range []struct{ what, config string }{
		{"the default mesh config", ""},
		{"the mesh's stat name patterns", `---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    outboundClusterStatName: "%SERVICE%|%SERVICE_NAME%|%SERVICE_FQDN%|%SERVICE_PORT%|%SERVICE_PORT_NAME%|%SUBSET_NAME%|%TARGET_PORT%"
    inboundClusterStatName: "in|%SERVICE%|%SERVICE_NAME%|%SERVICE_FQDN%|%SERVICE_PORT%|%SERVICE_PORT_NAME%|%SUBSET_NAME%|%TARGET_PORT%"
`},
	} {
		t.Run(mesh.what, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, config+mesh.config)
			for _, proxy := range []struct {
				what, id, app string
			}{
				{"web's sidecar", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web"},
				{"a gateway", "router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "ingressgateway"},
			} {
				t.Run(proxy.what, func(t *testing.T) {
					md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": proxy.app, "istio": proxy.app}}
					want := statNames(t, envoyConfig(t, istiod, proxy.id, md))
					var got map[string]string
					eventually(t, 30*time.Second, "navarch's clusters and listeners", func() error {
						if got = statNames(t, envoyConfig(t, navarch, proxy.id, md)); len(got) < len(want) {
							return fmt.Errorf("%d stat names, istiod has %d", len(got), len(want))
						}
						return nil
					})
					compareNamed(t, want, got)
					patterned := false
					for _, name := range want {
						patterned = patterned || strings.Contains(name, "|8083|tcp|v1|0")
					}
					if patterned != (mesh.config != "") {
						t.Errorf("istiod's stat names follow the mesh's patterns: %v, this test expects %v: %v", patterned, mesh.config != "", want)
					}
				})
			}
		})
	}
}

// statNames gives each cluster's alternative stat name ("cluster <name>") and, for
// each listener, the stat prefixes of its HTTP connection managers, TCP proxies and
// RBAC filters, each sorted, without repeats ("listener <name> http", "... tcp" and
// "... rbac").
func statNames(t *testing.T, c envoyView) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, cl := range c.clusters {
		out["cluster "+name] = cl.AltStatName
	}
	for name, l := range c.listeners {
		var http, tcp, rbac []string
		for _, fc := range append(slices.Clone(l.FilterChains), l.DefaultFilterChain) {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				var tp tcpv3.TcpProxy
				var r rbacnetworkv3.RBAC
				switch {
				case f.GetTypedConfig().UnmarshalTo(&h) == nil:
					http = append(http, h.StatPrefix)
				case f.GetTypedConfig().UnmarshalTo(&tp) == nil:
					tcp = append(tcp, tp.StatPrefix)
				case f.GetTypedConfig().UnmarshalTo(&r) == nil:
					rbac = append(rbac, r.StatPrefix)
				}
			}
		}
		for kind, prefixes := range map[string][]string{"http": http, "tcp": tcp, "rbac": rbac} {
			slices.Sort(prefixes)
			out["listener "+name+" "+kind] = strings.Join(slices.Compact(prefixes), " ")
		}
	}
	return out
}
