package e2e

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/navarch/navarch/internal/peers"
)

// TestSameEndpointsAsIstiod compares, field by field, the endpoints an Envoy sidecar in
// r1/z1/s1 gets from istiod and from navarch for services whose DestinationRules set
// locality failover (with outlier detection) or outlier detection alone, with
// weighted endpoints in several localities: localities, priorities, weights. Left out:
// telemetry metadata and health status (unset through istiod, HEALTHY through
// navarch: the same to Envoy).
func TestSameEndpointsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, destinationRuleParity+`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b}
spec:
  hosts: [b.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.51, locality: r1/z1/s1, weight: 3}, {address: 127.0.0.52, locality: r1/z2}, {address: 127.0.0.53, locality: r2/z3}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec:
  host: b.default.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3}
`)
	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	names := []string{"outbound|8080||a.default.svc.cluster.local", "outbound|8080|v1|a.default.svc.cluster.local", "outbound|8080||b.default.svc.cluster.local"}
	skip := regexp.MustCompile(`(^|\.)(metadata|healthStatus)(\.|\[|$)`)
	fields := func(server string) map[string]map[string]string {
		envoyConfig(t, server, id, md)
		st, node := adsStream(t, server, id, md)
		node.Locality = &corev3.Locality{Region: "r1", Zone: "z1", SubZone: "s1"}
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]string{}
		for len(out) < len(names) {
			res, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range res.Resources {
				var cla endpointv3.ClusterLoadAssignment
				a.UnmarshalTo(&cla)
				out[cla.ClusterName] = protoFields(t, &cla, skip, nil)
			}
		}
		return out
	}
	want := fields(istiod)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's endpoints", func() error {
		got = fields(navarch)
		if len(got["outbound|8080||b.default.svc.cluster.local"]) < len(want["outbound|8080||b.default.svc.cluster.local"]) {
			return fmt.Errorf("fewer endpoint fields than istiod's")
		}
		return nil
	})
	compareFields(t, want, got)
	if !slices.ContainsFunc(slices.Collect(maps.Keys(want["outbound|8080||b.default.svc.cluster.local"])), func(f string) bool { return strings.HasSuffix(f, ".priority") }) {
		t.Errorf("istiod put b's endpoints in no priority other than 0, which this test expects: %v", want["outbound|8080||b.default.svc.cluster.local"])
	}
}
