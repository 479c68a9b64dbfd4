package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
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

// TestValidationLooksIntoTypedConfigs: a listener whose connection manager is
// invalid passes the listener's own Validate, not navarch's.
func TestValidationLooksIntoTypedConfigs(t *testing.T) {
	listener := func(hcm *hcmv3.HttpConnectionManager) named {
		return named{name: "l", msg: &listenerv3.Listener{Name: "l", Address: socketAddress("0.0.0.0", 80),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}}}}}}
	}
	valid := &hcmv3.HttpConnectionManager{StatPrefix: "x", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
		ConfigSource: adsConfigSource(), RouteConfigName: "80"}}}
	if _, err := validResource(nil, ListenerType, listener(valid)); err != nil {
		t.Fatalf("a valid listener: %v", err)
	}
	invalid := &hcmv3.HttpConnectionManager{RouteSpecifier: valid.RouteSpecifier} // no stat prefix
	if err := listener(invalid).msg.(*listenerv3.Listener).Validate(); err != nil {
		t.Fatalf("the listener's own Validate looked inside: %v", err)
	}
	if _, err := validResource(nil, ListenerType, listener(invalid)); err == nil || !strings.Contains(err.Error(), "StatPrefix") {
		t.Fatalf("an invalid connection manager: %v; want its Validate's error", err)
	}
	// Bytes that only look like a mark (a string a user wrote) are not one.
	lookalike := &hcmv3.HttpConnectionManager{StatPrefix: invalidAnyType, RouteSpecifier: valid.RouteSpecifier}
	if _, err := validResource(nil, ListenerType, listener(lookalike)); err != nil {
		t.Fatalf("a connection manager whose stat prefix names the mark: %v", err)
	}
}
