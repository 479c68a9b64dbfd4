package bench

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestFactsNameWhatAResourceRefersTo(t *testing.T) {
	route, _ := anypb.New(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{
		{Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "a"}}}},
		{Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a"}, {Name: "b"}}}}}}},
	}}}})
	cluster, _ := anypb.New(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	cla, _ := anypb.New(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{LoadBalancingWeight: wrapperspb.UInt32(7)}, {LoadBalancingWeight: wrapperspb.UInt32(42)}}}}})
	var cache factCache
	routeFacts, err := cache.get(route)
	if err != nil || len(routeFacts.clusters) != 2 || routeFacts.clusters[0] != "a" || routeFacts.clusters[1] != "b" {
		t.Fatalf("route facts %+v %v, want clusters a and b once each", routeFacts, err)
	}
	if f, _ := cache.get(cluster); len(f.endpoints) != 1 || f.endpoints[0] != "c" {
		t.Fatalf("EDS cluster facts %+v, want its own name as endpoint assignment", f)
	}
	if f, _ := cache.get(cla); f.maxWeight != 42 {
		t.Fatalf("endpoint facts %+v, want max weight 42", f)
	}
	if again, _ := cache.get(route); again != routeFacts {
		t.Fatal("a resource seen again must be parsed once: the cache returned other facts")
	}
}

func TestPercentiles(t *testing.T) {
	var l Latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	if l.Percentile(50) != 50*time.Millisecond || l.Percentile(99) != 99*time.Millisecond || l.Max() != 100*time.Millisecond {
		t.Fatalf("p50 %s p99 %s max %s", l.Percentile(50), l.Percentile(99), l.Max())
	}
	if (Latencies{}).Percentile(99) != 0 {
		t.Fatal("empty set")
	}
}

// TestMeasureChurnMatchesChangesToArrivals: a change counts as seen by a proxy at the
// first arrival whose largest weight reaches the change's sequence number.
func TestMeasureChurnMatchesChangesToArrivals(t *testing.T) {
	cfg := &Config{Services: 1, Namespace: "bench", Rate: 10, Proxies: 1}
	p := newProxy(ProxyConfig{History: true}, &factCache{})
	t0 := time.Now()
	name := cluster("bench", 0)
	p.history = []mark{{name: name, at: t0.Add(30 * time.Millisecond), weight: 3}, {name: name, at: t0.Add(80 * time.Millisecond), weight: 5}}
	f := &Fleet{proxies: []*Proxy{p}}
	r := measureChurn(cfg, f, []change{{seq: 2, at: t0}, {seq: 5, at: t0.Add(50 * time.Millisecond)}, {seq: 9, at: t0.Add(60 * time.Millisecond)}})
	if r.Observed != 2 || r.Dropped != 1 {
		t.Fatalf("observed %d dropped %d, want 2 and 1", r.Observed, r.Dropped)
	}
	if r.Max != 30 {
		t.Fatalf("max %.0f ms, want 30 (seq 2 seen at +30 ms; seq 5 at +80 ms, 30 after it was sent)", r.Max)
	}
}

func TestMedianRunOfRepeatedConvergence(t *testing.T) {
	var results []*ConvergenceResult
	for _, p99 := range []float64{300, 500, 100, 400} {
		results = append(results, &ConvergenceResult{P50: p99 / 2, P99: p99, CPUSeconds: p99 / 1000})
	}
	got := medianRun(results)
	if got.P99 != 300 || got.CPUSeconds != 0.3 || len(got.Runs) != 4 {
		t.Fatalf("median run p99 %v, cpu %v, %d runs; want the run of p99 300 and all four", got.P99, got.CPUSeconds, len(got.Runs))
	}
	for i, want := range []float64{300, 500, 100, 400} {
		if got.Runs[i].P99 != want || got.Runs[i].P50 != want/2 {
			t.Errorf("run %d: %+v, want p99 %v in the order run", i, got.Runs[i], want)
		}
	}
	if results[0].Runs != nil {
		t.Error("medianRun changed a result it was given")
	}
	if one := medianRun(results[:1]); one != results[0] || one.Runs != nil {
		t.Errorf("one run: %+v", one)
	}
}
