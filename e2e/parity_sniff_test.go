package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/navarch/navarch/internal/peers"
)

// sniffParity has ports of no given protocol on a service with an address (web, whose
// workload is at 127.0.0.66, with a port-level mTLS mode for a port no service
// declares) and on one without (cache), and an HTTP port (api) shared by a TCP
// service without an address (legacy).
const sniffParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [10.9.0.8]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: web}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web}
spec: {address: 127.0.0.66, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache}
spec:
  hosts: [cache.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 7000, name: cache}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.67}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.68}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy}
spec:
  hosts: [legacy.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.69}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: MODE}
  portLevelMtls: {7777: {mode: DISABLE}}
`

// probe is a connection as an Envoy listener sees its first bytes: TLS (with the
// ALPN its client offers) or plaintext that is HTTP/1.1, h2c or neither.
type probe struct {
	tls  bool
	alpn []string
	http string
}

func (p probe) String() string {
	switch {
	case p.tls:
		return fmt.Sprintf("tls%v", p.alpn)
	case p.http != "":
		return p.http
	}
	return "bytes"
}

var sniffProbes = []probe{
	{http: "http/1.1"}, {http: "h2c"}, {},
	{tls: true, alpn: []string{"istio-http/1.1"}}, {tls: true, alpn: []string{"istio-peer-exchange", "istio"}},
	{tls: true, alpn: []string{"h2", "http/1.1"}}, {tls: true},
}

// TestSameProtocolDetectionAsIstiod compares what an Envoy sidecar does with
// connections to ports of no given protocol, from istiod and from navarch: on the
// client's side (the listener at web's address, the wildcard listeners of cache's
// port and of an HTTP port a TCP service shares), which connections go through an
// HTTP connection manager and to which cluster its route sends them, which go to
// which cluster as TCP, and in which HTTP version each cluster speaks to its
// endpoints; on web's own sidecar, under each mTLS mode, which are handled as HTTP
// or TCP and which have TLS terminated, on the service's port, on a port only a
// PeerAuthentication names and on one nothing names (the passthrough chains). Envoy's choice of filter
// chain is simulated (chainFor) from the listener's inspectors and chain matches.
func TestSameProtocolDetectionAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	client := "sidecar~127.0.0.70~client-0.default~default.svc.cluster.local"
	clientMD := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "client"}}
	web := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	webMD := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	for _, mode := range []string{"PERMISSIVE", "STRICT", "DISABLE"} {
		t.Run(mode, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", mode, 1)+listenerParity)
			describe := func(server string) []string {
				var out []string
				cfg := envoyConfig(t, server, client, clientMD)
				listeners := cfg.listeners
				for _, c := range []string{"outbound|8080||web.default.svc.cluster.local", "outbound|7000||cache.default.svc.cluster.local",
					"outbound|9080||api.default.svc.cluster.local", "outbound|9080||legacy.default.svc.cluster.local"} {
					out = append(out, c+" upstream: "+upstreamProtocol(t, cfg.clusters[c]))
				}
				for _, l := range []struct {
					name, ip, host string
					port           uint32
				}{
					{"10.9.0.8_8080", "10.9.0.8", "web.default.svc.cluster.local", 8080},
					{"0.0.0.0_7000", "127.0.0.67", "cache.default.svc.cluster.local", 7000},
					{"0.0.0.0_9080", "127.0.0.69", "api.default.svc.cluster.local", 9080},
				} {
					for _, p := range sniffProbes[:3] { // a client's sidecar sees its application's plaintext
						fc := chainFor(listeners[l.name], l.ip, l.port, p)
						out = append(out, fmt.Sprintf("%s %s: %s", l.name, p, chainDoes(t, fc, func(rds string) string {
							return routeTarget(envoyRoutes(t, server, client, clientMD, rds), l.host)
						})))
					}
				}
				webCfg := envoyConfig(t, server, web, webMD)
				inbound := webCfg.clusters["inbound|8080||"]
				out = append(out, fmt.Sprintf("inbound|8080|| upstream: %s, hosts cleaned up every %v", upstreamProtocol(t, inbound), inbound.GetCleanupInterval().AsDuration()))
				in := webCfg.listeners["virtualInbound"]
				for _, port := range []uint32{8080, 8081, 8083, 7777, 9999} { // a service's (of no protocol, HTTP, TCP), a PeerAuthentication's, none's
					for _, p := range sniffProbes {
						out = append(out, fmt.Sprintf("inbound %d %s: %s", port, p, chainDoes(t, chainFor(in, "127.0.0.66", port, p), nil)))
					}
				}
				return out
			}
			want := describe(istiod)
			t.Logf("istiod:\n\t%s", strings.Join(want, "\n\t"))
			var got []string
			eventually(t, 30*time.Second, "navarch's listeners", func() error {
				got = describe(navarch)
				if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "HTTP") }) {
					return fmt.Errorf("no HTTP detected yet: %v", got)
				}
				return nil
			})
			if !slices.Equal(got, want) {
				for i := range max(len(got), len(want)) {
					g, w := at(got, i), at(want, i)
					mark := " "
					if g != w {
						mark = "≠"
					}
					t.Logf("%s istiod:  %s\n  navarch: %s", mark, w, g)
				}
				t.Error("navarch's sidecars treat connections to ports of no protocol otherwise than istiod's")
			}
			if !slices.ContainsFunc(want, func(s string) bool { return strings.Contains(s, "HTTP") }) {
				t.Errorf("istiod detects no HTTP here, which this test expects: %v", want)
			}
		})
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// chainFor is the filter chain Envoy picks on listener l for a connection p to ip
// and port: the listener's TLS inspector, if it runs for the port, finds TLS and
// its ALPN; its HTTP inspector, if it runs, finds plaintext HTTP. Then, criterion by
// criterion (destination port, destination address, server name, transport
// protocol, application protocols), only the chains with the most specific match
// go on, with no going back to a less specific one; nil if none is left and the
// listener has no default chain.
func chainFor(l *listenerv3.Listener, ip string, port uint32, p probe) *listenerv3.FilterChain {
	transport, alpn := "raw_buffer", []string(nil)
	if p.tls && inspects(l, "envoy.filters.listener.tls_inspector", port) {
		transport, alpn = "tls", p.alpn
	} else if !p.tls && p.http != "" && inspects(l, "envoy.filters.listener.http_inspector", port) {
		alpn = []string{p.http}
	}
	chains := l.GetFilterChains()
	narrow := func(specific func(*listenerv3.FilterChainMatch) int) {
		best, keep := 0, []*listenerv3.FilterChain(nil)
		for _, fc := range chains {
			switch s := specific(fc.GetFilterChainMatch()); {
			case s > best:
				best, keep = s, []*listenerv3.FilterChain{fc}
			case s == best:
				keep = append(keep, fc)
			}
		}
		chains = keep
	}
	const no = -1 // the chain's criterion excludes the connection
	narrow(func(m *listenerv3.FilterChainMatch) int {
		switch m.GetDestinationPort().GetValue() {
		case 0:
			return 0
		case port:
			return 1
		}
		return no
	})
	addr := netip.MustParseAddr(ip)
	narrow(func(m *listenerv3.FilterChainMatch) int {
		if len(m.GetPrefixRanges()) == 0 {
			return 0
		}
		for _, r := range m.GetPrefixRanges() {
			if pfx := netip.PrefixFrom(netip.MustParseAddr(r.AddressPrefix), int(r.PrefixLen.GetValue())); pfx.Contains(addr) {
				return 1 + pfx.Bits()
			}
		}
		return no
	})
	narrow(func(m *listenerv3.FilterChainMatch) int { // the probes send no SNI
		if len(m.GetServerNames()) > 0 {
			return no
		}
		return 0
	})
	narrow(func(m *listenerv3.FilterChainMatch) int {
		switch m.GetTransportProtocol() {
		case "":
			return 0
		case transport:
			return 1
		}
		return no
	})
	narrow(func(m *listenerv3.FilterChainMatch) int {
		if len(m.GetApplicationProtocols()) == 0 {
			return 0
		}
		if slices.ContainsFunc(m.GetApplicationProtocols(), func(a string) bool { return slices.Contains(alpn, a) }) {
			return 1
		}
		return no
	})
	if len(chains) == 0 {
		return l.GetDefaultFilterChain()
	}
	return chains[0]
}

// inspects reports whether l runs the listener filter named name for connections
// to port (its filter_disabled predicate, of destination port ranges, not holding).
func inspects(l *listenerv3.Listener, name string, port uint32) bool {
	for _, f := range l.GetListenerFilters() {
		if f.Name == name {
			return f.GetFilterDisabled() == nil || !predicateHolds(f.GetFilterDisabled(), port)
		}
	}
	return false
}

func predicateHolds(p *listenerv3.ListenerFilterChainMatchPredicate, port uint32) bool {
	switch r := p.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_AnyMatch:
		return true
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		return !predicateHolds(r.NotMatch, port)
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		return slices.ContainsFunc(r.OrMatch.Rules, func(q *listenerv3.ListenerFilterChainMatchPredicate) bool { return predicateHolds(q, port) })
	case *listenerv3.ListenerFilterChainMatchPredicate_AndMatch:
		return !slices.ContainsFunc(r.AndMatch.Rules, func(q *listenerv3.ListenerFilterChainMatchPredicate) bool { return !predicateHolds(q, port) })
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int32(port) >= r.DestinationPortRange.Start && int32(port) < r.DestinationPortRange.End
	}
	panic(fmt.Sprintf("listener filter predicate %T", p.GetRule()))
}

// chainDoes describes what filter chain fc does with a connection: "closed" if
// there is none; HTTP (and, given route, where the route configuration it names
// sends the request) or TCP to a cluster, its last filter; and whether it
// terminates TLS.
func chainDoes(t *testing.T, fc *listenerv3.FilterChain, route func(rds string) string) string {
	t.Helper()
	if fc == nil {
		return "closed"
	}
	what := "?"
	if n := len(fc.GetFilters()); n > 0 {
		f := fc.Filters[n-1]
		var hcm hcmv3.HttpConnectionManager
		var tp tcpv3.TcpProxy
		switch {
		case f.GetTypedConfig().UnmarshalTo(&hcm) == nil:
			what = "HTTP"
			if rds := hcm.GetRds().GetRouteConfigName(); rds != "" && route != nil {
				what += " -> " + route(rds)
			} else if rc := hcm.GetRouteConfig(); rc != nil {
				what += " -> " + routeTarget(rc, "")
			}
		case f.GetTypedConfig().UnmarshalTo(&tp) == nil:
			what = "TCP -> " + tp.GetCluster()
		}
	}
	if fc.GetTransportSocket() != nil {
		what += ", TLS terminated"
	}
	return what
}

// upstreamProtocol is the HTTP version cluster c speaks to its endpoints: the
// client's ("downstream"), HTTP/2, or Envoy's default, HTTP/1.1.
func upstreamProtocol(t *testing.T, c *clusterv3.Cluster) string {
	t.Helper()
	if c == nil {
		return "no cluster"
	}
	a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if a == nil {
		return "HTTP/1.1"
	}
	var o httpv3.HttpProtocolOptions
	if err := a.UnmarshalTo(&o); err != nil {
		t.Fatal(err)
	}
	switch {
	case o.GetUseDownstreamProtocolConfig() != nil:
		return "downstream"
	case o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil:
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// routeTarget is the cluster of the first route of rc's virtual host for host (or
// of its only virtual host).
func routeTarget(rc *routev3.RouteConfiguration, host string) string {
	for _, vh := range rc.GetVirtualHosts() {
		if slices.Contains(vh.Domains, host) || len(rc.GetVirtualHosts()) == 1 {
			if len(vh.Routes) == 0 {
				return "no route"
			}
			return vh.Routes[0].GetRoute().GetCluster()
		}
	}
	return "no virtual host for " + host
}
