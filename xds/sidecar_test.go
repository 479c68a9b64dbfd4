package xds

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// TestSidecarTCPRoutes: a VirtualService's tcp routes decide where a sidecar sends
// connections to a TCP service port: the first whose match holds for the proxy.
func TestSidecarTCPRoutes(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  tcp:
  - match: [{port: 5432, sourceLabels: {app: canary}}]
    route: [{destination: {host: db.shop.svc.cluster.local, subset: v2}}]
  - route:
    - {destination: {host: db.shop.svc.cluster.local, subset: v1}, weight: 70}
    - {destination: {host: db.shop.svc.cluster.local, subset: v2}, weight: 30}
`)
	destinations := func(labels map[string]string) string {
		sets := envoySidecar(t, snap, "shop", labels)
		var l listenerv3.Listener
		if err := sets[ListenerType].ByName["0.0.0.0_5432"].Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		var tcp tcpv3.TcpProxy
		if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tcp); err != nil {
			t.Fatal(err)
		}
		if c := tcp.GetCluster(); c != "" {
			return c
		}
		var out []string
		for _, c := range tcp.GetWeightedClusters().GetClusters() {
			out = append(out, fmt.Sprintf("%s=%d", c.Name, c.Weight))
		}
		return strings.Join(out, ",")
	}
	if got := destinations(map[string]string{"app": "web"}); got != "outbound|5432|v1|db.shop.svc.cluster.local=70,outbound|5432|v2|db.shop.svc.cluster.local=30" {
		t.Errorf("a client: %s, want the 70/30 split", got)
	}
	if got := destinations(map[string]string{"app": "canary"}); got != "outbound|5432|v2|db.shop.svc.cluster.local" {
		t.Errorf("a canary client: %s, want v2 only", got)
	}
}

// TestSidecarSNIRouting: services without addresses of their own share a TLS port's
// listener, told apart by SNI; a VirtualService tls route sends a name elsewhere (an
// egress gateway); anything else is an unknown destination.
func TestSidecarSNIRouting(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: shop}
spec:
  hosts: [a.example.com, b.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress, namespace: shop}
spec:
  hosts: [egress.shop.svc.cluster.local]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-egress, namespace: shop}
spec:
  hosts: [b.example.com]
  tls:
  - match: [{port: 443, sniHosts: [b.example.com]}]
    route: [{destination: {host: egress.shop.svc.cluster.local, port: {number: 443}}}]
`, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`)
	sets := envoySidecar(t, snap, "shop", nil)
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_443"].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fc := range allChains(&l) {
		var tcp tcpv3.TcpProxy
		if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&tcp); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join(fc.GetFilterChainMatch().GetServerNames(), ",")+" -> "+tcp.GetCluster())
	}
	want := []string{
		"a.example.com -> outbound|443||a.example.com",
		"b.example.com -> outbound|443||egress.shop.svc.cluster.local",
		"egress.shop.svc.cluster.local -> outbound|443||egress.shop.svc.cluster.local",
		" -> BlackHoleCluster",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chains:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(l.ListenerFilters) == 0 || l.ListenerFilters[0].Name != "envoy.filters.listener.tls_inspector" {
		t.Error("SNI chains need the TLS inspector")
	}
}

// shopDB is TCP service db in shop, with endpoints of versions v1 and v2.
const shopDB = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.4, labels: {version: v1}}, {address: 10.0.0.5, labels: {version: v2}}]
`

// TestSidecarL4RoutesByAddress: as in Istio, a service's own address does not stop a
// VirtualService's tls routes (chains by SNI, plus any destination subnets, and no
// other chain for the service); a TLS port ignores tcp routes; tcp routes whose
// matches name destination subnets are chains by those subnets, ahead of the first
// route that takes the rest.
func TestSidecarL4RoutesByAddress(t *testing.T) {
	snap := snapshotOf(t, shopDB, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vault, namespace: shop}
spec:
  hosts: [vault.shop.svc.cluster.local]
  addresses: [10.9.0.1]
  ports: [{number: 8200, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: kafka, namespace: shop}
spec:
  hosts: [kafka.shop.svc.cluster.local]
  addresses: [10.9.0.2]
  ports: [{number: 9093, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: subsets, namespace: shop}
spec:
  host: "*.shop.svc.cluster.local"
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vault, namespace: shop}
spec:
  hosts: [vault.shop.svc.cluster.local]
  tls:
  - match: [{sniHosts: [vault.shop.svc.cluster.local], destinationSubnets: [10.9.0.1]}]
    route: [{destination: {host: vault.shop.svc.cluster.local, subset: v2}}]
  - match: [{sniHosts: [vault.shop.svc.cluster.local]}]
    route: [{destination: {host: vault.shop.svc.cluster.local, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: kafka, namespace: shop}
spec:
  hosts: [kafka.shop.svc.cluster.local]
  tcp: [{route: [{destination: {host: db.shop.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  tcp:
  - match: [{destinationSubnets: [10.1.0.0/16, 10.2.0.7]}, {destinationSubnets: [10.3.0.0/16], sourceLabels: {app: other}}]
    route: [{destination: {host: db.shop.svc.cluster.local, subset: v2}}]
  - match: [{sourceLabels: {app: other}}]
    route: [{destination: {host: db.shop.svc.cluster.local, subset: v2}}]
  - route: [{destination: {host: db.shop.svc.cluster.local, subset: v1}}]
  - match: [{destinationSubnets: [10.4.0.0/16]}]
    route: [{destination: {host: db.shop.svc.cluster.local, subset: v2}}]
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	chains := func(name string) string {
		var l listenerv3.Listener
		if err := sets[ListenerType].ByName[name].Body.UnmarshalTo(&l); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out []string
		for _, fc := range allChains(&l) {
			var tcp tcpv3.TcpProxy
			if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&tcp); err != nil {
				t.Fatal(err)
			}
			var cidrs []string
			for _, r := range fc.GetFilterChainMatch().GetPrefixRanges() {
				cidrs = append(cidrs, fmt.Sprintf("%s/%d", r.AddressPrefix, r.PrefixLen.GetValue()))
			}
			out = append(out, fmt.Sprintf("[%s] [%s] -> %s", strings.Join(fc.GetFilterChainMatch().GetServerNames(), ","), strings.Join(cidrs, ","), tcp.GetCluster()))
		}
		inspector := len(l.ListenerFilters) > 0 && l.ListenerFilters[0].Name == "envoy.filters.listener.tls_inspector"
		return fmt.Sprintf("inspector=%v\n%s", inspector, strings.Join(out, "\n"))
	}
	want := map[string]string{
		"10.9.0.1_8200": `inspector=true
[vault.shop.svc.cluster.local] [10.9.0.1/32] -> outbound|8200|v2|vault.shop.svc.cluster.local
[vault.shop.svc.cluster.local] [] -> outbound|8200|v1|vault.shop.svc.cluster.local
[] [] -> PassthroughCluster`,
		"10.9.0.2_9093": `inspector=false
[] [] -> outbound|9093||kafka.shop.svc.cluster.local`,
		"0.0.0.0_5432": `inspector=false
[] [10.1.0.0/16,10.2.0.7/32] -> outbound|5432|v2|db.shop.svc.cluster.local
[] [] -> outbound|5432|v1|db.shop.svc.cluster.local`,
	}
	for name, w := range want {
		if got := chains(name); got != w {
			t.Errorf("%s:\n%s\nwant\n%s", name, got, w)
		}
	}
}

// TestSidecarTCPProxyPolicy: a sidecar's TCP proxy takes from the destination's
// DestinationRule what Istio takes there: the TCP idle timeout and maximum connection
// duration, hashing by source IP, and the (subset's) tunnel.
func TestSidecarTCPProxyPolicy(t *testing.T) {
	snap := snapshotOf(t, shopDB, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  addresses: [10.9.0.9]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.6}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {idleTimeout: 30s, maxConnectionDuration: 1h}}
    loadBalancer: {consistentHash: {useSourceIp: true}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {tunnel: {protocol: POST, targetHost: egress.corp.example, targetPort: 3128}, loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  tcp: [{route: [{destination: {host: db.shop.svc.cluster.local, subset: v2}}]}]
`)
	sets := envoySidecar(t, snap, "shop", nil)
	proxy := func(listener string) *tcpv3.TcpProxy {
		var l listenerv3.Listener
		resourceOf(t, sets, ListenerType, listener, &l)
		var tp tcpv3.TcpProxy
		if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			t.Fatal(err)
		}
		return &tp
	}
	db := proxy("0.0.0.0_5432")
	if db.GetCluster() != "outbound|5432||db.shop.svc.cluster.local" || db.GetIdleTimeout().AsDuration() != 30*time.Second ||
		db.GetMaxDownstreamConnectionDuration().AsDuration() != time.Hour || db.GetHashPolicy()[0].GetSourceIp() == nil || db.GetTunnelingConfig() != nil {
		t.Errorf("db: %v", db)
	}
	tp := proxy("10.9.0.9_5432")
	if tp.GetCluster() != "outbound|5432|v2|db.shop.svc.cluster.local" || tp.GetIdleTimeout().AsDuration() != 30*time.Second ||
		len(tp.GetHashPolicy()) != 0 || tp.GetTunnelingConfig().GetHostname() != "egress.corp.example:3128" || !tp.GetTunnelingConfig().GetUsePost() {
		t.Errorf("cache, to db's subset v2: %v", tp)
	}
}

// TestLargeDirectResponse: a direct response body of up to Istio's limit (1 MiB)
// reaches Envoy in a route configuration that allows it: at Envoy's default limit,
// 4 KiB, Envoy would refuse the whole configuration. The upstream learns the attempt
// count, as from istiod.
func TestLargeDirectResponse(t *testing.T) {
	body := strings.Repeat("x", 64<<10)
	snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  http: [{directResponse: {status: 200, body: {string: `+body+`}}}]
`)
	var rc routev3.RouteConfiguration
	resourceOf(t, envoySidecar(t, snap, "shop", nil), RouteType, "80", &rc)
	if got := rc.MaxDirectResponseBodySizeBytes.GetValue(); got < uint32(len(body)) {
		t.Errorf("route configuration allows direct responses of %d bytes, the VirtualService's is %d", got, len(body))
	}
	for _, vh := range rc.VirtualHosts {
		if !vh.IncludeRequestAttemptCount {
			t.Errorf("virtual host %s does not send the attempt count", vh.Name)
		}
	}
}

// allChains returns a listener's filter chains, its default chain last.
func allChains(l *listenerv3.Listener) []*listenerv3.FilterChain {
	if l.DefaultFilterChain == nil {
		return l.FilterChains
	}
	return append(slices.Clone(l.FilterChains), l.DefaultFilterChain)
}

// TestVirtualHostsAnswerToAddresses: a service's virtual host answers to its
// addresses too, as istiod's do (an IPv6 one as a Host header writes it); a
// proxyless client's also with the port.
func TestVirtualHostsAnswerToAddresses(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  addresses: [240.240.0.1, "2001:db8::1"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.7}]
`)
	grpcSets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who, route string
		sets       map[string]*TypeSet
		want       []string
	}{
		{"envoy", "80", envoySidecar(t, snap, "shop", nil), []string{"api.example.com", "api.example.com.", "240.240.0.1", "[2001:db8::1]"}},
		{"grpc", "outbound|80||api.example.com", grpcSets, []string{"api.example.com", "api.example.com:80", "api.example.com.", "api.example.com.:80",
			"240.240.0.1", "240.240.0.1:80", "[2001:db8::1]", "[2001:db8::1]:80"}},
	} {
		var rc routev3.RouteConfiguration
		resourceOf(t, tc.sets, RouteType, tc.route, &rc)
		var got []string
		for _, vh := range rc.VirtualHosts {
			if vh.Name == "api.example.com:80" {
				got = vh.Domains
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: domains %q, want %q", tc.who, got, tc.want)
		}
	}
}
