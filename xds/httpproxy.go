package xds

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// An Envoy sidecar can be its application's HTTP proxy, as in Istio: the
// application sends requests in absolute form (GET http://ratings:9080/ HTTP/1.1,
// what curl and most HTTP libraries do under http_proxy=127.0.0.1:15080) to one
// port, and the sidecar routes each by the host and port it names, to any service
// on any of its HTTP ports. Without iptables (a VM's sidecar) this is one port for
// everything instead of a port of 127.0.0.1 bound per service port. Two ways ask for
// it, as in Istio:
//
//   - the mesh config's proxyHttpPort, or a proxy's HTTP_PROXY_PORT metadata
//     (ISTIO_META_HTTP_PROXY_PORT) for itself: a listener on 127.0.0.1 with the
//     route configuration "http_proxy", reaching what the Sidecar's egress listener
//     without a port imports (every service without a Sidecar);
//   - a Sidecar egress listener of protocol HTTP_PROXY: on its port and bind (or
//     0.0.0.0, reached through traffic capture), with the route configuration named
//     by the port, reaching the services its hosts import;
//   - a Sidecar egress listener of HTTP bound to a unix domain socket
//     (unix:///path, port 0): a listener on the socket, unix:///path_0, with the
//     route configuration named by the socket, as istiod builds it; the
//     application's requests name their service in the Host header.
//
// Each virtual host is a service's port, answering to the service's names with the
// port (ratings.shop.svc.cluster.local:9080, ratings:9080 in its namespace) and,
// for port 80, without one. Unlike istiod, which lets Envoy ignore the port in
// matching here as on every outbound route configuration (so that only port 80's
// services are found and every other port's requests fall to the last virtual
// host), the port is matched: a request for ratings:9080 reaches port 9080 of
// ratings. A host no service answers to is answered 502: the allow_any virtual host
// of other route configurations sends a request where its connection was going,
// which for a proxy's connection is the proxy itself.

// httpProxyRouteName is the route configuration of the proxy port of the mesh
// config (or proxy metadata), Istio's name for it.
const httpProxyRouteName = "http_proxy"

// httpProxy is a port on which a sidecar is an HTTP proxy.
type httpProxy struct {
	port       uint32
	ip         string
	extra      []string // further addresses (Proxy.otherFamily)
	bindToPort bool
	route      string
	hosts      []string // the Sidecar egress hosts it reaches ("namespace/host")
}

func isHTTPProxy(p registry.Port) bool { return strings.EqualFold(p.Protocol, "HTTP_PROXY") }

// httpProxies returns the proxy's HTTP proxy ports: its Sidecar's HTTP_PROXY egress
// listeners, then the mesh config's (or its metadata's) port unless one of those
// took the number. Gateways and proxyless clients have none.
func httpProxies(ctx *Context, binds egressBindingSet) []httpProxy {
	if ctx.Proxy.Type != TypeSidecar || ctx.Proxy.Generator == GeneratorGRPC {
		return nil
	}
	var out []httpProxy
	taken := map[uint32]bool{}
	catchAll := defaultEgress[0].Hosts
	if ctx.sidecar != nil {
		catchAll = nil
		for _, eg := range egressListeners(ctx.sidecar.Spec.(*networking.Sidecar)) {
			switch {
			case eg.Port == nil:
				catchAll = eg.Hosts
			case strings.HasPrefix(eg.Bind, unixPrefix) && isHTTP(registry.Port{Protocol: eg.Port.Protocol}):
				// HTTP on a unix domain socket: a listener of its own on the socket
				// (unix:///path_0), routed by the Host header as an HTTP proxy port
				// is, with the route configuration named by the socket, as istiod
				// names them.
				out = append(out, httpProxy{port: eg.Port.Number, ip: eg.Bind, bindToPort: true, route: eg.Bind, hosts: eg.Hosts})
			case strings.EqualFold(eg.Port.Protocol, "HTTP_PROXY"):
				p := httpProxy{port: eg.Port.Number, ip: ctx.Proxy.wildcard(), extra: ctx.Proxy.otherFamily(true, false),
					route: strconv.FormatUint(uint64(eg.Port.Number), 10), hosts: eg.Hosts}
				if b, bound := binds.on(p.port); bound {
					p.ip, p.bindToPort, p.extra = b.ip, b.bindToPort, b.extra
				}
				out = append(out, p)
				taken[p.port] = true
			}
		}
	}
	port := ctx.Proxy.HTTPProxyPort
	if port == 0 {
		port = uint32(ctx.Mesh.GetProxyHttpPort())
	}
	if port != 0 && !taken[port] {
		out = append(out, httpProxy{port: port, ip: ctx.Proxy.loopback(), extra: ctx.Proxy.otherFamily(false, true), bindToPort: true,
			route: httpProxyRouteName, hosts: catchAll})
	}
	return out
}

// httpProxyListeners are the listeners of the proxy's HTTP proxy ports (none on a
// port an unprivileged proxy cannot bind, reported through refused).
func httpProxyListeners(ctx *Context, binds egressBindingSet, refused map[uint32]bool) []named {
	var out []named
	for _, p := range httpProxies(ctx, binds) {
		if !strings.HasPrefix(p.ip, unixPrefix) && !canBind(ctx, egressBinding{ip: p.ip, bindToPort: p.bindToPort}, true, p.port, refused) {
			continue
		}
		name := p.ip + "_" + strconv.FormatUint(uint64(p.port), 10)
		hcm := outboundHCM(ctx, name, p.route)
		if hcm.HttpProtocolOptions == nil {
			hcm.HttpProtocolOptions = &corev3.Http1ProtocolOptions{}
		}
		hcm.HttpProtocolOptions.AllowAbsoluteUrl = wrapperspb.Bool(true)
		// Its clients name any host: metadata headers go to all, as istiod has it.
		hcm.HttpFilters = envoyHTTPFilters(ctx, classOutbound, nil, false)
		l := outboundListener(name, p.ip, p.port, []*listenerv3.Filter{envoyConnectionManager(ctx, hcm)})
		l.AdditionalAddresses = additionalAddresses(p.extra, p.port)
		if p.bindToPort {
			l.BindToPort, l.MaxConnectionsToAcceptPerSocketEvent = nil, acceptPerSocketEvent()
		}
		out = append(out, named{name: name, msg: l})
	}
	return out
}

// httpProxyRoutes are the route configurations of the proxy's HTTP proxy ports: a
// virtual host per HTTP (or undeclared) port of each service the port reaches,
// routed as the service's VirtualService routes that port.
func httpProxyRoutes(ctx *Context, binds egressBindingSet) []named {
	var out []named
	for _, p := range httpProxies(ctx, binds) {
		var vhs []*routev3.VirtualHost
		taken := map[string]bool{}
		for _, svc := range ctx.Services {
			if !hostsImport(p.hosts, svc, ctx.Proxy.Namespace) {
				continue
			}
			vs := virtualServiceFor(ctx, svc.Hostname)
			for _, port := range svc.Ports {
				if isUDP(port) || !(isHTTP(port) || isSniffed(port)) {
					continue
				}
				var domains []string
				for _, d := range domainsFor(ctx, svc, port.Number, true) {
					if taken[d] || (port.Number != 80 && !hasPort(d)) {
						continue
					}
					taken[d] = true
					domains = append(domains, d)
				}
				if len(domains) == 0 {
					continue
				}
				var routes []*routev3.Route
				if vs != nil {
					routes = httpRoutes(ctx, vs.Resource, port.Number, "", false)
				}
				if len(routes) == 0 {
					routes = []*routev3.Route{defaultRoute(ctx, svc, port.Number)}
				}
				vhs = append(vhs, &routev3.VirtualHost{Name: listenerName(svc.Hostname, port.Number), Domains: domains, Routes: routes})
			}
		}
		vhs = append(vhs, &routev3.VirtualHost{Name: "block_all", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Name:   "block_all",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
		}}})
		rc := envoyRouteConfig(ctx, p.route, vhs)
		rc.IgnorePortInHostMatching = false
		out = append(out, named{name: p.route, msg: rc})
	}
	return out
}

// hasPort reports whether a virtual host domain names a port (host:port, [v6]:port).
func hasPort(domain string) bool {
	i := strings.LastIndexByte(domain, ':')
	return i >= 0 && i > strings.LastIndexByte(domain, ']')
}
