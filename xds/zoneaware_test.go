package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// TestZoneAwareLoadBalancing checks the endpoint priorities a client gets under
// zone-aware load balancing: by region, its own first and a failover entry's next,
// under failoverPriority's label priorities; none with zone routing turned off;
// the mesh config's setting unless the DestinationRule has a locality setting.
func TestZoneAwareLoadBalancing(t *testing.T) {
	rule := func(lb string) string {
		return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: ` + lb + `
    outlierDetection: {consecutive5xxErrors: 3}
`
	}
	for _, tc := range []struct {
		name, locality, config string
		labels                 map[string]string
		want                   []string
	}{{
		name: "own region first", locality: "us-east/a/1", config: rule("{zoneAwareLbSetting: {}}"),
		want: []string{"eu/d p1 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p0 w1", "us-west/c p1 w3"},
	}, {
		name: "then the failover region", locality: "us-east/b", config: rule("{zoneAwareLbSetting: {failover: [{from: us-east, to: eu}]}}"),
		want: []string{"eu/d p1 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p0 w1", "us-west/c p2 w3"},
	}, {
		name: "zone routing off", locality: "us-east/a/1", config: rule("{zoneAwareLbSetting: {enabled: false}}"),
		want: []string{"eu/d p0 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p0 w1", "us-west/c p0 w3"},
	}, {
		name: "the mesh's", locality: "us-west/c", config: meshDoc("{zoneAwareLbSetting: {}}"),
		want: []string{"eu/d p1 w1", "us-east/a/1 p1 w1", "us-east/a/2 p1 w1", "us-east/b p1 w1", "us-west/c p0 w3"},
	}, {
		name: "the rule's locality setting over the mesh's zone-aware one", locality: "us-west/c",
		config: meshDoc("{zoneAwareLbSetting: {}}") + "---\n" + rule("{localityLbSetting: {failover: [{from: us-west, to: eu}]}}"),
		want:   []string{"eu/d p1 w1", "us-east/a/1 p2 w1", "us-east/a/2 p2 w1", "us-east/b p2 w1", "us-west/c p0 w3"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupsFor(t, localityInput, tc.locality, tc.labels, tc.config); !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}

	// Label priorities first, regions within each.
	labelled := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a, labels: {rack: r1}}
  - {address: 10.0.0.2, locality: eu/b, labels: {rack: r1}}
  - {address: 10.0.0.3, locality: us-east/c, labels: {rack: r2}}
`
	got := groupsFor(t, labelled, "us-east/a", map[string]string{"rack": "r1"}, rule("{zoneAwareLbSetting: {failoverPriority: [rack]}}"))
	if want := []string{"eu/b p1 w1", "us-east/a p0 w1", "us-east/c p2 w1"}; !slices.Equal(got, want) {
		t.Errorf("by labels, then regions: got %v, want %v", got, want)
	}
}

// TestZoneAwareClusters: an Envoy's cluster carries Envoy's zone-aware settings
// (the minimum cluster size; 0% routing when turned off), and an Envoy that asks
// for its local cluster (ENABLE_SELF_DISCOVERY) is sent its own service's endpoints
// under that name, or an empty set without a service; one that does not ask is not.
func TestZoneAwareClusters(t *testing.T) {
	snap := snapshotOf(t, localityInput, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {zoneAwareLbSetting: {minClusterSize: 4}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 8443, name: https, protocol: HTTPS}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 10.0.1.1, labels: {app: web}, locality: us-east/a}
`, meshDoc("{zoneAwareLbSetting: {enabled: false}}"))
	build := func(labels map[string]string, selfDiscovery bool) map[string]*TypeSet {
		p := grpcProxy("shop", labels)
		p.Generator, p.SelfDiscovery = "", selfDiscovery
		sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		return sets
	}
	sets := build(map[string]string{"app": "web"}, true)
	var c clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "outbound|9080||ratings.shop.svc.cluster.local", &c)
	if za := c.GetCommonLbConfig().GetZoneAwareLbConfig(); za.GetMinClusterSize().GetValue() != 4 || za.GetRoutingEnabled() != nil {
		t.Errorf("ratings' cluster: zone-aware settings %v, want a minimum cluster size of 4 and routing on", za)
	}
	resourceOf(t, sets, ClusterType, "outbound|8080||web.shop.svc.cluster.local", &c)
	if za := c.GetCommonLbConfig().GetZoneAwareLbConfig(); za.GetRoutingEnabled() == nil || za.GetRoutingEnabled().GetValue() != 0 {
		t.Errorf("web's cluster, under the mesh's zone-aware setting turned off: %v, want 0%% routing", za)
	}
	var local endpointv3.ClusterLoadAssignment
	resourceOf(t, sets, EndpointType, selfDiscoveryClusterName, &local)
	if n := len(local.Endpoints); n != 1 || local.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 8080 {
		t.Errorf("local cluster %v, want web-1 on port 8080", local.Endpoints)
	}
	if _, ok := build(map[string]string{"app": "web"}, false)[EndpointType].ByName[selfDiscoveryClusterName]; ok {
		t.Error("a proxy that does not ask for a local cluster is sent one")
	}
	resourceOf(t, build(map[string]string{"app": "other"}, true), EndpointType, selfDiscoveryClusterName, &local)
	if len(local.Endpoints) != 0 {
		t.Errorf("a proxy without a service: local cluster %v, want it empty", local.Endpoints)
	}
}
