package xds

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/navarch/navarch/registry"
)

// BenchmarkBuildClass builds the configuration of one proxyless proxy class for a mesh
// of 1,000 services with 3 endpoints each and a DestinationRule for all of them:
// the work a push does once per class.
func BenchmarkBuildClass(b *testing.B) {
	snap := benchSnapshot(b)
	p := grpcProxy("bench", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := grpcProfile().build(newContext(snap, p, "cluster.local", "istio-system")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildEnvoyClass builds the configuration of one Envoy sidecar class for
// the mesh of BenchmarkBuildClass; with EnvoyFilters, for the same mesh under a
// mesh-wide EnvoyFilter that merges a field into every cluster and inserts an HTTP
// filter into every outbound connection manager (each such resource patched, then
// validated with what it packs); istio-proxy, for the plain mesh's istio-proxy (with
// Istio's telemetry filters).
func BenchmarkBuildEnvoyClass(b *testing.B) {
	for _, tc := range []struct {
		name, extra string
		istioProxy  bool
	}{{name: "plain"}, {name: "istio-proxy", istioProxy: true}, {name: "EnvoyFilters", extra: `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: mesh-wide, namespace: istio-system}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768}}
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value: {name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: {inline_string: "function envoy_on_request(h) end"}}}
`}} {
		b.Run(tc.name, func(b *testing.B) {
			snap := benchSnapshotWith(b, tc.extra)
			p := grpcProxy("bench", nil)
			p.Generator, p.IstioProxy = "", tc.istioProxy
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRebuildClass builds the class of BenchmarkBuildClass again after a push
// that built it: what a push costs a class whose configuration did not change
// (resources come out byte for byte as before and are not validated again).
func BenchmarkRebuildClass(b *testing.B) {
	snap := benchSnapshot(b)
	p := grpcProxy("bench", nil)
	var v validCache
	build := func() {
		ctx := newContext(snap, p, "cluster.local", "istio-system")
		ctx.validated = &v
		if _, err := grpcProfile().build(ctx); err != nil {
			b.Fatal(err)
		}
	}
	build()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v.rotate()
		build()
	}
}

// BenchmarkBuildSharingClass builds a class whose resources another class of the
// same push has built already (same namespace, other labels): the work each further
// class of a push costs.
func BenchmarkBuildSharingClass(b *testing.B) {
	snap := benchSnapshot(b)
	memo := &sync.Map{}
	build := func(labels map[string]string) {
		ctx := newContext(snap, grpcProxy("bench", labels), "cluster.local", "istio-system")
		ctx.memo = memo
		if _, err := grpcProfile().build(ctx); err != nil {
			b.Fatal(err)
		}
	}
	build(map[string]string{"app": "first"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		build(map[string]string{"app": "other"})
	}
}

// BenchmarkBuildClassRulePerService builds a class for a mesh of 1,000 services
// each with its own DestinationRule (two subsets) and VirtualService (an 80/20
// split), as a mesh whose every service is managed looks.
func BenchmarkBuildClassRulePerService(b *testing.B) {
	var docs []string
	for i := 0; i < 1000; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%04d, namespace: bench}
spec:
  hosts: [svc-%04d.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.%d.1, labels: {version: v1}}, {address: 10.0.%d.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%04d, namespace: bench}
spec:
  host: svc-%04d
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%04d, namespace: bench}
spec:
  hosts: [svc-%04d]
  http:
  - route:
    - {destination: {host: svc-%04d, subset: v1}, weight: 80}
    - {destination: {host: svc-%04d, subset: v2}, weight: 20}
`, i, i, i%250, i%250, i, i, i, i, i, i))
	}
	snap := snapshotOf(b, strings.Join(docs, "---\n"))
	p := grpcProxy("bench", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := grpcProfile().build(newContext(snap, p, "cluster.local", "istio-system")); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSnapshot is a mesh of 1,000 services with 3 endpoints each and a
// DestinationRule for all of them.
func benchSnapshot(b *testing.B) *registry.Snapshot { return benchSnapshotWith(b, "") }

// benchSnapshotWith is benchSnapshot with more documents.
func benchSnapshotWith(b *testing.B, extra string) *registry.Snapshot {
	var docs []string
	for i := 0; i < 1000; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%04d, namespace: bench}
spec:
  hosts: [svc-%04d.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.%d.1}, {address: 10.0.%d.2}, {address: 10.0.%d.3}]
`, i, i, i%250, i%250, i%250))
	}
	docs = append(docs, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all, namespace: bench}
spec:
  host: "*.bench.svc.cluster.local"
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1000}}}
`)
	if extra != "" {
		docs = append(docs, extra)
	}
	return snapshotOf(b, strings.Join(docs, "---\n"))
}

// BenchmarkNameTable builds and marshals the name table of a proxy with DNS capture
// for the mesh of BenchmarkBuildClass (1,000 services, each by its allocated
// address): what a push costs each class one of whose proxies asked for it.
func BenchmarkNameTable(b *testing.B) {
	snap := benchSnapshot(b)
	p := grpcProxy("bench", nil)
	p.DNSCapture = true
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nt := nameTable(newContext(snap, p, "cluster.local", "istio-system"))
		if len(nt) != 1000 {
			b.Fatalf("%d names, want 1000", len(nt))
		}
		nameTableResource(nt)
	}
}
