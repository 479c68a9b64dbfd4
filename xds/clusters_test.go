package xds

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// TestEnvoyConnectionPool: what of a DestinationRule's connection pool only Envoy
// reads reaches an Envoy sidecar's cluster.
func TestEnvoyConnectionPool(t *testing.T) {
	snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: orders.shop.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 1h, tcpKeepalive: {probes: 3, time: 60s, interval: 10s}}
      http: {idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 100}
`)
	p := grpcProxy("shop", nil)
	p.Generator = ""
	sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	var c clusterv3.Cluster
	if err := sets[ClusterType].ByName["outbound|80||orders.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	ka := c.GetUpstreamConnectionOptions().GetTcpKeepalive()
	if ka.GetKeepaliveProbes().GetValue() != 3 || ka.GetKeepaliveTime().GetValue() != 60 || ka.GetKeepaliveInterval().GetValue() != 10 {
		t.Errorf("TCP keepalive %v", ka)
	}
	var opts httpv3.HttpProtocolOptions
	if err := c.TypedExtensionProtocolOptions[httpProtocolOptions].UnmarshalTo(&opts); err != nil {
		t.Fatal(err)
	}
	common := opts.GetCommonHttpProtocolOptions()
	if common.GetIdleTimeout().AsDuration() != 30*time.Second || common.GetMaxConnectionDuration().AsDuration() != time.Hour {
		t.Errorf("common HTTP options %v", common)
	}
	if h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 == nil || h2.GetMaxConcurrentStreams().GetValue() != 100 {
		t.Errorf("an HTTP port with h2UpgradePolicy UPGRADE: HTTP/2 upstream with 100 streams, got %v", opts.GetExplicitHttpConfig())
	}
}

// TestEnvoyLoadBalancer: Maglev and warmup reach an Envoy sidecar's clusters; a
// proxyless client keeps ring hash (grpc-go has no Maglev).
func TestEnvoyLoadBalancer(t *testing.T) {
	cluster := func(generator, lb string) *clusterv3.Cluster {
		snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: orders.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: `+lb+`}
`)
		p := grpcProxy("shop", nil)
		p.Generator = generator
		sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		if err := sets[ClusterType].ByName["outbound|80||orders.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	maglev := `{consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}`
	if c := cluster("", maglev); c.LbPolicy != clusterv3.Cluster_MAGLEV || c.GetMaglevLbConfig().GetTableSize().GetValue() != 65537 {
		t.Errorf("Envoy: %v %v, want Maglev with table size 65537", c.LbPolicy, c.GetLbConfig())
	}
	if c := cluster(GeneratorGRPC, maglev); c.LbPolicy != clusterv3.Cluster_RING_HASH {
		t.Errorf("proxyless: %v, want ring hash", c.LbPolicy)
	}
	c := cluster("", `{simple: LEAST_REQUEST, warmup: {duration: 60s, aggression: 2, minimumPercent: 10}}`)
	slow := c.GetLeastRequestLbConfig().GetSlowStartConfig()
	if slow.GetSlowStartWindow().AsDuration() != time.Minute || slow.GetAggression().GetDefaultValue() != 2 || slow.GetMinWeightPercent().GetValue() != 10 {
		t.Errorf("warmup: %v", slow)
	}
}
