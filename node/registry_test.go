package node

import (
	"testing"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

const listingDocs = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: vms, annotations: {navarch.io/internal-traffic-policy: Local, networking.istio.io/traffic-distribution: PreferClose}}
spec:
  hosts: [ratings.vms.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: vms, annotations: {navarch.io/node: worker-1}}
spec: {address: 10.0.0.1, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: vms}
spec: {address: 10.0.0.2, labels: {app: reviews}}
`

func TestRegistryListingShowsWorkloadsNoServiceSelects(t *testing.T) {
	rs, _, err := api.Decode("docs.yaml", []byte(listingDocs), "")
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.Entry
	for _, r := range rs {
		sp := store.ConfigSpace
		if r.Meta.Name == "reviews-1" {
			sp = store.RegistrySpace("vm")
		}
		entries = append(entries, store.Entry{Space: sp, Resource: r})
	}
	l := registryListing(registry.NewSnapshot(entries, 1, "cluster.local"), nil)
	if len(l.Services) != 1 || len(l.Services[0].Endpoints) != 1 || l.Services[0].Endpoints[0].Name != "ratings-1" {
		t.Fatalf("services %+v", l.Services)
	}
	if s := l.Services[0]; !s.NodeLocal || s.TrafficDistribution != "PreferSameZone" || s.Endpoints[0].Node != "worker-1" {
		t.Errorf("node-local %v, traffic distribution %q, endpoint node %q; want true, PreferSameZone, worker-1",
			s.NodeLocal, s.TrafficDistribution, s.Endpoints[0].Node)
	}
	if len(l.Unselected) != 1 || l.Unselected[0].Name != "reviews-1" || l.Unselected[0].Source != "vm" {
		t.Fatalf("unselected %+v, want only reviews-1 from source vm", l.Unselected)
	}
}
