package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// BenchmarkNewSnapshot indexes a VM estate of one namespace: 1,000 ServiceEntries
// selecting WorkloadEntries by label, 3 WorkloadEntries each (and a version label on
// every one, as subsets need): what every node does on every change of the store.
func BenchmarkNewSnapshot(b *testing.B) {
	var docs []string
	for i := 0; i < 1000; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%04d, namespace: vms}
spec:
  hosts: [svc-%04d.vms.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: svc-%04d}}
`, i, i, i))
		for j := 0; j < 3; j++ {
			docs = append(docs, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-%04d-%d, namespace: vms}
spec:
  address: 10.%d.%d.%d
  labels: {app: svc-%04d, version: v%d}
`, i, j, j, i/250, i%250, i, j))
		}
	}
	rs, _, err := api.Decode("bench", []byte(strings.Join(docs, "---\n")), "")
	if err != nil {
		b.Fatal(err)
	}
	entries := make([]store.Entry, len(rs))
	for i, r := range rs {
		entries[i] = store.Entry{Space: store.ConfigSpace, Resource: r}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap := NewSnapshot(entries, 1, "cluster.local")
		if n := len(snap.Endpoints(snap.Services()[999])); n != 3 {
			b.Fatalf("%d endpoints, want 3", n)
		}
	}
}
