package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	stats "istio.io/api/envoy/extensions/stats"
)

// metricsWorkload is web (an HTTP and a TCP port) in shop, whose sidecar the tests
// here build, and api, a service outside the mesh it calls over TLS of its own.
const metricsWorkload = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 5432, name: tcp-db, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api.example.com
  trafficPolicy: {tls: {mode: SIMPLE}}
`

// webSidecar builds web's sidecar and returns the HTTP filters of its inbound
// connection manager of port 8080 and its outbound one of 0.0.0.0_8080.
func webSidecar(t *testing.T, docs ...string) (inbound, outbound []*hcmv3.HttpFilter, sets map[string]*TypeSet) {
	t.Helper()
	p := grpcProxy("shop", map[string]string{"app": "web"})
	p.Generator, p.IstioProxy = "", true
	sets, err := sidecarProfile().build(newContext(snapshotOf(t, append([]string{metricsWorkload}, docs...)...), p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	hcmOf := func(listener string, port uint32) []*hcmv3.HttpFilter {
		var l listenerv3.Listener
		if err := sets[ListenerType].ByName[listener].Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		for _, c := range l.FilterChains {
			if p := c.GetFilterChainMatch().GetDestinationPort(); p != nil && p.Value != port {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if last := c.Filters[len(c.Filters)-1]; last.GetTypedConfig().UnmarshalTo(&hcm) == nil {
				return hcm.HttpFilters
			}
		}
		t.Fatalf("%s: no HTTP connection manager for port %d", listener, port)
		return nil
	}
	return hcmOf(virtualInbound, 8080), hcmOf("0.0.0.0_8080", 8080), sets
}

// statsOf returns the istio.stats configuration among filters, nil if none.
func statsOf(t *testing.T, filters []*hcmv3.HttpFilter) *stats.PluginConfig {
	t.Helper()
	for _, f := range filters {
		if f.Name == statsFilterName {
			var c stats.PluginConfig
			if err := f.GetTypedConfig().UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			return &c
		}
	}
	return nil
}

func TestIstioFiltersInIstiodsOrder(t *testing.T) {
	in, out, _ := webSidecar(t)
	want := "istio.metadata_exchange,envoy.filters.http.grpc_stats,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"
	if got := names(in); got != want {
		t.Errorf("inbound HTTP filters %s, want %s", got, want)
	}
	want = "istio.metadata_exchange,envoy.filters.http.grpc_stats,istio.alpn,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"
	if got := names(out); got != want {
		t.Errorf("outbound HTTP filters %s, want %s (no metrics without a provider)", got, want)
	}
}

func TestIstioStatsFollowTelemetry(t *testing.T) {
	prometheus := `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: 'defaultProviders: {metrics: [prometheus]}'
`
	in, out, _ := webSidecar(t, prometheus)
	server, client := statsOf(t, in), statsOf(t, out)
	if server == nil || client == nil {
		t.Fatalf("the mesh's default provider counts metrics: inbound %v, outbound %v", server, client)
	}
	if !server.DisableHostHeaderFallback || client.DisableHostHeaderFallback {
		t.Errorf("a server names the destination by itself, a client by the Host header too: inbound %v, outbound %v",
			server.DisableHostHeaderFallback, client.DisableHostHeaderFallback)
	}

	// The namespace stops counting on the server side, and renames a tag of one
	// metric on the client side.
	in, out, _ = webSidecar(t, prometheus, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: shop}
spec:
  metrics:
  - reportingInterval: 20s
    overrides:
    - match: {mode: SERVER}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides: {destination_port: {operation: REMOVE}, team: {value: "'web'"}}
`)
	if s := statsOf(t, in); s != nil {
		t.Errorf("inbound counts metrics the Telemetry turned off: %v", s)
	}
	client = statsOf(t, out)
	if client == nil || len(client.Metrics) != 1 {
		t.Fatalf("outbound stats %v, want one metric overridden", client)
	}
	m := client.Metrics[0]
	if m.Name != "requests_total" || strings.Join(m.TagsToRemove, ",") != "destination_port" || m.Dimensions["team"] != "'web'" || m.Drop {
		t.Errorf("outbound metric override %v", m)
	}
	if client.TcpReportingDuration.AsDuration().Seconds() != 20 {
		t.Errorf("TCP reporting every %v, want 20s", client.TcpReportingDuration.AsDuration())
	}

	// A provider that is not Prometheus counts nothing here.
	_, out, _ = webSidecar(t, strings.Replace(prometheus, "[prometheus]", "[stackdriver]", 1))
	if s := statsOf(t, out); s != nil {
		t.Errorf("stackdriver got istio.stats: %v", s)
	}
}

func TestOwnTLSOptsOutOfIstioALPN(t *testing.T) {
	_, _, sets := webSidecar(t)
	var c clusterv3.Cluster
	if err := sets[ClusterType].ByName["outbound|443||api.example.com"].Body.UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	if v := c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["alpn_override"].GetStringValue(); v != "false" {
		t.Errorf("a cluster originating its DestinationRule's TLS has istio.alpn_override %q, want \"false\"", v)
	}
	if err := sets[ClusterType].ByName["outbound|8080||web.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["alpn_override"]; ok {
		t.Errorf("a cluster of the mesh opts out of Istio's ALPN: %v", c.Metadata)
	}
}

func TestTCPChainsCarryIstioTelemetry(t *testing.T) {
	_, _, sets := webSidecar(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: 'defaultProviders: {metrics: [prometheus]}'
`)
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, c := range l.FilterChains {
		if c.GetFilterChainMatch().GetDestinationPort().GetValue() != 5432 {
			continue
		}
		seen++
		if got := names(c.Filters); got != "istio.metadata_exchange,istio.stats,envoy.filters.network.tcp_proxy" {
			t.Errorf("inbound TCP chain %s: filters %s", c.Name, got)
		}
	}
	if seen == 0 {
		t.Fatal("no inbound chain of port 5432")
	}
	if err := sets[ListenerType].ByName[virtualOutbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	for _, c := range l.FilterChains {
		if got := names(c.Filters); got != "istio.stats,envoy.filters.network.tcp_proxy" {
			t.Errorf("outbound chain %s: filters %s, want Istio's stats (client side) and no metadata exchange", c.Name, got)
		}
	}
	var c clusterv3.Cluster
	if err := sets[ClusterType].ByName["outbound|5432||web.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	if got := names(c.Filters); got != mxFilterName {
		t.Errorf("outbound cluster filters %s, want metadata exchange", got)
	}
}

func TestPlainEnvoyGetsNoIstioProxyFilters(t *testing.T) {
	p := grpcProxy("shop", map[string]string{"app": "web"})
	p.Generator = "" // no ISTIO_VERSION: not istio-proxy
	sets, err := sidecarProfile().build(newContext(snapshotOf(t, metricsWorkload, `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: 'defaultProviders: {metrics: [prometheus]}'
`), p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	out := string(dump(t, sets))
	for _, name := range []string{mxFilterName, statsFilterName, alpnFilterName, "io.istio", "metadataexchange", "workload:", "services:"} {
		if strings.Contains(out, name) {
			t.Errorf("a plain Envoy gets istio-proxy's %s, which it would refuse or ignore", name)
		}
	}
	if !strings.Contains(out, grpcStatsFilter) {
		t.Errorf("a plain Envoy lacks gRPC statistics, which every Envoy gets")
	}

	// istio-proxy gets them all.
	p.IstioProxy = true
	if sets, err = sidecarProfile().build(newContext(snapshotOf(t, metricsWorkload), p, "cluster.local", "istio-system")); err != nil {
		t.Fatal(err)
	}
	out = string(dump(t, sets))
	for _, name := range []string{mxFilterName, alpnFilterName, "io.istio", "metadataexchange", "workload: api;shop;api;;Kubernetes", "services:"} {
		if !strings.Contains(out, name) {
			t.Errorf("istio-proxy lacks %s", name)
		}
	}
}
