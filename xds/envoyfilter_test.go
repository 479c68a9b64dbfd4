package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// envoyFilterInput is testdata/inputs/envoyfilter.yaml.
func envoyFilterInput(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "envoyfilter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestEnvoyFiltersPatchASidecar checks each patch of testdata/inputs/envoyfilter.yaml
// on the sidecar of web, which both EnvoyFilters select, and compares the whole with
// its golden file; every resource passed its proto's Validate with what it packs.
func TestEnvoyFiltersPatchASidecar(t *testing.T) {
	input := envoyFilterInput(t)
	http, tcp, err := inboundFilters(t, input)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if got := names(http); !strings.HasSuffix(got, "envoy.filters.http.lua,envoy.filters.http.router") {
		t.Errorf("inbound HTTP filters %s, want Lua before the router", got)
	}
	if len(tcp) == 0 || tcp[0].Name != "envoy.filters.network.connection_limit" {
		t.Errorf("inbound TCP filters %s, want the connection limit first", names(tcp))
	}

	sets := envoySidecar(t, snapshotOf(t, input), "shop", map[string]string{"app": "web"})
	var v1, all clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "outbound|9080|v1|ratings.shop.svc.cluster.local", &v1)
	resourceOf(t, sets, ClusterType, "outbound|9080||ratings.shop.svc.cluster.local", &all)
	if v1.ConnectTimeout.AsDuration().Seconds() != 2 || all.ConnectTimeout.AsDuration().Seconds() == 2 {
		t.Errorf("connect timeouts v1 %v, all %v: want 2s for the v1 subset only", v1.ConnectTimeout.AsDuration(), all.ConnectTimeout.AsDuration())
	}
	if v1.PerConnectionBufferLimitBytes.GetValue() != 32768 || all.PerConnectionBufferLimitBytes.GetValue() != 32768 {
		t.Errorf("the mesh-wide buffer limit is missing: %v, %v", v1.PerConnectionBufferLimitBytes, all.PerConnectionBufferLimitBytes)
	}
	var added clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "zipkin-collector", &added)
	if added.PerConnectionBufferLimitBytes != nil {
		t.Errorf("an added cluster was patched too: %v", &added)
	}

	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "9080", &rc)
	vh := virtualHost(&rc, "ratings.shop.svc.cluster.local:9080")
	if vh == nil || len(vh.Routes) < 2 || vh.Routes[0].Name != "health" || vh.Routes[1].Name != "primary" {
		t.Fatalf("virtual host %v: want the health route before primary", vh)
	}
	if len(vh.ResponseHeadersToAdd) == 0 || vh.ResponseHeadersToAdd[len(vh.ResponseHeadersToAdd)-1].Header.Key != "x-mesh" {
		t.Errorf("the mesh-wide header is missing: %v", vh.ResponseHeadersToAdd)
	}
	var out listenerv3.Listener
	resourceOf(t, sets, ListenerType, virtualOutbound, &out)
	if out.PerConnectionBufferLimitBytes.GetValue() != 65536 {
		t.Errorf("virtualOutbound's buffer limit %v", out.PerConnectionBufferLimitBytes)
	}
	checkGolden(t, filepath.Join("testdata", "envoyfilter.sidecar.golden.yaml"), dump(t, sets))
}

func virtualHost(rc *routev3.RouteConfiguration, name string) *routev3.VirtualHost {
	for _, vh := range rc.VirtualHosts {
		if vh.Name == name {
			return vh
		}
	}
	return nil
}

// TestEnvoyFiltersOnlyWhereTheyApply checks that a workload the selector does not
// pick gets the mesh-wide EnvoyFilter only, that proxyless gRPC gets none, and that
// the gateway gets its own and the mesh-wide one.
func TestEnvoyFiltersOnlyWhereTheyApply(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t))
	other := envoySidecar(t, snap, "shop", map[string]string{"app": "other"})
	if other[ClusterType].ByName["zipkin-collector"] != nil {
		t.Error("web's EnvoyFilter added a cluster to another workload")
	}
	var c clusterv3.Cluster
	resourceOf(t, other, ClusterType, "outbound|9080|v1|ratings.shop.svc.cluster.local", &c)
	if c.PerConnectionBufferLimitBytes.GetValue() != 32768 || c.ConnectTimeout.AsDuration().Seconds() == 2 {
		t.Errorf("cluster %v: want the mesh-wide patch only", &c)
	}

	grpc, err := grpcProfile().build(newContext(snap, grpcProxy("shop", map[string]string{"app": "web"}), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	resourceOf(t, grpc, ClusterType, "outbound|9080|v1|ratings.shop.svc.cluster.local", &c)
	if c.PerConnectionBufferLimitBytes != nil || c.ConnectTimeout.AsDuration().Seconds() == 2 {
		t.Errorf("proxyless gRPC was patched: %v", &c)
	}

	gw := &Proxy{ID: "router~10.0.0.2~gateway.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "shop", Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "http.80", &rc)
	vh := virtualHost(&rc, "ratings.example.com:80")
	if vh == nil || len(vh.Routes) == 0 || vh.Routes[0].GetRoute().GetTimeout().AsDuration().Seconds() != 5 {
		t.Fatalf("gateway virtual host %v: want the primary route's timeout 5s", vh)
	}
	if len(vh.ResponseHeadersToAdd) == 0 {
		t.Error("the mesh-wide header is missing on the gateway")
	}
	checkGolden(t, filepath.Join("testdata", "envoyfilter.gateway.golden.yaml"), dump(t, sets))
}

// TestEnvoyFilterThatBreaksAResource: a patch whose result Envoy would refuse (an
// HTTP filter whose typed config lacks a required field; a negative connect
// timeout) leaves the resource out, reported, and the rest of the build as it was.
func TestEnvoyFilterThatBreaksAResource(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t), `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: broken, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_FIRST
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit}
  - applyTo: CLUSTER
    match: {cluster: {name: "outbound|9080||ratings.shop.svc.cluster.local"}}
    patch: {operation: MERGE, value: {connect_timeout: -1s}}
`)
	p := grpcProxy("shop", map[string]string{"app": "web"})
	p.Generator = ""
	sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
	if err == nil || !strings.Contains(err.Error(), virtualInbound+": invalid") || !strings.Contains(err.Error(), "StatPrefix") ||
		!strings.Contains(err.Error(), "outbound|9080||ratings.shop.svc.cluster.local: invalid") {
		t.Fatalf("build error %v: want the inbound listener and the cluster reported", err)
	}
	if sets[ListenerType].ByName[virtualInbound] != nil || sets[ClusterType].ByName["outbound|9080||ratings.shop.svc.cluster.local"] != nil {
		t.Error("an invalid resource was kept")
	}
	if sets[ListenerType].ByName[virtualOutbound] == nil || sets[ClusterType].ByName["outbound|9080|v1|ratings.shop.svc.cluster.local"] == nil {
		t.Error("resources the broken patches did not touch were left out")
	}
}

// TestEnvoyFilterProxyMatch: patches that match an Istio version and metadata apply
// to the proxies that have them, and proxies told apart only by what such a match
// reads are different classes (and alike otherwise).
func TestEnvoyFilterProxyMatch(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t), `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: edge-only, namespace: shop}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {proxy: {proxyVersion: '^1\.2[0-9]\..*', metadata: {ROLE: edge}}}
    patch: {operation: MERGE, value: {connect_timeout: 7s}}
`)
	proxy := func(version, role, pod string) *Proxy {
		p := grpcProxy("shop", map[string]string{"app": "other"})
		p.Generator, p.IstioVersion = "", version
		p.Metadata = map[string]string{"ROLE": role, "POD_NAME": pod}
		return p
	}
	timeout := func(p *Proxy) float64 {
		t.Helper()
		rep := p.classProxy(snap)
		sets, err := sidecarProfile().build(newContext(snap, rep, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, "outbound|9080||ratings.shop.svc.cluster.local", &c)
		return c.ConnectTimeout.AsDuration().Seconds()
	}
	edge := proxy("1.24.1", "edge", "a")
	for _, tc := range []struct {
		p    *Proxy
		want bool
	}{{edge, true}, {proxy("1.19.0", "edge", "a"), false}, {proxy("", "edge", "a"), false}, {proxy("1.24.1", "core", "a"), false}} {
		if got := timeout(tc.p) == 7; got != tc.want {
			t.Errorf("version %q role %q: patched %v, want %v", tc.p.IstioVersion, tc.p.Metadata["ROLE"], got, tc.want)
		}
	}
	if edge.classProxy(snap).classKey() == proxy("1.24.1", "core", "a").classKey() {
		t.Error("proxies the metadata match tells apart share a class")
	}
	if edge.classProxy(snap).classKey() != proxy("1.24.1", "edge", "b").classProxy(snap).classKey() {
		t.Error("proxies told apart by metadata no EnvoyFilter reads are different classes")
	}
	plain := snapshotOf(t, envoyFilterInput(t))
	if edge.classProxy(plain).classKey() != proxy("1.19.0", "core", "b").classProxy(plain).classKey() {
		t.Error("without proxy matches, version and metadata set classes apart")
	}
}

// TestEnvoyFilterRemoves: REMOVE takes out a cluster, a listener, an HTTP filter
// another EnvoyFilter inserted, a virtual host's route and a virtual host, and
// nothing else.
func TestEnvoyFilterRemoves(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t), `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: removals, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  priority: 10
  configPatches:
  - applyTo: CLUSTER
    match: {cluster: {service: ratings.shop.svc.cluster.local, subset: v1}}
    patch: {operation: REMOVE}
  - applyTo: LISTENER
    match: {context: SIDECAR_OUTBOUND, listener: {name: virtualOutbound}}
    patch: {operation: REMOVE}
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.lua}}}}
    patch: {operation: REMOVE}
  - applyTo: HTTP_ROUTE
    match: {routeConfiguration: {vhost: {route: {name: primary}}}}
    patch: {operation: REMOVE}
  - applyTo: VIRTUAL_HOST
    match: {routeConfiguration: {vhost: {name: allow_any}}}
    patch: {operation: REMOVE}
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	if sets[ClusterType].ByName["outbound|9080|v1|ratings.shop.svc.cluster.local"] != nil || sets[ClusterType].ByName["outbound|9080||ratings.shop.svc.cluster.local"] == nil {
		t.Error("REMOVE of the v1 subset's cluster: want it gone and the service's kept")
	}
	if sets[ListenerType].ByName[virtualOutbound] != nil || sets[ListenerType].ByName[virtualInbound] == nil {
		t.Error("REMOVE of virtualOutbound: want it gone and virtualInbound kept")
	}
	var in listenerv3.Listener
	resourceOf(t, sets, ListenerType, virtualInbound, &in)
	for _, fc := range in.FilterChains {
		for _, f := range fc.Filters {
			if strings.Contains(string(f.GetTypedConfig().GetValue()), "envoy.filters.http.lua") {
				t.Errorf("chain %s keeps the Lua filter web's EnvoyFilter inserted before", fc.Name)
			}
		}
	}
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "9080", &rc)
	vh := virtualHost(&rc, "ratings.shop.svc.cluster.local:9080")
	// Routes are removed (and merged) before any is added or inserted, as in Istio:
	// web's health route, to be inserted before primary, finds it gone and is not.
	if vh == nil || len(vh.Routes) != 0 || virtualHost(&rc, "allow_any") != nil {
		t.Errorf("route configuration 9080: %v; want its routes and the allow_any virtual host gone", &rc)
	}
}

// TestEnvoyFilterInboundClusterByService: a cluster match by service reaches the
// inbound cluster of the port the service sends the workload its traffic on, as in
// Istio, and no other.
func TestEnvoyFilterInboundClusterByService(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t), `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: inbound, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_INBOUND, cluster: {service: web.shop.svc.cluster.local, portNumber: 8080}}
    patch: {operation: MERGE, value: {connect_timeout: 4s}}
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	var http, db clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "inbound|8080||", &http)
	resourceOf(t, sets, ClusterType, "inbound|5432||", &db)
	if http.ConnectTimeout.AsDuration().Seconds() != 4 || db.ConnectTimeout.AsDuration().Seconds() == 4 {
		t.Errorf("inbound connect timeouts: 8080 %v, 5432 %v; want 4s on 8080 only", http.ConnectTimeout.AsDuration(), db.ConnectTimeout.AsDuration())
	}
}

// TestEnvoyFilterMatchesChainsByIstiodsNames: an EnvoyFilter written for istiod that
// matches a filter chain by the name istiod gives it (the virtual outbound
// listener's virtualOutbound-catchall-tcp) patches that chain only.
func TestEnvoyFilterMatchesChainsByIstiodsNames(t *testing.T) {
	snap := snapshotOf(t, envoyFilterInput(t), `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: idle, namespace: shop}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        name: virtualOutbound
        filterChain: {name: virtualOutbound-catchall-tcp, filter: {name: envoy.filters.network.tcp_proxy}}
    patch:
      operation: MERGE
      value:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          idle_timeout: 7s
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	var l listenerv3.Listener
	resourceOf(t, sets, ListenerType, virtualOutbound, &l)
	idle := map[string]float64{}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			var tp tcpv3.TcpProxy
			if f.GetTypedConfig().UnmarshalTo(&tp) == nil {
				idle[fc.Name] = tp.GetIdleTimeout().AsDuration().Seconds()
			}
		}
	}
	if idle["virtualOutbound-catchall-tcp"] != 7 || idle["virtualOutbound-blackhole"] == 7 {
		t.Errorf("tcp proxies' idle timeouts by chain %v: want 7s on virtualOutbound-catchall-tcp only", idle)
	}
}
