package xds

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/corpus"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// sharingInput routes by source labels and gives namespace shop its own
// DestinationRule, so the routes of reviews differ by the client's labels and its
// clusters and endpoints by the client's namespace.
const sharingInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - match: [{sourceLabels: {version: v1}}]
    route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v1}}]
  - route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  exportTo: [.]
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// selectedRulesInput gives clients with version v1 in namespace shop a DestinationRule
// of their own (workloadSelector), so their clusters, endpoints and routes differ from
// those of the namespace's other clients.
const selectedRulesInput = sharingInput + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-for-v1, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  workloadSelector: {matchLabels: {version: v1}}
  exportTo: [.]
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - {name: v1, labels: {version: v1}}
`

// TestSharedBuildsMatchFreshBuilds builds, from one snapshot and one memo, the
// classes of clients in two namespaces with two label sets and two networks under
// both profiles, and
// checks every resource equals what a build without the memo makes: sharing a
// resource between classes must never hand a class another class's configuration.
func TestSharedBuildsMatchFreshBuilds(t *testing.T) {
	inputs := map[string]string{"sharing": sharingInput, "networks": networksInput, "selected-rules": selectedRulesInput, "locality": localityInput + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}
`}
	for _, f := range corpus.Files(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[strings.TrimSuffix(filepath.Base(f), ".yaml")] = string(data)
	}
	for name, input := range inputs {
		t.Run(name, func(t *testing.T) {
			rs, _, err := api.Decode(name, []byte(input), "")
			if err != nil {
				t.Fatal(err)
			}
			namespaces := map[string]bool{"other": true}
			var entries []store.Entry
			for _, r := range rs {
				entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
				namespaces[r.Meta.Namespace] = true
			}
			snap := registry.NewSnapshot(entries, 1, "cluster.local")
			memo := &sync.Map{}
			for ns := range namespaces {
				for _, version := range []string{"v1", "v2"} {
					for _, gen := range []string{GeneratorGRPC, ""} {
						for _, network := range []string{"", "east"} {
							p := grpcProxy(ns, map[string]string{"version": version})
							p.Generator, p.Network = gen, network
							if version == "v1" { // locality load balancing depends on it
								p.Locality = "us-east/a"
							} else {
								p.Locality = "eu/d"
							}
							fresh, _ := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
							ctx := newContext(snap, p, "cluster.local", "istio-system")
							ctx.memo = memo
							shared, _ := profileFor(p).build(ctx)
							compareBuilds(t, ns+"/"+version+"/"+gen+"/"+network, fresh, shared)
						}
					}
				}
			}
		})
	}
}

func compareBuilds(t *testing.T, class string, want, got map[string]*TypeSet) {
	t.Helper()
	for typ, ws := range want {
		gs := got[typ]
		if gs == nil || len(gs.ByName) != len(ws.ByName) {
			t.Errorf("%s: %s: %d resources shared, %d built fresh", class, typ, len(gs.ByName), len(ws.ByName))
			continue
		}
		for name, w := range ws.ByName {
			if g := gs.ByName[name]; g == nil || !proto.Equal(g.Body, w.Body) {
				t.Errorf("%s: %s %s differs from a fresh build", class, typ, name)
			}
		}
	}
}

// TestSharedResourcesAreShared checks that the memo does share: classes that differ
// only where a resource does not depend get the same built resource, and classes
// that differ where it does get their own.
func TestSharedResourcesAreShared(t *testing.T) {
	snap := snapshotOf(t, sharingInput)
	memo := &sync.Map{}
	build := func(ns, version string) map[string]*TypeSet {
		ctx := newContext(snap, grpcProxy(ns, map[string]string{"version": version}), "cluster.local", "istio-system")
		ctx.memo = memo
		sets, err := grpcProfile().build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sets
	}
	v1, v2, other := build("shop", "v1"), build("shop", "v2"), build("other", "v1")
	const host = "reviews.shop.svc.cluster.local"
	cluster := clusterName(host, 9080, "")
	res := func(sets map[string]*TypeSet, typ, name string) *Resource {
		r := sets[typ].ByName[name]
		if r == nil {
			t.Fatalf("no %s %s", typ, name)
		}
		return r
	}
	if res(v1, ClusterType, cluster) != res(v2, ClusterType, cluster) {
		t.Error("clients in one namespace with other labels do not share the cluster")
	}
	if res(v1, ClusterType, cluster) == res(other, ClusterType, cluster) {
		t.Error("a client in another namespace shares the cluster the namespace's DestinationRule shapes")
	}
	if res(v1, ListenerType, listenerName(host, 9080)) != res(other, ListenerType, listenerName(host, 9080)) {
		t.Error("API listeners are not shared across namespaces")
	}
	if res(v1, RouteType, cluster) == res(v2, RouteType, cluster) {
		t.Error("clients with other labels share routes that match on source labels")
	}
}
