package xds

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// sniffConfig has a port of no given protocol on a service with an address (web,
// which has a TCP port too),
// on one without (cache), and an HTTP port (api) that a TCP service without an
// address (legacy) shares; a VirtualService sends web's HTTP to a subset.
const sniffConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  addresses: [10.9.0.8]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: web}, {number: 3306, name: db, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 10.0.0.9, labels: {app: web, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 7000, name: cache}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.7}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.10}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: shop}
spec:
  hosts: [legacy.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.11}]
`

// TestSidecarDetectsHTTPOnPortsOfNoProtocol: a port whose protocol is not given gets
// a listener that sends detected HTTP/1.1 and h2c through an HTTP connection manager
// (the service's own route configuration at its address, the port's on 0.0.0.0),
// with the VirtualService's routes, and the rest to the service as TCP; an HTTP
// port's wildcard listener detects too, leaving a TCP service of the port its TCP.
func TestSidecarDetectsHTTPOnPortsOfNoProtocol(t *testing.T) {
	sets := envoySidecar(t, snapshotOf(t, sniffConfig), "shop", map[string]string{"app": "client"})
	for name, want := range map[string]string{
		"10.9.0.8_8080": "raw_buffer [http/1.1 h2c] -> RDS web.shop.svc.cluster.local:8080; default -> outbound|8080||web.shop.svc.cluster.local; inspectors [http_inspector]",
		"0.0.0.0_7000":  "raw_buffer [http/1.1 h2c] -> RDS 7000; default -> outbound|7000||cache.shop.svc.cluster.local; inspectors [http_inspector]",
		"0.0.0.0_9080":  "raw_buffer [http/1.1 h2c] -> RDS 9080; default -> outbound|9080||legacy.shop.svc.cluster.local; inspectors [http_inspector]",
	} {
		var l listenerv3.Listener
		resourceOf(t, sets, ListenerType, name, &l)
		if got := describeOutbound(t, &l); got != want {
			t.Errorf("%s:\n\tgot  %s\n\twant %s", name, got, want)
		}
	}

	var own routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "web.shop.svc.cluster.local:8080", &own)
	if len(own.VirtualHosts) != 1 || !slices.Equal(own.VirtualHosts[0].Domains, []string{"*"}) {
		t.Fatalf("web's own route configuration: %v, want one virtual host for any host", own.VirtualHosts)
	}
	if c := own.VirtualHosts[0].Routes[0].GetRoute().GetCluster(); c != "outbound|8080|v2|web.shop.svc.cluster.local" {
		t.Errorf("web's detected HTTP goes to %q, want the VirtualService's subset", c)
	}
	var port routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "7000", &port)
	if !slices.ContainsFunc(port.VirtualHosts, func(vh *routev3.VirtualHost) bool {
		return slices.Contains(vh.Domains, "cache.shop.svc.cluster.local")
	}) {
		t.Errorf("route configuration 7000 has no virtual host for cache: %v", port.VirtualHosts)
	}

	// Upstream in whichever HTTP version the client spoke; a gateway's cluster
	// speaks HTTP/1.1 (Istio's gateways detect nothing).
	downstream := func(sets map[string]*TypeSet) bool {
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, "outbound|8080||web.shop.svc.cluster.local", &c)
		var o httpv3.HttpProtocolOptions
		if a := c.TypedExtensionProtocolOptions[httpProtocolOptions]; a == nil || a.UnmarshalTo(&o) != nil {
			return false
		}
		return o.GetUseDownstreamProtocolConfig() != nil
	}
	if !downstream(sets) {
		t.Error("a sidecar's cluster of a port of no protocol does not use the client's protocol")
	}
	gw := &Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop"}
	gwSets, err := gatewayProfile().build(newContext(snapshotOf(t, sniffConfig), gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	if downstream(gwSets) {
		t.Error("a gateway's cluster of a port of no protocol uses the client's protocol")
	}
}

// describeOutbound summarizes an outbound listener: each chain's application
// protocols and where it goes (RDS or TCP cluster), its default chain's cluster, and
// its listener filters.
func describeOutbound(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	var parts []string
	for _, fc := range l.FilterChains {
		parts = append(parts, fmt.Sprintf("%s %v -> %s", fc.GetFilterChainMatch().GetTransportProtocol(), fc.GetFilterChainMatch().GetApplicationProtocols(), chainTarget(t, fc)))
	}
	if d := l.DefaultFilterChain; d != nil {
		parts = append(parts, "default -> "+chainTarget(t, d))
	}
	var filters []string
	for _, f := range l.ListenerFilters {
		filters = append(filters, strings.TrimPrefix(f.Name, "envoy.filters.listener."))
	}
	return strings.Join(parts, "; ") + fmt.Sprintf("; inspectors %v", filters)
}

// chainTarget is where a filter chain's last filter sends what it takes: "RDS
// <name>" for a connection manager, the cluster of a TCP proxy.
func chainTarget(t *testing.T, fc *listenerv3.FilterChain) string {
	t.Helper()
	f := fc.Filters[len(fc.Filters)-1]
	var hcm hcmv3.HttpConnectionManager
	if f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
		if rds := hcm.GetRds().GetRouteConfigName(); rds != "" {
			return "RDS " + rds
		}
		return "HTTP " + hcm.GetRouteConfig().GetName()
	}
	var tp tcpv3.TcpProxy
	if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
		t.Fatalf("chain %s: %v", fc.Name, err)
	}
	return tp.GetCluster()
}

// TestSidecarInboundDetectsHTTP: the workload's port of no given protocol takes
// plaintext HTTP (as the inspector finds it) and mTLS naming HTTP in its ALPN
// through its HTTP connection manager, anything else as TCP; the HTTP inspector
// looks at the connections of every port but the one declared TCP.
func TestSidecarInboundDetectsHTTP(t *testing.T) {
	for mode, want := range map[string][]string{
		"PERMISSIVE": {
			"0.0.0.0_8080 tls [istio-http/1.0 istio-http/1.1 istio-h2] mtls -> HTTP inbound|8080||",
			"0.0.0.0_8080 tls [istio-peer-exchange istio] mtls -> inbound|8080||",
			"0.0.0.0_8080 tls [] -> inbound|8080||",
			"0.0.0.0_8080 raw_buffer [http/1.1 h2c] -> HTTP inbound|8080||",
			"0.0.0.0_8080 raw_buffer [] -> inbound|8080||",
		},
		"STRICT": {
			"0.0.0.0_8080 tls [istio-http/1.0 istio-http/1.1 istio-h2] mtls -> HTTP inbound|8080||",
			"0.0.0.0_8080 tls [] mtls -> inbound|8080||",
		},
		"DISABLE": { // as istiod: no chain for TLS (nor a TLS inspector to tell it apart)
			"0.0.0.0_8080 raw_buffer [http/1.1 h2c] -> HTTP inbound|8080||",
			"0.0.0.0_8080 raw_buffer [] -> inbound|8080||",
		},
	} {
		t.Run(mode, func(t *testing.T) {
			snap := snapshotOf(t, sniffConfig, `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: `+mode+`}
`)
			sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web", "version": "v2"})
			var vin listenerv3.Listener
			resourceOf(t, sets, ListenerType, virtualInbound, &vin)
			var got []string
			for _, fc := range vin.FilterChains {
				m := fc.GetFilterChainMatch()
				if m.GetDestinationPort().GetValue() != 8080 {
					continue
				}
				tls := ""
				if fc.TransportSocket != nil {
					tls = " mtls"
				}
				got = append(got, fmt.Sprintf("%s %s %v%s -> %s", fc.Name, m.GetTransportProtocol(), m.GetApplicationProtocols(), tls, chainTarget(t, fc)))
			}
			if !slices.Equal(got, want) {
				t.Errorf("port 8080's chains:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			inspector := vin.ListenerFilters[len(vin.ListenerFilters)-1]
			if mode == "STRICT" {
				// No chain takes plaintext HTTP: no inspector, as istiod.
				if inspector.Name == "envoy.filters.listener.http_inspector" {
					t.Error("an HTTP inspector under STRICT, where no chain takes plaintext")
				}
			} else if inspector.Name != "envoy.filters.listener.http_inspector" {
				t.Fatalf("the last listener filter is %s, want the HTTP inspector", inspector.Name)
			} else {
				var off []int32
				for _, r := range inspector.GetFilterDisabled().GetOrMatch().GetRules() {
					off = append(off, r.GetDestinationPortRange().GetStart())
				}
				if !slices.Equal(off, []int32{3306, 15006}) {
					t.Errorf("the HTTP inspector is disabled by %v, want for the TCP port 3306 and 15006 (whose chain drops everything) only", inspector.GetFilterDisabled())
				}
			}
			var c clusterv3.Cluster
			resourceOf(t, sets, ClusterType, inboundClusterName(8080), &c)
			var o httpv3.HttpProtocolOptions
			if err := c.TypedExtensionProtocolOptions[httpProtocolOptions].UnmarshalTo(&o); err != nil || o.GetUseDownstreamProtocolConfig() == nil {
				t.Errorf("the inbound cluster does not use the client's protocol (%v)", err)
			}
		})
	}
}

// TestUDPPortsGetNothingOutbound: a UDP port of a service gets no listener, route,
// cluster or endpoints, for Envoy sidecars and proxyless clients alike (as in
// Istio); its TCP port does, and a workload's inbound chains cover both.
func TestUDPPortsGetNothingOutbound(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: shop}
spec:
  hosts: [dns.shop.svc.cluster.local]
  addresses: [10.9.0.53]
  location: MESH_INTERNAL
  ports: [{number: 53, name: dns-tcp, protocol: TCP}, {number: 5353, name: dns-udp, protocol: UDP}]
  resolution: STATIC
  workloadSelector: {labels: {app: dns}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: dns-1, namespace: shop}
spec: {address: 10.0.0.53, labels: {app: dns}}
`)
	grpcSets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for what, sets := range map[string]map[string]*TypeSet{
		"an Envoy sidecar":   envoySidecar(t, snap, "shop", map[string]string{"app": "client"}),
		"a proxyless client": grpcSets,
		"dns's own sidecar":  envoySidecar(t, snap, "shop", map[string]string{"app": "dns"}),
	} {
		var names []string
		for _, typ := range []string{ListenerType, RouteType, ClusterType, EndpointType} {
			for name := range sets[typ].ByName {
				if strings.Contains(name, "5353") && !strings.HasPrefix(name, "inbound|") {
					names = append(names, name)
				}
			}
		}
		if len(names) > 0 {
			t.Errorf("%s gets resources of the UDP port: %v", what, names)
		}
		if sets[ClusterType].ByName["outbound|53||dns.shop.svc.cluster.local"] == nil {
			t.Errorf("%s gets no cluster of the TCP port", what)
		}
	}
	own := envoySidecar(t, snap, "shop", map[string]string{"app": "dns"})
	for _, c := range []string{"inbound|53||", "inbound|5353||"} {
		if own[ClusterType].ByName[c] == nil {
			t.Errorf("dns's own sidecar has no %s cluster", c)
		}
	}
}
