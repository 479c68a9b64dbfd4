package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/internal/peers"
)

// envoyFilterParity are EnvoyFilters for the reviews service of workloadsYAML
// (subsets v1 and v2) that patch what an Envoy sidecar of app web gets: one mesh-wide (the root namespace's,
// first by priority), one for web in default, one only for proxies of Istio 1.2x
// whose ROLE metadata is edge.
const envoyFilterParity = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: mesh-wide, namespace: istio-system}
spec:
  priority: -1
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768, connect_timeout: 3s}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: web, namespace: default}
spec:
  workloadSelector: {labels: {app: web}}
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: reviews.default.svc.cluster.local, subset: v1}}
    patch: {operation: MERGE, value: {connect_timeout: 2s}}
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch:
      operation: ADD
      value:
        name: collector
        type: STATIC
        connect_timeout: 1s
        load_assignment:
          cluster_name: collector
          endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9411}}}}]}]
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        portNumber: 9080
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          default_source_code: {inline_string: "function envoy_on_request(h) end"}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: edge, namespace: default}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, proxy: {proxyVersion: '^1\.2[0-9]\..*', metadata: {ROLE: edge}}, cluster: {portNumber: 9080, subset: v2}}
    patch: {operation: MERGE, value: {lb_policy: RANDOM}}
`

// envoyView is what an Envoy sidecar was sent that EnvoyFilters patch here, and its
// clusters and listeners.
type envoyView struct {
	timeouts  map[string]time.Duration // connect timeout by cluster
	buffers   map[string]uint32        // per-connection buffer limit by cluster
	policies  map[string]string        // load balancer by cluster
	luaFirst  bool                     // Lua just before the router on 0.0.0.0_9080
	clusters  map[string]*clusterv3.Cluster
	listeners map[string]*listenerv3.Listener
}

// TestSameEnvoyFiltersAsIstiod gives istiod's discovery server and a navarch node the
// same service and EnvoyFilters, connects the same Envoy sidecars (an ADS stream as
// Envoy opens it, for every cluster and listener) to each, and compares what the
// patches did: which clusters got which connect timeout, buffer limit and load
// balancer (by their priority, selector and proxy match; Istio's default balancer,
// least request, elsewhere), the cluster one adds, and
// where an HTTP filter is inserted. The rest of the two configurations differ (istiod's
// filters, its stats, ...) and is not compared.
func TestSameEnvoyFiltersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + "---\n" + envoyFilterParity
	istiod, navarch := bothControlPlanes(t, bin, config)

	proxies := []struct {
		name     string
		labels   map[string]any
		metadata map[string]any
	}{
		{"web, an edge of Istio 1.24", map[string]any{"app": "web"}, map[string]any{"ISTIO_VERSION": "1.24.1", "ROLE": "edge"}},
		{"web of Istio 1.19", map[string]any{"app": "web"}, map[string]any{"ISTIO_VERSION": "1.19.0", "ROLE": "edge"}},
		{"another workload", map[string]any{"app": "other"}, map[string]any{"ISTIO_VERSION": "1.24.1", "ROLE": "core"}},
	}
	for i, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			md := map[string]any{"NAMESPACE": "default", "LABELS": p.labels}
			for k, v := range p.metadata {
				md[k] = v
			}
			id := fmt.Sprintf("sidecar~127.0.0.%d~web-%d.default~default.svc.cluster.local", 50+i, i)
			want := envoyConfig(t, istiod, id, md)
			var got envoyView
			eventually(t, 30*time.Second, "navarch's config with the EnvoyFilters", func() error {
				got = envoyConfig(t, navarch, id, md)
				if _, ok := got.timeouts["collector"]; !ok && want.timeouts["collector"] != 0 {
					return fmt.Errorf("no collector cluster yet")
				}
				return nil
			})
			for _, c := range []string{"outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080|v2|reviews.default.svc.cluster.local",
				"outbound|9080||reviews.default.svc.cluster.local", "collector"} {
				if got.timeouts[c] != want.timeouts[c] || got.buffers[c] != want.buffers[c] || got.policies[c] != want.policies[c] {
					t.Errorf("cluster %s: navarch timeout %v, buffer %d, %s; istiod %v, %d, %s", c,
						got.timeouts[c], got.buffers[c], got.policies[c], want.timeouts[c], want.buffers[c], want.policies[c])
				}
			}
			if got.luaFirst != want.luaFirst {
				t.Errorf("Lua right before the router on 0.0.0.0_9080: navarch %v, istiod %v", got.luaFirst, want.luaFirst)
			}
			if i == 0 && (!want.luaFirst || want.timeouts["outbound|9080|v1|reviews.default.svc.cluster.local"] != 2*time.Second || want.policies["outbound|9080|v2|reviews.default.svc.cluster.local"] != "RANDOM") {
				t.Errorf("istiod applied the patches otherwise than this test expects: %+v", want)
			}
		})
	}
}

// envoyConfig opens an ADS stream to server as an Envoy sidecar with node id and
// metadata md, asks for every cluster and listener, and reads what the patches here
// change.
func envoyConfig(t *testing.T, server, id string, md map[string]any, nodeOpts ...func(*corev3.Node)) envoyView {
	t.Helper()
	st, node := adsStream(t, server, id, md)
	for _, o := range nodeOpts {
		o(node)
	}
	view := envoyView{timeouts: map[string]time.Duration{}, buffers: map[string]uint32{}, policies: map[string]string{},
		clusters: map[string]*clusterv3.Cluster{}, listeners: map[string]*listenerv3.Listener{}}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
		for {
			res, err := st.Recv()
			if err != nil {
				t.Fatalf("%s from %s: %v", typ, server, err)
			}
			if res.TypeUrl != typ {
				continue
			}
			for _, a := range res.Resources {
				switch typ {
				case resourcev3.ClusterType:
					var c clusterv3.Cluster
					if err := a.UnmarshalTo(&c); err != nil {
						t.Fatal(err)
					}
					view.timeouts[c.Name] = c.ConnectTimeout.AsDuration()
					view.buffers[c.Name] = c.PerConnectionBufferLimitBytes.GetValue()
					view.policies[c.Name] = c.LbPolicy.String()
					view.clusters[c.Name] = &c
				case resourcev3.ListenerType:
					var l listenerv3.Listener
					if err := a.UnmarshalTo(&l); err != nil {
						t.Fatal(err)
					}
					view.listeners[l.Name] = &l
					if l.Name == "0.0.0.0_9080" {
						view.luaFirst = luaBeforeRouter(t, &l)
					}
				}
			}
			break
		}
	}
	return view
}

// adsStream opens an ADS stream to server, for 30 s at most and closed when the test
// ends, for an Envoy with node id and metadata md, whose node it returns.
// istioProxyVersion is the Istio version the parity tests' Envoys say they are.
const istioProxyVersion = "1.29.0"

func adsStream(t *testing.T, server, id string, md map[string]any) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *corev3.Node) {
	t.Helper()
	if _, ok := md["ISTIO_VERSION"]; !ok {
		// The Envoys compared are istio-proxy, as istio-agent runs them and says
		// by its version: navarch gives them istio-proxy's filters, as istiod does
		// whatever the proxy.
		md = maps.Clone(md)
		md["ISTIO_VERSION"] = istioProxyVersion
	}
	meta, err := structpb.NewStruct(md)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, &corev3.Node{Id: id, Metadata: meta}
}

// luaBeforeRouter reports whether every HTTP connection manager of l has the Lua
// filter right before the router.
func luaBeforeRouter(t *testing.T, l *listenerv3.Listener) bool {
	t.Helper()
	seen := false
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			seen = true
			names := make([]string, len(hcm.HttpFilters))
			for i, h := range hcm.HttpFilters {
				names[i] = h.Name
			}
			i := slices.Index(names, "envoy.filters.http.lua")
			if i < 0 || i+1 >= len(names) || names[i+1] != "envoy.filters.http.router" {
				return false
			}
		}
	}
	return seen
}
