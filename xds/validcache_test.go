package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestRebuiltResourcesAreNotValidatedAgain: a resource built again byte for byte is
// the resource of the last push; one that differs is validated (and left out when
// invalid); what two pushes in a row did not build is forgotten.
func TestRebuiltResourcesAreNotValidatedAgain(t *testing.T) {
	var v validCache
	cluster := func(name string, timeout time.Duration) named {
		return named{name: name, msg: &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(timeout)}}
	}
	first, err := validResource(&v, ClusterType, cluster("a", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	v.rotate()
	again, err := validResource(&v, ClusterType, cluster("a", time.Second))
	if err != nil || again != first {
		t.Fatalf("rebuilt unchanged: %p, %v; want the first build's %p", again, err, first)
	}
	changed, err := validResource(&v, ClusterType, cluster("a", 2*time.Second))
	if err != nil || changed == first || changed.Version == first.Version {
		t.Fatalf("rebuilt changed: %+v, %v", changed, err)
	}
	if _, err := validResource(&v, ClusterType, cluster("a", -time.Second)); err == nil || !strings.Contains(err.Error(), "ConnectTimeout") {
		t.Fatalf("an invalid cluster: %v; want Validate's error", err)
	}
	if r, err := validResource(&v, ClusterType, cluster("b", time.Second)); err != nil || r == first || r.Name != "b" {
		t.Fatalf("another name: %+v, %v", r, err)
	}
	v.rotate()
	v.rotate()
	if r, _ := validResource(&v, ClusterType, cluster("a", time.Second)); r == first {
		t.Fatal("a resource no push built for two pushes was kept")
	}
	if r, err := validResource(nil, ClusterType, cluster("a", time.Second)); err != nil || r.Version != first.Version {
		t.Fatalf("without a cache: %+v, %v", r, err)
	}
}
