package xds

import (
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// proxyServices are two services of namespace shop: ratings with an HTTP port and a
// TCP one, split by path between subsets on 9080; web on port 80.
const proxyServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /v1/}}]
    route: [{destination: {host: ratings, subset: v1}}]
  - route: [{destination: {host: ratings, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: front}
spec:
  hosts: [web.front.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.3}]
`

// TestHTTPProxyRoutesByHostAndPort sends absolute-form requests, as an application
// whose http_proxy names its sidecar sends them, through what the sidecar gets: the
// listener on the proxy port, then the virtual host and route Envoy would pick.
func TestHTTPProxyRoutesByHostAndPort(t *testing.T) {
	for _, tc := range []struct {
		name     string
		config   []string
		metadata uint32 // HTTP_PROXY_PORT
		listener string
		route    string
		requests map[string]string // URL -> cluster ("502": answered 502 by the proxy)
	}{{
		name:     "mesh config proxyHttpPort",
		config:   []string{meshDoc("{proxyHttpPort: 15080}")},
		listener: "127.0.0.1_15080", route: "http_proxy",
		requests: map[string]string{
			"http://ratings.shop.svc.cluster.local:9080/v1/stars": "outbound|9080|v1|ratings.shop.svc.cluster.local",
			"http://ratings.shop.svc.cluster.local:9080/":         "outbound|9080|v2|ratings.shop.svc.cluster.local",
			"http://ratings:9080/x":                               "outbound|9080|v2|ratings.shop.svc.cluster.local", // in the proxy's namespace
			"http://ratings.shop:9080/x":                          "outbound|9080|v2|ratings.shop.svc.cluster.local",
			"http://web.front.svc.cluster.local/":                 "outbound|80||web.front.svc.cluster.local",
			"http://web.front.svc.cluster.local:80/":              "outbound|80||web.front.svc.cluster.local",
			"http://web.front:80/":                                "outbound|80||web.front.svc.cluster.local",
			"http://ratings.shop.svc.cluster.local/":              "502", // no port 80
			"http://ratings.shop.svc.cluster.local:9090/":         "502", // TCP
			"http://web:80/":                                      "502", // another namespace's short name
			"http://example.com/":                                 "502",
		},
	}, {
		name:     "proxy metadata over the mesh config",
		config:   []string{meshDoc("{proxyHttpPort: 15080}")},
		metadata: 3128,
		listener: "127.0.0.1_3128", route: "http_proxy",
		requests: map[string]string{"http://ratings:9080/": "outbound|9080|v2|ratings.shop.svc.cluster.local"},
	}, {
		name: "Sidecar HTTP_PROXY egress listener",
		config: []string{`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 7443, protocol: HTTP_PROXY, name: proxy}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: [./*]
  - hosts: [front/*]
`},
		listener: "127.0.0.1_7443", route: "7443",
		requests: map[string]string{
			"http://ratings:9080/v1/": "outbound|9080|v1|ratings.shop.svc.cluster.local",
			"http://web.front/":       "502", // imported by the other egress listener only
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := grpcProxy("shop", nil)
			p.Generator, p.HTTPProxyPort = "", tc.metadata
			sets, err := sidecarProfile().build(newContext(snapshotOf(t, append([]string{proxyServices}, tc.config...)...), p, "cluster.local", "istio-system"))
			if err != nil {
				t.Fatal(err)
			}
			var l listenerv3.Listener
			r := sets[ListenerType].ByName[tc.listener]
			if r == nil {
				t.Fatalf("no listener %s among %v", tc.listener, slices.Sorted(maps.Keys(sets[ListenerType].ByName)))
			}
			if err := r.Body.UnmarshalTo(&l); err != nil {
				t.Fatal(err)
			}
			if l.BindToPort != nil || l.Address.GetSocketAddress().GetAddress() != "127.0.0.1" {
				t.Errorf("listener %s does not bind 127.0.0.1: bind_to_port %v, address %v", tc.listener, l.BindToPort, l.Address)
			}
			var hcm hcmv3.HttpConnectionManager
			if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				t.Fatal(err)
			}
			if !hcm.GetHttpProtocolOptions().GetAllowAbsoluteUrl().GetValue() {
				t.Errorf("listener %s does not take absolute URLs", tc.listener)
			}
			if got := hcm.GetRds().GetRouteConfigName(); got != tc.route {
				t.Fatalf("listener %s routes by %q, want %q", tc.listener, got, tc.route)
			}
			var rc routev3.RouteConfiguration
			if err := sets[RouteType].ByName[tc.route].Body.UnmarshalTo(&rc); err != nil {
				t.Fatal(err)
			}
			for raw, want := range tc.requests {
				u, err := url.Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				if got := envoyRoute(&rc, u.Host, u.Path); got != want {
					t.Errorf("GET %s: %s, want %s", raw, got, want)
				}
			}
		})
	}
}

// TestHTTPProxyPortIsNotAServicePort: services on the port of a Sidecar's
// HTTP_PROXY egress listener get no listeners of their own there, and gateways and
// proxyless clients get no proxy.
func TestHTTPProxyPortIsNotAServicePort(t *testing.T) {
	snap := snapshotOf(t, proxyServices, meshDoc("{proxyHttpPort: 15080}"), `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP_PROXY, name: proxy}
    hosts: [./*]
  - hosts: ["*/*"]
`)
	sets := envoySidecar(t, snap, "shop", nil)
	names := slices.Sorted(maps.Keys(sets[ListenerType].ByName))
	for _, want := range []string{"0.0.0.0_9080", "127.0.0.1_15080"} {
		if !slices.Contains(names, want) {
			t.Errorf("no listener %s among %v", want, names)
		}
	}
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_9080"].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	if len(l.FilterChains) != 1 || l.BindToPort.GetValue() {
		t.Errorf("0.0.0.0_9080: %d filter chains, bind_to_port %v; want the proxy's one chain, reached by capture", len(l.FilterChains), l.BindToPort)
	}
	if _, ok := sets[RouteType].ByName["9080"]; !ok {
		t.Error("no route configuration 9080 for the proxy port")
	}
	for _, p := range []*Proxy{grpcProxy("shop", nil), {ID: "router~10.0.0.9~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.9", Namespace: "shop"}} {
		prof := grpcProfile()
		if p.Type == TypeRouter {
			prof = gatewayProfile()
		}
		sets, _ := prof.build(newContext(snap, p, "cluster.local", "istio-system"))
		for name := range sets[RouteType].ByName {
			if name == httpProxyRouteName {
				t.Errorf("%s proxy got route configuration %s", p.Type+"/"+p.Generator, name)
			}
		}
	}
}

// envoyRoute is where Envoy sends a request for authority and path under rc: the
// virtual host as Envoy picks it (an exact domain, then the longest suffix
// wildcard, then the longest prefix wildcard, then "*"; the authority's port left
// out of matching when rc says so), then its first route whose path prefix (or
// exact path) matches. It returns the route's cluster, or the status of a direct
// response.
func envoyRoute(rc *routev3.RouteConfiguration, authority, path string) string {
	host := strings.ToLower(authority)
	if rc.IgnorePortInHostMatching && hasPort(host) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	vh := pickVirtualHost(rc.VirtualHosts, host)
	if vh == nil {
		return "404" // Envoy's answer when no virtual host matches
	}
	for _, r := range vh.Routes {
		switch m := r.Match.PathSpecifier.(type) {
		case *routev3.RouteMatch_Prefix:
			if !strings.HasPrefix(path, m.Prefix) {
				continue
			}
		case *routev3.RouteMatch_Path:
			if path != m.Path {
				continue
			}
		default:
			continue
		}
		if len(r.Match.Headers) > 0 || len(r.Match.QueryParameters) > 0 {
			continue
		}
		if d := r.GetDirectResponse(); d != nil {
			return strconv.Itoa(int(d.Status))
		}
		return r.GetRoute().GetCluster()
	}
	return "404"
}

func pickVirtualHost(vhs []*routev3.VirtualHost, host string) *routev3.VirtualHost {
	type wild struct {
		vh     *routev3.VirtualHost
		suffix string
		prefix bool
	}
	var wilds []wild
	var star *routev3.VirtualHost
	for _, vh := range vhs {
		for _, d := range vh.Domains {
			switch {
			case d == "*":
				if star == nil {
					star = vh
				}
			case d == host:
				return vh
			case strings.HasPrefix(d, "*"):
				wilds = append(wilds, wild{vh, d[1:], false})
			case strings.HasSuffix(d, "*"):
				wilds = append(wilds, wild{vh, d[:len(d)-1], true})
			}
		}
	}
	sort.SliceStable(wilds, func(i, j int) bool {
		if wilds[i].prefix != wilds[j].prefix {
			return !wilds[i].prefix // suffix wildcards first
		}
		return len(wilds[i].suffix) > len(wilds[j].suffix)
	})
	for _, w := range wilds {
		if len(host) > len(w.suffix) && ((!w.prefix && strings.HasSuffix(host, w.suffix)) || (w.prefix && strings.HasPrefix(host, w.suffix))) {
			return w.vh
		}
	}
	return star
}
