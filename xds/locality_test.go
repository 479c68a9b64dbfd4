package xds

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// localityInput is a service with endpoints in five localities.
const localityInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a/1}
  - {address: 10.0.0.2, locality: us-east/a/2}
  - {address: 10.0.0.3, locality: us-east/b}
  - {address: 10.0.0.4, locality: us-west/c, weight: 3}
  - {address: 10.0.0.5, locality: eu/d}
`

// localityGroups builds ratings' endpoints for a proxyless client in shop at locality
// and returns "locality p<priority> w<weight>" per group, sorted.
func localityGroups(t *testing.T, locality string, rule string) []string {
	t.Helper()
	return groupsFor(t, localityInput, locality, nil, rule)
}

// groupsFor is localityGroups for another ratings service (input) and a client with
// labels.
func groupsFor(t *testing.T, input, locality string, labels map[string]string, rule string) []string {
	t.Helper()
	p := grpcProxy("shop", labels)
	p.Locality = locality
	snap := snapshotOf(t, input, rule)
	sets, err := grpcProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := sets[EndpointType].ByName["outbound|9080||ratings.shop.svc.cluster.local"].Body.UnmarshalTo(&cla); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range cla.Endpoints {
		out = append(out, fmt.Sprintf("%s p%d w%d", localityString(g.Locality), g.Priority, g.LoadBalancingWeight.GetValue()))
	}
	sort.Strings(out)
	return out
}

// TestLocalityLoadBalancing checks the priorities and weights a client gets for its
// locality: failover by proximity once the DestinationRule has outlier detection,
// a failover entry's region ahead of other regions, distribute's shares, and none of
// it without a client locality or with locality load balancing disabled.
func TestLocalityLoadBalancing(t *testing.T) {
	rule := func(lb string) string {
		return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s}
    loadBalancer: {simple: ROUND_ROBIN` + lb + `}
`
	}
	flat := []string{"eu/d p0 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p0 w1", "us-west/c p0 w3"}
	for _, tt := range []struct {
		name, locality, rule string
		want                 []string
	}{
		{"with outlier detection, nearer localities come first", "us-east/a/1", rule(""),
			[]string{"eu/d p3 w1", "us-east/a/1 p0 w1", "us-east/a/2 p1 w1", "us-east/b p2 w1", "us-west/c p3 w3"}},
		{"a failover entry puts its region ahead of the others", "us-east/a/1", rule(`, localityLbSetting: {failover: [{from: us-east, to: eu}]}`),
			[]string{"eu/d p3 w1", "us-east/a/1 p0 w1", "us-east/a/2 p1 w1", "us-east/b p2 w1", "us-west/c p4 w3"}},
		{"priorities are consecutive", "eu/d", rule(""),
			[]string{"eu/d p0 w1", "us-east/a/1 p1 w1", "us-east/a/2 p1 w1", "us-east/b p1 w1", "us-west/c p1 w3"}},
		{"distribute gives each destination its share, and nothing to the rest", "us-east/a/2",
			rule(`, localityLbSetting: {distribute: [{from: "us-west/*", to: {"us-west/*": 100}}, {from: "us-east/*", to: {"us-east/a/*": 80, "us-west/*": 20}}]}`),
			[]string{"us-east/a/1 p0 w40", "us-east/a/2 p0 w40", "us-west/c p0 w20"}},
		{"without outlier detection, no failover", "us-east/a/1", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec: {host: ratings.shop.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
`, flat},
		{"disabled", "us-east/a/1", rule(`, localityLbSetting: {enabled: false}`), flat},
		{"a client without a locality", "", rule(""), flat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := localityGroups(t, tt.locality, tt.rule); strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParseProxyLocality(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "shop"})
	p, err := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.9~a.shop~shop.svc.cluster.local", Metadata: md,
		Locality: &corev3.Locality{Region: "us-east", Zone: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.9~a.shop~shop.svc.cluster.local", Metadata: md,
		Locality: &corev3.Locality{Region: "eu", Zone: "a"}})
	if p.Locality != "us-east/a" || p.classKey() == q.classKey() {
		t.Errorf("locality %q; proxies in different localities must be different classes", p.Locality)
	}
}

// TestFailoverByLabels checks failoverPriority: endpoints matching the client on
// every listed label first, then on all but the last, and so on; a "key=value"
// entry compares with value; localities give topology labels; with failover,
// localities order each label priority; priorities stay consecutive, and endpoints
// keep their locality groups.
func TestFailoverByLabels(t *testing.T) {
	const input = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a, labels: {tier: gold, rack: r1}}
  - {address: 10.0.0.2, locality: us-east/a, labels: {tier: gold, rack: r2}}
  - {address: 10.0.0.3, locality: us-west/c, labels: {tier: gold, rack: r1}}
  - {address: 10.0.0.4, locality: eu/d, labels: {tier: iron, rack: r1}}
`
	rule := func(priority string) string {
		return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s}
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {failoverPriority: ` + priority + `}}
`
	}
	gold := map[string]string{"tier": "gold", "rack": "r1"}
	for _, tt := range []struct {
		name, locality, priority string
		labels                   map[string]string
		want                     []string
	}{
		{"both labels, then the first", "us-east/a", "[tier, rack]", gold,
			[]string{"eu/d p2 w1", "us-east/a p0 w1", "us-east/a p1 w1", "us-west/c p0 w1"}},
		{"a given value instead of the client's", "us-east/a", `["tier=iron"]`, gold,
			[]string{"eu/d p0 w1", "us-east/a p1 w2", "us-west/c p1 w1"}},
		{"the locality as topology labels", "us-west/z", "[topology.kubernetes.io/region, tier]", gold,
			[]string{"eu/d p1 w1", "us-east/a p1 w2", "us-west/c p0 w1"}}, // 0 and 2, renumbered
		{"then localities within each priority, with failover", "us-east/a", "[tier], failover: [{from: us-east, to: eu}]", gold,
			[]string{"eu/d p2 w1", "us-east/a p0 w2", "us-west/c p1 w1"}}, // 0, 4 and 1×5+3, renumbered
		{"a client without the label", "us-east/a", "[tier]", nil,
			[]string{"eu/d p0 w1", "us-east/a p0 w2", "us-west/c p0 w1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := groupsFor(t, input, tt.locality, tt.labels, rule(tt.priority))
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestTrafficDistribution checks a service's traffic distribution (Istio's
// annotation, as the Kubernetes adapter writes it from spec.trafficDistribution):
// the client's network, region and zone first (and for PreferSameNode its sub-zone)
// without outlier detection, unless the DestinationRule's localityLbSetting says
// otherwise.
func TestTrafficDistribution(t *testing.T) {
	annotated := func(value string) string {
		return strings.Replace(localityInput, "metadata: {name: ratings, namespace: shop}",
			"metadata: {name: ratings, namespace: shop, annotations: {networking.istio.io/traffic-distribution: "+value+"}}", 1)
	}
	flat := []string{"eu/d p0 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p0 w1", "us-west/c p0 w3"}
	for _, tt := range []struct {
		name, input, locality, rule string
		want                        []string
	}{
		{"PreferClose: the zone, then the region, then the rest", annotated("PreferClose"), "us-east/a/1", "",
			[]string{"eu/d p2 w1", "us-east/a/1 p0 w1", "us-east/a/2 p0 w1", "us-east/b p1 w1", "us-west/c p2 w3"}},
		{"PreferSameZone, in any case", annotated("prefersamezone"), "us-east/b", "",
			[]string{"eu/d p2 w1", "us-east/a/1 p1 w1", "us-east/a/2 p1 w1", "us-east/b p0 w1", "us-west/c p2 w3"}},
		{"PreferSameNode: the sub-zone too", annotated("PreferSameNode"), "us-east/a/1", "",
			[]string{"eu/d p3 w1", "us-east/a/1 p0 w1", "us-east/a/2 p1 w1", "us-east/b p2 w1", "us-west/c p3 w3"}},
		{"an unknown value is no preference", annotated("Nearby"), "us-east/a/1", "", flat},
		{"a client that does not say where it is", annotated("PreferClose"), "", "", flat},
		{"the DestinationRule's localityLbSetting first", annotated("PreferClose"), "us-east/a/2", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-east/*", to: {"us-west/*": 100}}]}}}
`, []string{"us-west/c p0 w100"}},
		{"disabled by the DestinationRule", annotated("PreferClose"), "us-east/a/2", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: false}}}
`, flat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := groupsFor(t, tt.input, tt.locality, nil, tt.rule); strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestPreferSameNode: under PreferSameNode the endpoint on the client's node comes
// first (the node of a WorkloadEntry, the client's NODE_NAME), then its sub-zone.
func TestPreferSameNode(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop, annotations: {networking.istio.io/traffic-distribution: PreferSameNode}}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r1, namespace: shop, annotations: {navarch.io/node: node-a}}
spec: {address: 10.0.0.1, labels: {app: ratings}, locality: us-east/a/1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r2, namespace: shop, annotations: {navarch.io/node: node-b}}
spec: {address: 10.0.0.2, labels: {app: ratings}, locality: us-east/a/1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r3, namespace: shop, annotations: {navarch.io/node: node-c}}
spec: {address: 10.0.0.3, labels: {app: ratings}, locality: us-east/b}
`)
	for node, want := range map[string]string{
		"node-a": "10.0.0.1 p0, 10.0.0.2 p1, 10.0.0.3 p2",
		"node-b": "10.0.0.1 p1, 10.0.0.2 p0, 10.0.0.3 p2",
		"":       "10.0.0.1 p0, 10.0.0.2 p0, 10.0.0.3 p1",
	} {
		p := grpcProxy("shop", nil)
		p.Locality, p.NodeName = "us-east/a/1", node
		sets, err := grpcProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var cla endpointv3.ClusterLoadAssignment
		resourceOf(t, sets, EndpointType, "outbound|9080||ratings.shop.svc.cluster.local", &cla)
		var got []string
		for _, g := range cla.Endpoints {
			for _, e := range g.LbEndpoints {
				got = append(got, fmt.Sprintf("%s p%d", e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress(), g.Priority))
			}
		}
		sort.Strings(got)
		if strings.Join(got, ", ") != want {
			t.Errorf("a client on %q: %s, want %s", node, strings.Join(got, ", "), want)
		}
	}
}
