package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/navarch/navarch/internal/peers"
)

// envoyClusterParity adds to workloadsYAML's reviews (no traffic policy) a ratings
// service with an endpoint that has a proxy (Istio's tlsMode label) and one that has
// none, under a DestinationRule with a connection pool, outlier detection and a
// subset of its own load balancer; and details, whose DestinationRule sets
// ISTIO_MUTUAL.
const envoyClusterParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-proxied}
spec: {address: 127.0.0.7, labels: {app: ratings, version: v1, security.istio.io/tlsMode: istio}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-bare}
spec: {address: 127.0.0.8, labels: {app: ratings, version: v2}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {http2MaxRequests: 20, maxRetries: 5}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`

// TestSameEnvoyClustersAsIstiod gives istiod's discovery server and a navarch node
// the same services and DestinationRules and compares, cluster by cluster, what an
// Envoy sidecar gets from each: the outbound clusters there are, and of each its load
// balancer, connect timeout, circuit-breaker limits, outlier detection and how it
// talks TLS (a transport socket, Istio's automatic mTLS matches, or none). How the two
// express the rest (istiod's telemetry filters and metadata, its SDS cluster where
// navarch serves secrets over ADS) differs and is not compared.
func TestSameEnvoyClustersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + "---\n" + envoyClusterParity
	istiod := startIstiod(t, bin, "127.0.0.1:0", config)
	node := startDevNode(t)
	mustCLI(t, node.HTTP, "apply", "-f", writeFile(t, t.TempDir(), "config.yaml", config))

	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}, "ISTIO_VERSION": "1.24.1"}
	want := clusterSummaries(envoyConfig(t, istiod, id, md).clusters)
	var got map[string]string
	eventually(t, 30*time.Second, "navarch's clusters of every service", func() error {
		got = clusterSummaries(envoyConfig(t, node.XDS, id, md).clusters)
		if len(got) < len(want) {
			return fmt.Errorf("%d outbound clusters, istiod has %d", len(got), len(want))
		}
		return nil
	})
	names := map[string]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		if got[n] != want[n] {
			t.Errorf("cluster %s:\n\tistiod:  %s\n\tnavarch: %s", n, want[n], got[n])
		}
	}
	if !strings.Contains(want["outbound|9080||ratings.default.svc.cluster.local"], "tls=matches:tlsMode-istio,tlsMode-disabled") {
		t.Errorf("istiod did not give ratings automatic mTLS by endpoint, as this test expects: %s", want["outbound|9080||ratings.default.svc.cluster.local"])
	}
}

// clusterSummaries describes each outbound cluster by what TestSameEnvoyClustersAsIstiod
// compares.
func clusterSummaries(cs map[string]*clusterv3.Cluster) map[string]string {
	out := map[string]string{}
	for name, c := range cs {
		if !strings.HasPrefix(name, "outbound|") {
			continue
		}
		var th []string
		for _, t := range c.GetCircuitBreakers().GetThresholds() {
			th = append(th, fmt.Sprintf("conn=%d pending=%d req=%d retries=%d", t.GetMaxConnections().GetValue(),
				t.GetMaxPendingRequests().GetValue(), t.GetMaxRequests().GetValue(), t.GetMaxRetries().GetValue()))
		}
		tls := "none"
		switch {
		case len(c.TransportSocketMatches) > 0:
			var ms []string
			for _, m := range c.TransportSocketMatches {
				ms = append(ms, m.Name)
			}
			tls = "matches:" + strings.Join(ms, ",")
		case c.TransportSocket != nil:
			tls = "socket:" + c.TransportSocket.Name
		}
		od := "none"
		if o := c.OutlierDetection; o != nil {
			od = fmt.Sprintf("5xx=%d interval=%v ejection=%v max=%d%%", o.GetConsecutive_5Xx().GetValue(), o.GetInterval().AsDuration(),
				o.GetBaseEjectionTime().AsDuration(), o.GetMaxEjectionPercent().GetValue())
		}
		out[name] = fmt.Sprintf("lb=%s timeout=%v breakers=%v outlier=%s tls=%s", c.LbPolicy, c.ConnectTimeout.AsDuration(), th, od, tls)
	}
	return out
}
