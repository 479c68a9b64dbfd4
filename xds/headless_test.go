package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// headlessInput is a headless service, db, as the Kubernetes adapter writes it
// (resolution NONE, a selector, no addresses) with two pods under STRICT mTLS, and
// cache, another service on db's TCP port without addresses of its own.
const headlessInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}, {number: 8080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: NONE
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-0, namespace: shop}
spec: {address: 10.1.0.5, labels: {app: db}, serviceAccount: db}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 10.1.0.6, labels: {app: db}, serviceAccount: db}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: 10.1.0.9}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
`

// TestHeadlessService: an Envoy sidecar sends a connection to a headless service's
// pod where its client was going (an ORIGINAL_DST cluster, with mTLS; a listener
// per pod address on its TCP port, beside another service's on the port; the pods'
// own host names on its HTTP port), as in Istio; a gateway and a proxyless client
// balance over its pods by EDS.
func TestHeadlessService(t *testing.T) {
	const tcpCluster, httpCluster = "outbound|5432||db.shop.svc.cluster.local", "outbound|8080||db.shop.svc.cluster.local"
	snap := snapshotOf(t, headlessInput)
	sets := envoySidecar(t, snap, "shop", nil)
	var c clusterv3.Cluster
	resourceOf(t, sets, ClusterType, tcpCluster, &c)
	if c.GetType() != clusterv3.Cluster_ORIGINAL_DST || c.LbPolicy != clusterv3.Cluster_CLUSTER_PROVIDED || c.TransportSocket == nil {
		t.Errorf("a sidecar's cluster of a headless service: type %v, policy %v, transport socket %v; want ORIGINAL_DST, CLUSTER_PROVIDED, mTLS",
			c.GetType(), c.LbPolicy, c.TransportSocket)
	}
	if sets[EndpointType].ByName[tcpCluster] != nil {
		t.Error("a sidecar got endpoints for an ORIGINAL_DST cluster")
	}
	to := func(listener string) string {
		r := sets[ListenerType].ByName[listener]
		if r == nil {
			return "no listener"
		}
		var l listenerv3.Listener
		if err := r.Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		var tp tcpproxyv3.TcpProxy
		if err := l.FilterChains[len(l.FilterChains)-1].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			t.Fatal(err)
		}
		return tp.GetCluster()
	}
	for listener, want := range map[string]string{"10.1.0.5_5432": tcpCluster, "10.1.0.6_5432": tcpCluster, "0.0.0.0_5432": "outbound|5432||cache.shop.svc.cluster.local"} {
		if got := to(listener); got != want {
			t.Errorf("listener %s goes to %s, want %s", listener, got, want)
		}
	}
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "8080", &rc)
	found := false
	for _, vh := range rc.VirtualHosts {
		if slices.Contains(vh.Domains, "*.db.shop.svc.cluster.local") {
			found = vh.Routes[0].GetRoute().GetCluster() == httpCluster
		}
	}
	if !found {
		t.Errorf("no virtual host takes the pods' host names to %s: %v", httpCluster, rc.VirtualHosts)
	}

	gw := &Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop"}
	gwSets, err := gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	grpcSets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for what, sets := range map[string]map[string]*TypeSet{"a gateway": gwSets, "a proxyless client": grpcSets} {
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, tcpCluster, &c)
		var cla endpointv3.ClusterLoadAssignment
		resourceOf(t, sets, EndpointType, tcpCluster, &cla)
		if c.GetType() != clusterv3.Cluster_EDS || c.LbPolicy != clusterv3.Cluster_LEAST_REQUEST || len(cla.Endpoints) != 1 || len(cla.Endpoints[0].LbEndpoints) != 2 {
			t.Errorf("%s: cluster type %v, policy %v, endpoints %v; want EDS over both pods, by the DestinationRule's policy", what, c.GetType(), c.LbPolicy, cla.Endpoints)
		}
	}
	if grpcSets[ListenerType].ByName["db.shop.svc.cluster.local:5432"] == nil {
		t.Error("a proxyless client has no listener for the headless service")
	}
}
