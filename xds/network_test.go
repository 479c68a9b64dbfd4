package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// networksInput has a service with workloads in three networks and in none, reached
// with mTLS, and a gateway into one of the networks.
const networksInput = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: east-1, namespace: default}
spec: {address: 10.1.0.1, network: east, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: east-2, namespace: default}
spec: {address: 10.1.0.2, network: east, weight: 2, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: west-1, namespace: default}
spec: {address: 10.2.0.1, network: west, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: west-2, namespace: default}
spec: {address: 10.2.0.2, network: west, weight: 3, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: north-1, namespace: default}
spec: {address: 10.3.0.1, network: north, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: anywhere, namespace: default}
spec: {address: 10.4.0.1, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: eastwest, namespace: istio-system, labels: {topology.istio.io/network: west}}
spec:
  hosts: [eastwest.west.example]
  ports: [{number: 15443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}, {address: 192.0.2.11}]
`

// A proxy reaches the endpoints of its own network, of no network and of networks
// without gateways directly. An Envoy reaches another network's that it talks mTLS
// to through that network's gateways, sending the SNI the gateway forwards by (one
// of no network too); grpc-go, which cannot send that SNI, does not reach them (but
// directly when it is of no network). As in Istio, once a network has gateways
// every weight is doubled here (west's two gateways), so that each workload's
// splits evenly over them.
func TestEndpointsAcrossNetworks(t *testing.T) {
	snap := snapshotOf(t, networksInput)
	direct := map[string]uint32{"10.1.0.1:9080": 2, "10.1.0.2:9080": 4, "10.3.0.1:9080": 2, "10.4.0.1:9080": 2}
	west := map[string]uint32{"10.2.0.1:9080": 2, "10.2.0.2:9080": 6}
	viaGateways := map[string]uint32{"192.0.2.10:15443": 1 + 3, "192.0.2.11:15443": 1 + 3}
	tests := []struct {
		name      string
		network   string
		generator string
		want      map[string]uint32 // address:port -> weight
		view      []string          // REQUESTED_NETWORK_VIEW
	}{
		{"envoy in east", "east", "", merge(direct, viaGateways), nil},
		{"grpc in east", "east", GeneratorGRPC, direct, nil},
		{"envoy in west", "west", "", merge(direct, west), nil},
		{"envoy in no network", "", "", merge(direct, viaGateways), nil},
		{"grpc in no network", "", GeneratorGRPC, merge(direct, west), nil},
		// A network view shows only its networks' endpoints and those of none.
		{"envoy in east viewing west", "east", "", merge(map[string]uint32{"10.4.0.1:9080": 2}, viaGateways), []string{"west"}},
		{"grpc in east viewing east", "east", GeneratorGRPC, map[string]uint32{"10.1.0.1:9080": 2, "10.1.0.2:9080": 4, "10.4.0.1:9080": 2}, []string{"east"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := grpcProxy("default", nil)
			p.Network, p.Generator, p.NetworkView = tt.network, tt.generator, tt.view
			sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
			if err != nil {
				t.Fatal(err)
			}
			r := sets[EndpointType].ByName["outbound|9080||ratings.default.svc.cluster.local"]
			if r == nil {
				t.Fatalf("no endpoints for ratings; built %v", sets[EndpointType].Names())
			}
			var cla endpointv3.ClusterLoadAssignment
			if err := r.Body.UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			got := map[string]uint32{}
			for _, loc := range cla.Endpoints {
				for _, e := range loc.LbEndpoints {
					a := e.GetEndpoint().GetAddress().GetSocketAddress()
					got[fmt.Sprintf("%s:%d", a.Address, a.GetPortValue())] = e.LoadBalancingWeight.GetValue()
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("endpoints:\n got %v\nwant %v", sorted(got), sorted(tt.want))
			}
		})
	}
}

func merge(a, b map[string]uint32) map[string]uint32 {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func sorted(m map[string]uint32) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(out)
	return out
}

// Proxies of different networks get different endpoints, so they are different
// classes.
func TestNetworkSetsTheClass(t *testing.T) {
	a, b := grpcProxy("default", nil), grpcProxy("default", nil)
	a.Network, b.Network = "east", "west"
	if a.classKey() == b.classKey() {
		t.Fatalf("proxies in networks east and west share class %q", a.classKey())
	}
	md, _ := structpb.NewStruct(map[string]any{"REQUESTED_NETWORK_VIEW": "west,east,west"})
	c, err := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.NetworkView, []string{"east", "west"}) {
		t.Fatalf("network view %v, want [east west]", c.NetworkView)
	}
	d := *c
	d.NetworkView = nil
	if c.classKey() == d.classKey() {
		t.Fatalf("proxies with and without a network view share class %q", c.classKey())
	}
}

// An Envoy's mTLS cluster sends the SNI that an AUTO_PASSTHROUGH gateway forwards by.
func TestMeshClustersSendGatewaySNI(t *testing.T) {
	snap := snapshotOf(t, networksInput)
	p := grpcProxy("default", nil)
	p.Generator, p.Network = "", "east"
	sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	r := sets[ClusterType].ByName["outbound|9080||ratings.default.svc.cluster.local"]
	var c clusterv3.Cluster
	if err := r.Body.UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	var tlsCtx tlsv3.UpstreamTlsContext
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
		t.Fatalf("ratings cluster has no upstream TLS: %v", err)
	}
	if want := "outbound_.9080_._.ratings.default.svc.cluster.local"; tlsCtx.Sni != want {
		t.Fatalf("SNI %q, want %q", tlsCtx.Sni, want)
	}
}
