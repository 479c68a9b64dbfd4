package analyze

import (
	"slices"
	"strings"
	"testing"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

func snapshotOf(t testing.TB, docs ...string) *registry.Snapshot {
	t.Helper()
	rs, _, err := api.Decode("test", []byte(strings.Join(docs, "\n---\n")), "")
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]store.Entry, 0, len(rs))
	for _, r := range rs {
		entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
	}
	return registry.NewSnapshot(entries, 1, "cluster.local")
}

// reviews is a service of two versions, behind a DestinationRule with their subsets:
// the mesh the cases below add to.
const reviews = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}`

// cases are configurations with what navarch's analysis finds in each (added to
// reviews). istio_oracle_test.go holds Istio's analysis to the same.
var cases = []struct {
	name string
	docs string
	want []string
}{
	{
		name: "a sound mesh has nothing to report",
		docs: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews.default.svc.cluster.local, subset: v2, port: {number: 9080}}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec: {selector: {matchLabels: {app: reviews}}, action: ALLOW, rules: [{}]}`,
	},
	{
		name: "destinations the mesh does not have",
		docs: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: ratings}, weight: 1}
    - {destination: {host: reviews, port: {number: 9090}}, weight: 1}
    - {destination: {host: reviews, subset: v3}, weight: 1}
    mirror: {host: details}
  tcp:
  - route: [{destination: {host: reviews.other.svc.cluster.local}}]`,
		want: []string{
			`Error [IST0101] (VirtualService default/reviews) Referenced host not found: "ratings"`,
			`Error [IST0101] (VirtualService default/reviews) Referenced host not found: "reviews.other.svc.cluster.local"`,
			`Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v3"`,
			`Error [IST0101] (VirtualService default/reviews) Referenced host:port not found: "reviews:9090"`,
			`Error [IST0101] (VirtualService default/reviews) Referenced mirror host not found: "details"`,
		},
	},
	{
		name: "a service not exported to the route's namespace is not there for it",
		docs: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: payments}
spec:
  hosts: [ledger.payments.svc.cluster.local]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ledger, namespace: default}
spec:
  hosts: [ledger.payments.svc.cluster.local]
  http: [{route: [{destination: {host: ledger.payments.svc.cluster.local}}]}]`,
		want: []string{
			`Error [IST0101] (VirtualService default/ledger) Referenced host not found: "ledger.payments.svc.cluster.local"`,
		},
	},
	{
		name: "a host of several ports needs a port; a wildcard entry covers its names",
		docs: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: admin, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  http: [{route: [{destination: {host: api.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki, namespace: default}
spec:
  hosts: [en.wikipedia.org]
  tls: [{match: [{sniHosts: [en.wikipedia.org]}], route: [{destination: {host: en.wikipedia.org}}]}]`,
		want: []string{
			`Error [IST0112] (VirtualService default/api) This VirtualService routes to a service "api.example.com" that exposes multiple ports [80 8080]. Specifying a port in the destination is required to disambiguate.`,
		},
	},
	{
		name: "gateways missing, and gateways without the route's hosts",
		docs: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["default/shop.example.com", "./admin.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [edge/public, mesh]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: admin, namespace: default}
spec:
  hosts: [admin.example.com]
  gateways: [edge/public, internal]
  http: [{route: [{destination: {host: reviews}}]}]`,
		want: []string{
			`Error [IST0101] (VirtualService default/admin) Referenced gateway not found: "internal"`,
			`Warning [IST0132] (VirtualService default/admin) one or more host [admin.example.com] defined in VirtualService default/admin not found in Gateway edge/public.`,
		},
	},
	{
		name: "two routes for one host at the mesh, where their exports overlap",
		docs: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-a, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-b, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-local, namespace: other}
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: ["."]
  gateways: [mesh]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-elsewhere, namespace: other}
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: ["."]
  gateways: [some-gateway]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: some-gateway, namespace: other}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]`,
		want: []string{
			`Error [IST0109] (VirtualService default/reviews-a) The VirtualServices default/reviews-a,default/reviews-b,other/reviews-local associated with mesh gateway define the same host reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
			`Error [IST0109] (VirtualService default/reviews-b) The VirtualServices default/reviews-a,default/reviews-b,other/reviews-local associated with mesh gateway define the same host reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
			`Error [IST0109] (VirtualService other/reviews-local) The VirtualServices default/reviews-a,default/reviews-b,other/reviews-local associated with mesh gateway define the same host reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
		},
	},
	{
		name: "destination rules: unknown host, empty subset, unverified TLS",
		docs: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: default}
spec: {host: ghost}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-tls, namespace: other}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
    - port: {number: 9081}
      tls: {mode: SIMPLE, caCertificates: /ca.pem}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v9, labels: {version: v9}}`,
		want: []string{
			`Error [IST0173] (DestinationRule other/reviews-tls) The Subset v9 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).`,
			`Warning [IST0128] (DestinationRule other/reviews-tls) DestinationRule other/reviews-tls in namespace other has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: reviews.default.svc.cluster.local`,
			`Warning [IST0129] (DestinationRule other/reviews-tls) DestinationRule other/reviews-tls in namespace other has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: reviews.default.svc.cluster.local at port number:9080`,
			`Warning [IST0174] (DestinationRule default/ghost) The host ghost defined in the DestinationRule does not match any services in the mesh.`,
		},
	},
	{
		name: "gateways that claim one host on one port",
		docs: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: edge}
spec:
  selector: {istio: ingressgateway, app: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com, a.example.com]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: edge}
spec:
  selector: {app: edge, istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com]}
  - {port: {number: 8080, name: http2, protocol: HTTP}, hosts: [a.example.com]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: c, namespace: edge}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com]}]`,
		want: []string{
			`Error [IST0145] (Gateway edge/a) Conflict with gateways edge/b (workload selector app=edge,istio=ingressgateway, port 80, hosts shop.example.com,a.example.com).`,
			`Error [IST0145] (Gateway edge/b) Conflict with gateways edge/a (workload selector app=edge,istio=ingressgateway, port 80, hosts shop.example.com).`,
		},
	},
	{
		name: "service entries: TCP without addresses, protocols at odds",
		docs: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-http, namespace: default}
spec:
  hosts: [db.example.com]
  addresses: [240.0.0.9]
  ports: [{number: 5432, name: http, protocol: HTTP}]
  resolution: DNS`,
		want: []string{
			`Warning [IST0134] (ServiceEntry default/db) ServiceEntry addresses are required for this protocol.`,
			`Warning [IST0177] (ServiceEntry default/db) Multiple ServiceEntries (default/db, default/db-http) define the same host "db.example.com" and port 5432 with conflicting protocols (HTTP, TCP).`,
			`Warning [IST0177] (ServiceEntry default/db-http) Multiple ServiceEntries (default/db, default/db-http) define the same host "db.example.com" and port 5432 with conflicting protocols (HTTP, TCP).`,
		},
	},
	{
		name: "selectors that select nothing, and rivals for the same proxies",
		docs: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: one, namespace: default}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: two, namespace: default}
spec: {egress: [{hosts: ["*/*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: v1, namespace: default}
spec: {workloadSelector: {labels: {version: v1}}, egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec: {workloadSelector: {labels: {app: reviews}}, egress: [{hosts: ["./*"]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: default}
spec: {selector: {matchLabels: {app: ratings}}, action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system}
spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: elsewhere, namespace: other}
spec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway, app: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress, namespace: istio-system}
spec: {selector: {matchLabels: {istio: ingressgateway}}, action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: egress, namespace: istio-system}
spec: {selector: {matchLabels: {istio: egressgateway}}, jwtRules: [{issuer: https://issuer.example.com}]}`,
		want: []string{
			`Error [IST0110] (Sidecar default/reviews) The Sidecars [reviews v1] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.`,
			`Error [IST0111] (Sidecar default/one) The Sidecars [one two] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
			`Error [IST0111] (Sidecar default/two) The Sidecars [one two] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
			`Error [IST0110] (Sidecar default/v1) The Sidecars [reviews v1] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.`,
			`Warning [IST0127] (AuthorizationPolicy default/nobody) No matching workloads for this resource with the following labels: app=ratings`,
			`Warning [IST0127] (PeerAuthentication other/elsewhere) No matching workloads for this resource with the following labels: app=reviews`,
			`Warning [IST0127] (RequestAuthentication istio-system/egress) No matching workloads for this resource with the following labels: istio=egressgateway`,
			`Warning [IST0133] (AuthorizationPolicy istio-system/ingress) Schema validation warning: configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port`,
		},
	},
	{
		name: "EnvoyFilter operations that are ignored, or relative without a priority",
		docs: `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: a-versioned, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      proxy: {proxyVersion: '^1\\.2.*'}
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: INSERT_FIRST
      value: {name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: b-relative, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value: {name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_AFTER
      value: {name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: c-prioritized, namespace: default}
spec:
  priority: 10
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value: {name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: d-routes, namespace: default}
spec:
  priority: 1
  configPatches:
  - applyTo: ROUTE_CONFIGURATION
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: ADD, value: {name: extra}}
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: "reviews:9080"}}}
    patch: {operation: REMOVE}
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: reviews.default.svc.cluster.local}}
    patch: {operation: REPLACE, value: {name: extra}}`,
		want: []string{
			`Warning [IST0155] (EnvoyFilter default/b-relative) This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.`,
			`Warning [IST0151] (EnvoyFilter default/b-relative) This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.`,
			`Error [IST0153] (EnvoyFilter default/d-routes) The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.`,
			`Error [IST0154] (EnvoyFilter default/d-routes) The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.`,
			`Error [IST0152] (EnvoyFilter default/d-routes) The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.`,
			`Warning [IST0133] (EnvoyFilter default/a-versioned) Schema validation warning: EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.`,
			`Warning [IST0133] (EnvoyFilter default/b-relative) Schema validation warning: EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.`,
			`Warning [IST0133] (EnvoyFilter default/c-prioritized) Schema validation warning: EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.`,
			`Warning [IST0133] (EnvoyFilter default/d-routes) Schema validation warning: EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.`,
		},
	},
	{
		name: "access logging entries with no provider to log by",
		docs: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
  - filter: {expression: "response.code >= 400"}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors-only, namespace: default}
spec:
  accessLogging: [{filter: {expression: "response.code >= 500"}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs-off, namespace: other}
spec:
  accessLogging: [{disabled: true}]`,
		want: []string{
			`Warning [IST0157] (Telemetry istio-system/mesh-default) The Telemetry mesh-default in namespace "istio-system" with empty providers will be ignored.`,
		},
	},
	{
		name: "deprecated fields and rules no request reaches",
		docs: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    fault: {delay: {percent: 10, fixedDelay: 1s}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.example.com, port: {number: 3128}}`,
		want: []string{
			`Warning [IST0002] (VirtualService default/reviews) Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage`,
			`Info [IST0131] (VirtualService default/reviews) VirtualService rule #1 match #0 of prefix /api/v2 is not used (duplicate/overlapping match in rule #0 of prefix /api on #0).`,
			`Warning [IST0130] (VirtualService default/reviews) VirtualService rule #3 not used (only the last rule can have no matches).`,
			`Warning [IST0002] (Sidecar default/default) Deprecated: OutboundTrafficPolicy.EgressProxy ignored`,
		},
	},
	{
		name: "routes on JWT claims through gateways without a RequestAuthentication",
		docs: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {app: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: partner, namespace: default}
spec:
  selector: {app: partner}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress-a, namespace: istio-system}
spec: {address: 10.0.1.1, labels: {istio: ingressgateway, zone: a}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress-b, namespace: istio-system}
spec: {address: 10.0.1.2, labels: {istio: ingressgateway, zone: b}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: zone-b, namespace: istio-system}
spec:
  selector: {matchLabels: {zone: b}}
  jwtRules: [{issuer: https://issuer.example.com, jwksUri: https://issuer.example.com/jwks}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: partner, namespace: partners}
spec:
  selector: {matchLabels: {app: partner}}
  jwtRules: [{issuer: https://issuer.example.com, jwksUri: https://issuer.example.com/jwks}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-group, namespace: default}
spec:
  hosts: [reviews.example.com]
  gateways: [istio-system/public, edge, partner]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: reviews}}]`,
		want: []string{
			`Error [IST0149] (VirtualService default/by-group) The virtual service uses the JWT claim based routing (key: @request.auth.claims.group) but found no request authentication for the gateway (istio-system/public) pod (ingress-a). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.`,
			`Error [IST0149] (VirtualService default/by-group) The virtual service uses the JWT claim based routing (key: @request.auth.claims.group) but found no request authentication for the gateway (default/edge) proxies (app=edge). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.`,
		},
	},
}

func TestAnalyze(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, m := range Analyze(snapshotOf(t, reviews, tc.docs)) {
				got = append(got, m.String())
			}
			want := slices.Clone(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"error": Error, "Warning": Warning, "INFO": Info} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("fatal"); err == nil {
		t.Error("ParseLevel(fatal) succeeded")
	}
}

// TestExportDefaultsOfTheMeshConfig: VirtualServices that set no exportTo are
// exported as the mesh config's defaultVirtualServiceExportTo says, so two of one
// host in different namespaces conflict only where that exports them to both.
func TestExportDefaultsOfTheMeshConfig(t *testing.T) {
	routes := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: other}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]}]`
	conflicts := func(snap *registry.Snapshot) int {
		n := 0
		for _, m := range Analyze(snap) {
			if m.Code == "IST0109" {
				n++
			}
		}
		return n
	}
	if n := conflicts(snapshotOf(t, reviews, routes)); n != 2 {
		t.Errorf("exported to all namespaces by default: %d IST0109, want 2", n)
	}
	mesh := `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultVirtualServiceExportTo: ["."]`
	if n := conflicts(snapshotOf(t, reviews, routes, mesh)); n != 0 {
		t.Errorf("each exported to its own namespace by the mesh config: %d IST0109, want none", n)
	}
}
