package analyze

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkAnalyze analyzes a mesh of n services, each with two workloads, a
// DestinationRule of two subsets and a VirtualService splitting between them, and an
// AuthorizationPolicy per service: the whole of `navarch analyze` but decoding.
func BenchmarkAnalyze(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var docs strings.Builder
			for i := range n {
				ns := fmt.Sprintf("ns%d", i%50)
				fmt.Fprintf(&docs, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  hosts: [svc%[1]d.%[2]s.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: svc%[1]d}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc%[1]d-a, namespace: %[2]s}
spec: {address: 10.%[3]d.%[4]d.1, labels: {app: svc%[1]d, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc%[1]d-b, namespace: %[2]s}
spec: {address: 10.%[3]d.%[4]d.2, labels: {app: svc%[1]d, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  host: svc%[1]d
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  hosts: [svc%[1]d]
  http:
  - route:
    - {destination: {host: svc%[1]d, subset: v1}, weight: 90}
    - {destination: {host: svc%[1]d, subset: v2}, weight: 10}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: svc%[1]d, namespace: %[2]s}
spec: {selector: {matchLabels: {app: svc%[1]d}}, action: ALLOW, rules: [{}]}
---
`, i, ns, i/250, i%250)
			}
			snap := snapshotOf(b, docs.String())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if msgs := Analyze(snap); len(msgs) != 0 {
					b.Fatalf("a sound mesh gave %d messages, the first %s", len(msgs), msgs[0])
				}
			}
		})
	}
}
