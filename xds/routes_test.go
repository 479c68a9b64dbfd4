package xds

import "testing"

// TestVirtualServiceForAHost: an exact host wins over any wildcard, whatever their
// age; the longest wildcard over shorter ones; the oldest of equals; a VirtualService
// bound only to a gateway routes nothing in the mesh.
func TestVirtualServiceForAHost(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: everything, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  hosts: ["*.svc.cluster.local"]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-wide, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-wide-later, namespace: shop, creationTimestamp: "2026-01-03T00:00:00Z"}
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop, creationTimestamp: "2026-01-04T00:00:00Z"}
spec:
  hosts: [ratings, ratings.example.com]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-later, namespace: shop, creationTimestamp: "2026-01-05T00:00:00Z"}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-only, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  hosts: [cart]
  gateways: [edge]
  http: [{route: [{destination: {host: a}}]}]
`)
	ctx := newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system")
	for host, want := range map[string]string{
		"ratings.shop.svc.cluster.local":  "ratings",
		"ratings.example.com":             "ratings",
		"cart.shop.svc.cluster.local":     "shop-wide",
		"reviews.other.svc.cluster.local": "everything",
	} {
		got := ""
		if vs := virtualServiceFor(ctx, host); vs != nil {
			got = vs.Resource.Meta.Name
		}
		if got != want {
			t.Errorf("%s: got VirtualService %q, want %q", host, got, want)
		}
	}
}
