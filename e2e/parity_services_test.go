package e2e

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/navarch/navarch/internal/peers"
)

// sameHostParity defines hosts in several ServiceEntries, each older than the next
// (their creation times say so, which istiod-xds takes as given: without them all
// would be as old, and istiod would order them at random): api.example.com by two of
// namespace default (the second adding a port and an endpoint) and one of
// namespace other; db.example.com by two of default that resolve differently (their
// ports stay apart); cache.example.com by two DNS_ROUND_ROBIN ones of default on
// one port.
const sameHostParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-a, namespace: default, creationTimestamp: "2026-01-01T00:00:01Z"}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.81}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-b, namespace: default, creationTimestamp: "2026-01-01T00:00:02Z"}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.82}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-c, namespace: other, creationTimestamp: "2026-01-01T00:00:03Z"}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.83}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-a, namespace: default, creationTimestamp: "2026-01-01T00:00:04Z"}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.84}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-b, namespace: default, creationTimestamp: "2026-01-01T00:00:05Z"}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 5433, name: tcp-replica, protocol: TCP}]
  resolution: DNS
  endpoints: [{address: replica.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache-a, namespace: default, creationTimestamp: "2026-01-01T00:00:06Z"}
spec:
  hosts: [cache.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 6379, name: tcp, protocol: TCP}]
  resolution: DNS_ROUND_ROBIN
  endpoints: [{address: cache-a.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache-b, namespace: default, creationTimestamp: "2026-01-01T00:00:07Z"}
spec:
  hosts: [cache.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 6379, name: tcp, protocol: TCP}]
  resolution: DNS_ROUND_ROBIN
  endpoints: [{address: cache-b.example.com}]
`

// TestSameServiceFromSeveralEntriesAsIstiod compares, field by field, the clusters,
// the endpoints of the clusters served by EDS and the listeners a sidecar of
// namespace client gets for sameHostParity from istiod and from navarch: which
// ServiceEntries of a host make its service, with what ports and endpoints. Left
// out: istiod's listener for the port of db-b, whose ports do not join db-a's; it
// sends connections to a cluster istiod does not build, where navarch has no
// listener there and lets them out as any unknown destination.
func TestSameServiceFromSeveralEntriesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, sameHostParity)
	id := "sidecar~127.0.0.60~web-0.client~client.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "client", "LABELS": map[string]any{"app": "web"}}
	eds := []string{"outbound|80||api.example.com", "outbound|443||api.example.com", "outbound|5432||db.example.com"}
	describe := func(server string) map[string]map[string]string {
		c := envoyConfig(t, server, id, md)
		out := clusterFields(t, c.clusters)
		for name := range c.listeners {
			if name != "0.0.0.0_5433" {
				out["listener "+name] = map[string]string{"exists": "yes"}
			}
		}
		if c.clusters[eds[1]] != nil {
			maps.Copy(out, endpointFields(t, server, id, md, nil, eds))
		}
		return out
	}
	want := describe(istiod)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's clusters", func() error {
		// The last entry's cluster: all the configuration is in.
		if got = describe(navarch); len(got["outbound|6379||cache.example.com"]) == 0 {
			return fmt.Errorf("no cluster of cache.example.com yet: %v", slices.Sorted(maps.Keys(got)))
		}
		return nil
	})
	compareFields(t, want, got)
	for _, name := range append(eds, "listener 0.0.0.0_443") {
		if len(want[name]) == 0 {
			t.Errorf("istiod gave no %s, which this test expects", name)
		}
	}
}
