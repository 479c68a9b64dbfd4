package xds

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/registry"
)

// ordersRule begins a DestinationRule for scopeServices' orders service; a test adds
// its trafficPolicy.
const ordersRule = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: orders.shop.svc.cluster.local`

// TestEnvoyConnectionPool: what of a DestinationRule's connection pool only Envoy
// reads reaches an Envoy sidecar's cluster.
func TestEnvoyConnectionPool(t *testing.T) {
	snap := snapshotOf(t, scopeServices, ordersRule+`
  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 1h, tcpKeepalive: {probes: 3, time: 60s, interval: 10s}}
      http: {idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 100, http2KeepAlive: {interval: 20s, timeout: 5s}}
`)
	sets := envoySidecar(t, snap, "shop", nil)
	var c clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "outbound|80||orders.shop.svc.cluster.local", &c)
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
	if h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 == nil || h2.GetMaxConcurrentStreams().GetValue() != 100 ||
		h2.GetConnectionKeepalive().GetInterval().AsDuration() != 20*time.Second {
		t.Errorf("an HTTP port with h2UpgradePolicy UPGRADE: HTTP/2 upstream with 100 streams, got %v", opts.GetExplicitHttpConfig())
	}
}

// TestEnvoyLoadBalancer: Maglev and warmup reach an Envoy sidecar's clusters; a
// proxyless client keeps ring hash (grpc-go has no Maglev).
func TestEnvoyLoadBalancer(t *testing.T) {
	cluster := func(generator, lb string) *clusterv3.Cluster {
		snap := snapshotOf(t, scopeServices, ordersRule+`
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
	// Istio's default for Envoy is least request, grpc-go's round robin; RANDOM is
	// Envoy's own, round robin for grpc-go; PASSTHROUGH an original destination
	// cluster for Envoy.
	for _, tc := range []struct {
		lb             string
		envoy, grpcGo  clusterv3.Cluster_LbPolicy
		originalForEnv bool
	}{
		{`{}`, clusterv3.Cluster_LEAST_REQUEST, clusterv3.Cluster_ROUND_ROBIN, false},
		{`{simple: ROUND_ROBIN}`, clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_ROUND_ROBIN, false},
		{`{simple: RANDOM}`, clusterv3.Cluster_RANDOM, clusterv3.Cluster_ROUND_ROBIN, false},
		{`{simple: PASSTHROUGH}`, clusterv3.Cluster_CLUSTER_PROVIDED, clusterv3.Cluster_ROUND_ROBIN, true},
	} {
		e, g := cluster("", tc.lb), cluster(GeneratorGRPC, tc.lb)
		if e.LbPolicy != tc.envoy || g.LbPolicy != tc.grpcGo {
			t.Errorf("%s: Envoy %v, grpc-go %v; want %v, %v", tc.lb, e.LbPolicy, g.LbPolicy, tc.envoy, tc.grpcGo)
		}
		if original := e.GetType() == clusterv3.Cluster_ORIGINAL_DST; original != tc.originalForEnv || (original && e.EdsClusterConfig != nil) {
			t.Errorf("%s: Envoy cluster of type %v (EDS config %v)", tc.lb, e.GetType(), e.EdsClusterConfig)
		}
	}
}

// TestIstioFieldDetails checks fields that map one to one onto Envoy's: retries
// (Istio's default of 503 and other hosts, or as the route says), a regex rewrite,
// the deprecated mirrorPercent and several mirrors, local-origin outlier detection, the deprecated
// consecutiveErrors, a CRL for originated TLS, and useClientProtocol.
func TestIstioFieldDetails(t *testing.T) {
	snap := snapshotOf(t, scopeServices, ordersRule+`
  trafficPolicy:
    outlierDetection: {consecutiveErrors: 4, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}
    connectionPool: {http: {useClientProtocol: true}}
    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem, caCrl: /etc/ca.crl}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /v1}}]
    rewrite: {uriRegexRewrite: {match: "^/v1/(.*)", rewrite: "/\\1"}}
    mirror: {host: orders.shop.svc.cluster.local}
    mirrorPercent: 5
    retries: {attempts: 3, retryOn: "5xx,409", retryIgnorePreviousHosts: false, retryRemoteLocalities: true}
    route: [{destination: {host: orders.shop.svc.cluster.local}}]
  - route: [{destination: {host: orders.shop.svc.cluster.local}}]
    mirrors: [{destination: {host: billing.other.svc.cluster.local}, percentage: {value: 50}}, {destination: {host: orders.shop.svc.cluster.local}}]
`)
	sets := envoySidecar(t, snap, "shop", nil)
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "80", &rc)
	var routes []*routev3.Route
	for _, vh := range rc.VirtualHosts {
		if vh.Domains[0] == "orders.shop.svc.cluster.local" {
			routes = vh.Routes
		}
	}
	if len(routes) != 2 {
		t.Fatalf("routes %v", routes)
	}
	custom, dflt := routes[0].GetRoute(), routes[1].GetRoute()
	if dflt.Timeout == nil || dflt.Timeout.AsDuration() != 0 {
		t.Errorf("a route without a timeout: %v, want 0s (none; Envoy's default would be 15 s)", dflt.Timeout)
	}
	if m := dflt.GetMaxStreamDuration(); m.GetGrpcTimeoutHeaderMax() == nil || m.GetGrpcTimeoutHeaderMax().AsDuration() != 0 {
		t.Errorf("a route without a timeout: %v, want gRPC clients' deadlines honoured", m)
	}
	if rp := dflt.GetRetryPolicy(); rp.GetNumRetries().GetValue() != 2 || len(rp.GetRetriableStatusCodes()) != 0 || rp.GetRetryOn() != defaultRetryOn || len(rp.GetRetryHostPredicate()) != 1 {
		t.Errorf("Istio's default retries: %v", rp)
	}
	rp := custom.GetRetryPolicy()
	if rp.GetRetryOn() != "5xx,retriable-status-codes" || !slices.Equal(rp.GetRetriableStatusCodes(), []uint32{409}) || len(rp.GetRetryHostPredicate()) != 0 || rp.GetRetryPriority() == nil {
		t.Errorf("the route's retries: %v", rp)
	}
	if rw := custom.GetRegexRewrite(); rw.GetPattern().GetRegex() != "^/v1/(.*)" || rw.GetSubstitution() != `/\1` {
		t.Errorf("regex rewrite %v", rw)
	}
	if m := custom.GetRequestMirrorPolicies(); len(m) != 1 || m[0].GetRuntimeFraction().GetDefaultValue().GetNumerator() == 0 {
		t.Errorf("mirror %v", m)
	}
	// A mirror that names no share takes every request, written as istiod does.
	if m := dflt.GetRequestMirrorPolicies(); len(m) != 2 || m[0].GetCluster() != "outbound|80||billing.other.svc.cluster.local" ||
		!proto.Equal(m[1].GetRuntimeFraction().GetDefaultValue(), &typev3.FractionalPercent{Numerator: 100}) {
		t.Errorf("mirrors %v", m)
	}
	var c clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "outbound|80||orders.shop.svc.cluster.local", &c)
	od := c.GetOutlierDetection()
	if od.GetConsecutiveGatewayFailure().GetValue() != 4 || !od.GetSplitExternalLocalOriginErrors() || od.GetConsecutiveLocalOriginFailure().GetValue() != 2 {
		t.Errorf("outlier detection %v", od)
	}
	var tlsCtx tlsv3.UpstreamTlsContext
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
		t.Fatal(err)
	}
	// istio-proxy takes the CA file from istio-agent by SDS, the CRL from the file.
	combined := tlsCtx.GetCommonTlsContext().GetCombinedValidationContext()
	if crl := combined.GetDefaultValidationContext().GetCrl().GetFilename(); crl != "/etc/ca.crl" {
		t.Errorf("CRL %q", crl)
	}
	if ca := combined.GetValidationContextSdsSecretConfig().GetName(); ca != "file-root:/etc/ca.pem" {
		t.Errorf("CA by SDS %q, want file-root:/etc/ca.pem", ca)
	}
	var opts httpv3.HttpProtocolOptions
	if err := c.TypedExtensionProtocolOptions[httpProtocolOptions].UnmarshalTo(&opts); err != nil {
		t.Fatal(err)
	}
	if opts.GetUseDownstreamProtocolConfig() == nil {
		t.Errorf("useClientProtocol: %v", &opts)
	}
}

// TestProxyProtocolAndRetryBudget: an Envoy cluster opens connections with a PROXY
// protocol header around its TLS, and bounds retries by a budget.
func TestProxyProtocolAndRetryBudget(t *testing.T) {
	snap := snapshotOf(t, scopeServices, ordersRule+`
  trafficPolicy:
    proxyProtocol: {version: V2}
    retryBudget: {percent: 25, minRetryConcurrency: 3, budgetInterval: 5s}
    tls: {mode: SIMPLE}
`)
	sets := envoySidecar(t, snap, "shop", nil)
	var c clusterv3.Cluster
	resourceOf(t, sets, ClusterType, "outbound|80||orders.shop.svc.cluster.local", &c)
	var pp proxyprotocolv3.ProxyProtocolUpstreamTransport
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&pp); err != nil {
		t.Fatalf("transport socket %v: %v", c.GetTransportSocket(), err)
	}
	if pp.GetConfig().GetVersion() != corev3.ProxyProtocolConfig_V2 || pp.GetTransportSocket().GetName() != tlsTransportSocket {
		t.Errorf("PROXY protocol %v, want version 2 around TLS", &pp)
	}
	rb := c.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget()
	if rb.GetBudgetPercent().GetValue() != 25 || rb.GetMinRetryConcurrency().GetValue() != 3 || rb.GetBudgetInterval().AsDuration() != 5*time.Second {
		t.Errorf("retry budget %v", rb)
	}
}

// TestHashCookieAttributes: the attributes of a consistent-hash cookie reach the
// route's hash policy, for the cookie Envoy sets.
func TestHashCookieAttributes(t *testing.T) {
	snap := snapshotOf(t, scopeServices, ordersRule+`
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 60s, attributes: [{name: SameSite, value: Strict}]}}}}
`)
	sets := envoySidecar(t, snap, "shop", nil)
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "80", &rc)
	for _, vh := range rc.VirtualHosts {
		if vh.Domains[0] != "orders.shop.svc.cluster.local" {
			continue
		}
		c := vh.Routes[0].GetRoute().GetHashPolicy()[0].GetCookie()
		if c.GetName() != "session" || len(c.GetAttributes()) != 1 || c.GetAttributes()[0].GetValue() != "Strict" {
			t.Errorf("cookie hash policy %v", c)
		}
		return
	}
	t.Fatal("no virtual host for orders")
}

// TestDNSClustersUseTheEndpointPort: a DNS service's clusters name each endpoint's
// port for the service port, and the port's target port when the service lists no
// endpoints, for Envoy (STRICT_DNS) and grpc-go (LOGICAL_DNS) alike.
func TestDNSClustersUseTheEndpointPort(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mapped, namespace: shop}
spec:
  hosts: [mapped.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: backend.example.com, ports: {http: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: targeted, namespace: shop}
spec:
  hosts: [targeted.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8443}]
  resolution: DNS
`)
	want := map[string]uint32{"outbound|80||mapped.example.com": 8080, "outbound|80||targeted.example.com": 8443}
	grpcSets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for name, port := range want {
		for who, sets := range map[string]map[string]*TypeSet{"envoy": envoySidecar(t, snap, "shop", nil), "grpc": grpcSets} {
			var c clusterv3.Cluster
			resourceOf(t, sets, ClusterType, name, &c)
			got := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
			if got != port {
				t.Errorf("%s %s: endpoint port %d, want %d", who, name, got, port)
			}
		}
	}
}

// TestUnixSocketEndpoints: a STATIC ServiceEntry's unix domain socket endpoint is
// an Envoy's pipe endpoint, beside its IP endpoints; grpc-go, whose EDS takes IPs
// only, gets the IP endpoints alone.
func TestUnixSocketEndpoints(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local, namespace: shop}
spec:
  hosts: [local.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 8001, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: unix:///var/run/example/socket}, {address: 10.0.0.7}]
`)
	grpcSets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for who, tc := range map[string]struct {
		sets map[string]*TypeSet
		want []string
	}{
		"envoy": {envoySidecar(t, snap, "shop", nil), []string{"pipe /var/run/example/socket", "10.0.0.7:8001"}},
		"grpc":  {grpcSets, []string{"10.0.0.7:8001"}},
	} {
		var cla endpointv3.ClusterLoadAssignment
		resourceOf(t, tc.sets, EndpointType, "outbound|8001||local.example.com", &cla)
		var got []string
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				a := e.GetEndpoint().GetAddress()
				if p := a.GetPipe(); p != nil {
					got = append(got, "pipe "+p.GetPath())
				} else {
					got = append(got, fmt.Sprintf("%s:%d", a.GetSocketAddress().GetAddress(), a.GetSocketAddress().GetPortValue()))
				}
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: endpoints %q, want %q", who, got, tc.want)
		}
	}
}

// TestEnvoyHealthAndLocality: an Envoy sidecar's clusters have no panic mode, so
// that the unhealthy endpoints navarch lists are never routed to, unless outlier
// detection's minHealthPercent sets a threshold, and then those endpoints are left
// out; locality weights and orders are taken (LocalityWeightedLbConfig) where the
// locality setting has them.
func TestEnvoyHealthAndLocality(t *testing.T) {
	const services = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders, namespace: shop%s}
spec:
  hosts: [orders.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: orders}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: up, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: orders}, locality: us-east/a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: down, namespace: shop, annotations: {navarch.io/health: unhealthy}}
spec: {address: 10.0.0.2, labels: {app: orders}, locality: us-east/b}
`
	const name = "outbound|80||orders.shop.svc.cluster.local"
	for _, tt := range []struct {
		name, annotations, policy string
		threshold                 float64
		weighted                  bool
		endpoints                 int
	}{
		{"no DestinationRule", "", "", 0, false, 2},
		{"outlier detection", "", `{outlierDetection: {consecutive5xxErrors: 3}}`, 0, false, 2},
		{"minHealthPercent", "", `{outlierDetection: {consecutive5xxErrors: 3, minHealthPercent: 40}}`, 40, false, 1},
		{"failover with outlier detection", "", `{outlierDetection: {consecutive5xxErrors: 3}, loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu}]}}}`, 0, true, 2},
		{"failover without outlier detection", "", `{loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu}]}}}`, 0, false, 2},
		{"distribute", "", `{loadBalancer: {localityLbSetting: {distribute: [{from: "us-east/*", to: {"us-east/*": 100}}]}}}`, 0, true, 2},
		{"traffic distribution", ", annotations: {networking.istio.io/traffic-distribution: PreferClose}", "", 0, true, 2},
		{"traffic distribution with minHealthPercent", ", annotations: {networking.istio.io/traffic-distribution: PreferClose}",
			`{outlierDetection: {consecutive5xxErrors: 3, minHealthPercent: 40}}`, 0, true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config := []string{fmt.Sprintf(services, tt.annotations)}
			if tt.policy != "" {
				config = append(config, strings.Replace(ordersRule, "name: orders", "name: orders-rule", 1)+"\n  trafficPolicy: "+tt.policy+"\n")
			}
			sets := envoySidecar(t, snapshotOf(t, config...), "shop", nil)
			var c clusterv3.Cluster
			resourceOf(t, sets, ClusterType, name, &c)
			lb := c.GetCommonLbConfig()
			if th := lb.GetHealthyPanicThreshold(); th == nil || th.Value != tt.threshold {
				t.Errorf("healthy panic threshold %v, want %v", th, tt.threshold)
			}
			if weighted := lb.GetLocalityWeightedLbConfig() != nil; weighted != tt.weighted {
				t.Errorf("locality weighted load balancing %v, want %v", weighted, tt.weighted)
			}
			var cla endpointv3.ClusterLoadAssignment
			resourceOf(t, sets, EndpointType, name, &cla)
			n := 0
			for _, g := range cla.Endpoints {
				n += len(g.LbEndpoints)
			}
			if n != tt.endpoints {
				t.Errorf("%d endpoints listed, want %d: %v", n, tt.endpoints, cla.Endpoints)
			}
		})
	}
}

// TestEnvoyCircuitBreakerDefaults: an Envoy cluster starts without limits, as
// Istio's (Envoy's own defaults would cap a busy service at 1,024 requests and 3
// retries at once), and a connection pool sets the limits it names; proxyless
// clients get only what the pool names, as from istiod.
func TestEnvoyCircuitBreakerDefaults(t *testing.T) {
	thresholds := func(generator, rule string) *clusterv3.CircuitBreakers_Thresholds {
		snap := snapshotOf(t, scopeServices, ordersRule+rule)
		p := grpcProxy("shop", nil)
		p.Generator = generator
		sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, "outbound|80||orders.shop.svc.cluster.local", &c)
		if th := c.GetCircuitBreakers().GetThresholds(); len(th) > 0 {
			return th[0]
		}
		return nil
	}
	const unlimited = 1<<32 - 1
	if th := thresholds("", "\n"); th.GetMaxConnections().GetValue() != unlimited || th.GetMaxRequests().GetValue() != unlimited ||
		th.GetMaxPendingRequests().GetValue() != unlimited || th.GetMaxRetries().GetValue() != unlimited {
		t.Errorf("Envoy, no pool: %v", th)
	}
	pool := "\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}\n"
	if th := thresholds("", pool); th.GetMaxConnections().GetValue() != 10 || th.GetMaxRequests().GetValue() != unlimited {
		t.Errorf("Envoy, a pool of 10 connections: %v", th)
	}
	if th := thresholds(GeneratorGRPC, pool); th.GetMaxConnections().GetValue() != 10 || th.MaxRequests != nil {
		t.Errorf("proxyless, a pool of 10 connections: %v", th)
	}
	if th := thresholds(GeneratorGRPC, "\n"); th != nil {
		t.Errorf("proxyless, no pool: %v", th)
	}
}

// TestEnvoyDNSClusters: an Envoy resolves a DNS cluster as istiod has it: names of
// the proxy's IP versions only, TTLs honoured, the mesh's refresh rate.
func TestEnvoyDNSClusters(t *testing.T) {
	const se = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`
	for _, tc := range []struct {
		ip, ips string
		mesh    string
		family  clusterv3.Cluster_DnsLookupFamily
		refresh time.Duration
	}{
		{"10.0.0.1", "", "", clusterv3.Cluster_V4_ONLY, time.Minute},
		{"fd00::1", "", "", clusterv3.Cluster_V6_ONLY, time.Minute},
		{"10.0.0.1", "10.0.0.1,fd00::1", "", clusterv3.Cluster_V4_ONLY, time.Minute}, // dual stack: as istiod under ISTIO_DUAL_STACK off
		{"10.0.0.1", "", "dnsRefreshRate: 5s", clusterv3.Cluster_V4_ONLY, 5 * time.Second},
	} {
		docs := []string{scopeServices, se}
		if tc.mesh != "" {
			docs = append(docs, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: '"+tc.mesh+"'\n")
		}
		p := grpcProxy("shop", nil)
		p.Generator, p.IP = "", tc.ip
		p.IPFamilies, p.UnicastIP = ipFamilies(tc.ip, tc.ips)
		var c clusterv3.Cluster
		resourceOf(t, mustBuild(t, sidecarProfile(), snapshotOf(t, docs...), p), ClusterType, "outbound|443||api.example.com", &c)
		//lint:ignore SA1019 the fields navarch sets, as istiod
		ttl, refresh := c.RespectDnsTtl, c.DnsRefreshRate.AsDuration()
		if c.DnsLookupFamily != tc.family || !ttl || refresh != tc.refresh {
			t.Errorf("%s %s %q: family %v, TTL %v, refresh %v; want %v, true, %v", tc.ip, tc.ips, tc.mesh,
				c.DnsLookupFamily, ttl, refresh, tc.family, tc.refresh)
		}
	}
}

// mustBuild builds profile's resources for p from snap; a build error fails the test.
func mustBuild(t *testing.T, profile Profile, snap *registry.Snapshot, p *Proxy) map[string]*TypeSet {
	t.Helper()
	sets, err := profile.build(newContext(snap, p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	return sets
}
