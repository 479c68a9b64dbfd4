package xds

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// A gateway (an Envoy of type router, Istio's ingress and egress gateways) gets a
// listener per port of the Gateway servers that select it (by labels, from any
// namespace, as Istio does by default), and the routes of the VirtualServices bound to
// those Gateways:
//
//   - HTTP, HTTP2, GRPC servers: an HTTP connection manager taking routes by RDS from
//     "http.<port>": a virtual host per VirtualService host that a server's hosts
//     admit (httpsRedirect: the virtual host requires TLS).
//   - HTTPS and TLS servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL with
//     certificate files; ISTIO_MUTUAL with the workload certificate by SDS): a filter
//     chain per server matching its hosts by SNI; HTTPS then routes by RDS from
//     "https.<port>.<port name>.<gateway>.<namespace>", TLS forwards by the
//     VirtualServices' tcp routes.
//   - PASSTHROUGH servers: a filter chain per VirtualService tls route, matching its
//     SNI hosts, forwarding the connection untouched.
//   - AUTO_PASSTHROUGH servers: a filter chain per mesh cluster, matching its name
//     as SNI and Istio's mTLS ALPNs.
//   - TCP (and other) servers: the connection goes where the VirtualServices' tcp
//     routes say.
//
// Route configurations of servers that bind an address end in ".<bind>", as in
// Istio. Servers on one port must all be TLS (told apart by
// SNI) or all plaintext of one kind (HTTP or TCP); the oldest server decides, others
// are left out and reported, as are servers whose SNI hosts repeat another's on the
// same port.

// gatewayProfile builds configuration for Istio gateways (proxies of type router).
func gatewayProfile() Profile {
	return Profile{gatewayListeners{}, gatewayRoutes{}, clusters{envoy: true}, endpoints{envoy: true}}
}

// gatewayServer is one server of a Gateway that selects the proxy.
type gatewayServer struct {
	gateway string // "ns/name"
	ns      string
	index   int // in the Gateway's servers
	*networking.Server
}

// name identifies the server in reports.
func (s gatewayServer) name() string {
	return s.gateway + "." + strconv.Itoa(s.index)
}

// routeName is the route configuration of an HTTPS server, named as Istio names it:
// https.<port>.<port name>.<gateway>.<namespace>, then .<bind> if the server binds
// one. Istio's validation keeps port names unique within a Gateway.
func (s gatewayServer) routeName() string {
	name := "https." + strconv.FormatUint(uint64(s.GetPort().GetNumber()), 10) + "." + s.GetPort().GetName() +
		"." + strings.TrimPrefix(s.gateway, s.ns+"/") + "." + s.ns
	if s.Bind != "" {
		name += "." + s.Bind
	}
	return name
}

type serverKind int

const (
	kindHTTP serverKind = iota
	kindTCP
	kindHTTPS       // TLS terminated, then HTTP
	kindTLS         // TLS terminated, then TCP
	kindPassthrough // TLS forwarded by SNI
)

func (k serverKind) tls() bool { return k >= kindHTTPS }

// compatible reports whether servers of kinds a and b can share a port: TLS servers
// of any kind (told apart by SNI), plaintext ones only of the same kind.
func compatible(a, b serverKind) bool {
	return a.tls() && b.tls() || a == b
}

func kindOf(s *networking.Server) serverKind {
	mode := s.GetTls().GetMode()
	passthrough := mode == networking.ServerTLSSettings_PASSTHROUGH || mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
	switch strings.ToUpper(s.GetPort().GetProtocol()) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return kindHTTP
	case "HTTPS":
		if passthrough {
			return kindPassthrough
		}
		return kindHTTPS
	case "TLS":
		if passthrough {
			return kindPassthrough
		}
		return kindTLS
	}
	return kindTCP
}

// gatewayListener is where servers listen: their bind address (the proxy's wildcard,
// 0.0.0.0 or ::, unless a server's bind says otherwise, an IP or a unix socket) and
// port.
type gatewayListener struct {
	bind     string
	port     uint32
	wildcard bool // bind is the proxy's wildcard (Proxy.wildcard)
}

// name is the listener's name, <bind>_<port> as in Istio (the socket path for unix).
func (l gatewayListener) name() string {
	if strings.HasPrefix(l.bind, unixPrefix) {
		return l.bind
	}
	return l.bind + "_" + strconv.FormatUint(uint64(l.port), 10)
}

// routeSuffix tells apart the route configurations of listeners on one port.
func (l gatewayListener) routeSuffix() string {
	if l.wildcard {
		return ""
	}
	return "." + l.bind
}

func (l gatewayListener) address() *corev3.Address { return envoyAddress(l.bind, l.port) }

const (
	anyAddress = "0.0.0.0"
	unixPrefix = "unix://"
)

// sortedListeners returns the listeners of servers, by port then bind address.
func sortedListeners(servers map[gatewayListener][]gatewayServer) []gatewayListener {
	out := make([]gatewayListener, 0, len(servers))
	for l := range servers {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].port != out[j].port {
			return out[i].port < out[j].port
		}
		return out[i].bind < out[j].bind
	})
	return out
}

// gatewayServers returns the servers of the Gateways selecting the proxy, by
// listener; on each only servers of the oldest server's kind (buildGatewayServers).
func gatewayServers(ctx *Context) map[gatewayListener][]gatewayServer {
	return derived(ctx, "gateway-servers", func() map[gatewayListener][]gatewayServer { return buildGatewayServers(ctx) })
}

func buildGatewayServers(ctx *Context) map[gatewayListener][]gatewayServer {
	out := map[gatewayListener][]gatewayServer{}
	for _, r := range ctx.Snapshot.Config(api.Gateway) {
		gw := r.Spec.(*networking.Gateway)
		if !registry.LabelsMatch(ctx.Proxy.Labels, gw.Selector) {
			continue
		}
		name := r.Meta.Namespace + "/" + r.Meta.Name
		for i, s := range gw.Servers {
			gs := gatewayServer{gateway: name, ns: r.Meta.Namespace, index: i, Server: s}
			port := gatewayPort(ctx, s.GetPort().GetNumber())
			if ctx.Proxy.Unprivileged && port < 1024 && !strings.HasPrefix(s.Bind, unixPrefix) {
				// As istiod: such a gateway listens where its service's target ports say.
				ctx.skip(gs.name(), fmt.Errorf("port %d: an unprivileged gateway cannot bind a port below 1024; left out", port))
				continue
			}
			bind := cmp.Or(s.Bind, ctx.Proxy.wildcard())
			l := gatewayListener{bind: bind, port: port, wildcard: bind == ctx.Proxy.wildcard()}
			if first := out[l]; len(first) > 0 && !compatible(kindOf(first[0].Server), kindOf(s)) {
				ctx.skip(gs.name(), fmt.Errorf("port %d: cannot share the port with %s (HTTP, TCP and TLS servers each need a port of their own)", port, first[0].name()))
				continue
			}
			out[l] = append(out[l], gs)
		}
	}
	return out
}

// gatewayPort is the port a gateway's server of port listens on, as istiod
// translates it: the target port of the first service of the gateway (one that
// selects it, or lists an endpoint at its address) with that port, unless the
// service is labelled networking.istio.io/disable-gateway-port-translation; else
// the port itself. So a Gateway's port 80 is the 8080 where an unprivileged gateway
// pod listens behind its Kubernetes Service's 80.
func gatewayPort(ctx *Context, port uint32) uint32 {
	for _, svc := range ctx.Snapshot.Services() {
		if _, off := svc.Labels[disableGatewayPortTranslation]; off || !selectsWorkload(svc, ctx.Proxy) {
			continue
		}
		for _, p := range svc.Ports {
			if p.Number == port {
				return workloadPort(ctx, svc, p)
			}
		}
	}
	return port
}

const disableGatewayPortTranslation = "networking.istio.io/disable-gateway-port-translation"

// serverHosts returns a server's hosts without their namespace part, and whether a
// VirtualService in namespace vsNS may bind to them ("ns/host" admits only ns, "./"
// the Gateway's own).
func serverHosts(s gatewayServer, vsNS string) []string {
	var out []string
	for _, h := range s.Hosts {
		ns, host, ok := strings.Cut(h, "/")
		if !ok {
			ns, host = "*", h
		}
		if ns == "." {
			ns = s.ns
		}
		if ns == "*" || ns == vsNS {
			out = append(out, host)
		}
	}
	return out
}

// admitted returns the hosts of a VirtualService that a server admits.
func admitted(s gatewayServer, vsNS string, vsHosts []string) []string {
	var out []string
	for _, h := range vsHosts {
		for _, sh := range serverHosts(s, vsNS) {
			if registry.HostMatches(sh, h) || registry.HostMatches(h, sh) {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// boundServices returns the VirtualServices bound to a server's gateway, oldest first.
func boundServices(ctx *Context, s gatewayServer) []*registry.HostRoutes {
	var out []*registry.HostRoutes
	for _, vs := range ctx.Snapshot.VirtualServices(s.ns) {
		spec := vs.Resource.Spec.(*networking.VirtualService)
		if len(spec.Gateways) > 0 && boundTo(spec.Gateways, vs.Resource.Meta.Namespace, s.gateway) {
			out = append(out, vs)
		}
	}
	return out
}

type gatewayListeners struct{}

func (gatewayListeners) Name() string    { return "gateway-listeners" }
func (gatewayListeners) TypeURL() string { return ListenerType }

func (gatewayListeners) Generate(ctx *Context) []named {
	servers := gatewayServers(ctx)
	var out []named
	for _, gl := range sortedListeners(servers) {
		name, port := gl.name(), gl.port
		var chains []*listenerv3.FilterChain
		tls := kindOf(servers[gl][0].Server).tls()
		if tls {
			chains = tlsChains(ctx, port, servers[gl])
		} else {
			chains = plaintextChains(ctx, gl, servers[gl])
		}
		if len(chains) == 0 {
			continue // nothing routes through this port
		}
		l := &listenerv3.Listener{
			Name:                                 name,
			Address:                              gl.address(),
			FilterChains:                         chains,
			AccessLog:                            accessLogsFor(ctx).clientListener,
			TrafficDirection:                     corev3.TrafficDirection_OUTBOUND,
			MaxConnectionsToAcceptPerSocketEvent: acceptPerSocketEvent(),
		}
		if ctx.proxyConfig().GetGatewayTopology().GetProxyProtocol() != nil {
			// A load balancer in front sends the client's address in a PROXY protocol
			// header, taken off first, as in Istio.
			l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.proxy_protocol",
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&proxyprotocolv3.ProxyProtocol{})}})
		}
		if tls {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
		}
		for _, fc := range l.FilterChains {
			fc.TransportSocketConnectTimeout = handshakeTimeout()
		}
		if ctx.Proxy.OutboundExactBalance {
			l.ConnectionBalanceConfig = exactBalance()
		}
		out = append(out, named{name: name, msg: l})
	}
	return out
}

// plaintextChains is the filter chain of a plaintext port: HTTP (the oldest server's
// kind) or TCP.
func plaintextChains(ctx *Context, gl gatewayListener, servers []gatewayServer) []*listenerv3.FilterChain {
	port := gl.port
	if kindOf(servers[0].Server) == kindHTTP {
		return []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{gatewayHTTP(ctx, "http."+strconv.FormatUint(uint64(port), 10)+gl.routeSuffix(), port)}}}
	}
	for _, s := range servers {
		if f := tcpRoute(ctx, s); f != nil {
			stack := tcpStack(registry.Port{Number: s.GetPort().GetNumber(), Protocol: s.GetPort().GetProtocol()}, f)
			return []*listenerv3.FilterChain{{Filters: tcpTelemetry(ctx, classGateway, false, append(rbacNetworkFilters(ctx, ctx.Proxy.Namespace, ctx.Proxy.Labels), stack...)...)}}
		}
	}
	return nil
}

// tlsChains are the filter chains of a TLS port, by SNI.
func tlsChains(ctx *Context, port uint32, servers []gatewayServer) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	taken := map[string]string{} // SNI match -> server
	claim := func(s gatewayServer, sni []string) bool {
		key := strings.Join(sni, ",")
		if by, dup := taken[key]; dup {
			ctx.skip(s.name(), fmt.Errorf("port %d: SNI hosts %q already served by %s", port, sni, by))
			return false
		}
		taken[key] = s.name()
		return true
	}
	for _, s := range servers {
		switch kindOf(s.Server) {
		case kindPassthrough:
			chains := passthroughChains(ctx, s)
			if s.GetTls().GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				chains = autoPassthroughChains(ctx, s)
			}
			for _, c := range chains {
				if claim(s, c.FilterChainMatch.GetServerNames()) {
					out = append(out, c)
				}
			}
		case kindHTTPS, kindTLS:
			sni := sniNames(s.Hosts)
			if !claim(s, sni) {
				continue
			}
			var filters []*listenerv3.Filter
			if kindOf(s.Server) == kindHTTPS {
				filters = []*listenerv3.Filter{gatewayHTTP(ctx, s.routeName(), port)}
			} else if f := tcpRoute(ctx, s); f != nil {
				filters = tcpTelemetry(ctx, classGateway, s.GetTls().GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL,
					append(rbacNetworkFilters(ctx, ctx.Proxy.Namespace, ctx.Proxy.Labels), f)...)
			} else {
				continue
			}
			out = append(out, &listenerv3.FilterChain{
				FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: sni}, // unnamed, as istiod's
				Filters:          filters,
				TransportSocket:  serverTLS(ctx, s.GetTls(), kindOf(s.Server) == kindHTTPS),
			})
		}
	}
	return out
}

// sniNames turns hosts (a server's, "ns/host" or "host") into the SNI names to match,
// sorted, each once, as istiod; nil (any) when one is "*".
func sniNames(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if _, host, ok := strings.Cut(h, "/"); ok {
			h = host // "ns/host": the namespace says who may bind, not what SNI
		}
		if h == "*" {
			return nil
		}
		out = append(out, h)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// gatewayHTTP is the HTTP connection manager of a gateway port: RBAC, then routes by
// RDS from the route configuration named route. A client certificate (a MUTUAL
// server's) reaches the workloads in x-forwarded-client-cert, by default only the
// gateway's say (SANITIZE_SET), and the client's address is the peer's unless the
// gateway's topology says how many proxies in front of it to trust in
// x-forwarded-for (numTrustedProxies).
func gatewayHTTP(ctx *Context, route string, port uint32) *listenerv3.Filter {
	ph := headersFor(ctx, classGateway)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_0.0.0.0_" + strconv.FormatUint(uint64(port), 10) + statDelimiter,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: rdsConfigSource(), RouteConfigName: route}},
		HttpFilters:        envoyHTTPFilters(ctx, classGateway, rbacFilters(ctx, ctx.Proxy.Namespace, ctx.Proxy.Labels), ph.skipMXHeaders),
		AccessLog:          accessLogsFor(ctx).client,
		Tracing:            tracingFor(ctx).client,
		RequestIdExtension: tracingFor(ctx).clientRequestID,
		UseRemoteAddress:   wrapperspb.Bool(true), // the gateway is the edge: the client is the peer
		XffNumTrustedHops:  ctx.proxyConfig().GetGatewayTopology().GetNumTrustedProxies(),
	}
	ph.apply(hcm)
	hcm.ForwardClientCertDetails, hcm.SetCurrentClientCertDetails = gatewayClientCert(ctx)
	return envoyConnectionManager(ctx, hcm)
}

// tcpRoute returns the TCP proxy of the first tcp route of a VirtualService bound to
// the server's gateway that applies to port, or nil.
func tcpRoute(ctx *Context, s gatewayServer) *listenerv3.Filter {
	port := s.GetPort().GetNumber() // the Gateway's, which VirtualServices name
	for _, vs := range boundServices(ctx, s) {
		ns := vs.Resource.Meta.Namespace
		if len(admitted(s, ns, vs.Hosts)) == 0 {
			continue
		}
		for _, r := range vs.Resource.Spec.(*networking.VirtualService).Tcp {
			if l4Applies(r.Match, port, ns, s.gateway) {
				return tcpProxyTo(ctx, vs.Resource, r.Route, registry.Port{Number: port, Name: s.GetPort().GetName()})
			}
		}
	}
	return nil
}

func l4Applies(matches []*networking.L4MatchAttributes, port uint32, ns, gateway string) bool {
	if len(matches) == 0 {
		return true
	}
	for _, m := range matches {
		if (m.Port == 0 || m.Port == port) && (len(m.Gateways) == 0 || boundTo(m.Gateways, ns, gateway)) {
			return true
		}
	}
	return false
}

// tlsMatchApplies reports whether a tls route's match applies to a gateway's
// server on port: of that port (or none) and of that gateway (or none).
func tlsMatchApplies(m *networking.TLSMatchAttributes, port uint32, ns, gateway string) bool {
	return (m.Port == 0 || m.Port == port) && (len(m.Gateways) == 0 || boundTo(m.Gateways, ns, gateway))
}

// autoPassthroughChains are the filter chains of an AUTO_PASSTHROUGH server (the
// east-west gateway of a multi-network mesh): one per service port and subset the
// server's hosts admit, matching Istio's SNI name for it,
// outbound_.<port>_.<subset>_.<host>, and an mTLS ALPN of Istio's sidecars (so only
// mTLS between workloads passes), and forwarding the still-encrypted connection
// to the SNI-DNAT cluster of that name (sniDNAT), which adds no TLS of its own. The
// client's proxy chose the destination; no VirtualService takes part.
func autoPassthroughChains(ctx *Context, s gatewayServer) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	for _, svc := range ctx.Services {
		if len(admitted(s, svc.Namespace, []string{svc.Hostname})) == 0 {
			continue
		}
		for _, p := range svc.Ports {
			if isUDP(p) {
				continue
			}
			for _, subset := range append([]string{""}, subsets(ctx, svc)...) {
				sni := meshSNI(svc.Hostname, p.Number, subset)
				out = append(out, &listenerv3.FilterChain{
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{sni}, ApplicationProtocols: alpnMeshInbound},
					Filters:          tcpTelemetry(ctx, classGateway, false, tcpStack(p, namedTCPProxy(ctx, outboundStatName(ctx, svc, p, subset, sni), sni, accessLogsFor(ctx).client))...),
				})
			}
		}
	}
	return out
}

// sniDNAT reports whether svc is forwarded by SNI through an AUTO_PASSTHROUGH
// server of the proxy (a gateway): its ports and subsets then have SNI-DNAT clusters
// too, named by that SNI, as istiod gives them.
func sniDNAT(ctx *Context, svc *registry.Service) bool {
	if ctx.Proxy.Type != TypeRouter {
		return false
	}
	servers := derived(ctx, "auto-passthrough-servers", func() []gatewayServer {
		var out []gatewayServer
		for _, servers := range gatewayServers(ctx) {
			for _, s := range servers {
				if s.GetTls().GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
					out = append(out, s)
				}
			}
		}
		return out
	})
	return slices.ContainsFunc(servers, func(s gatewayServer) bool { return len(admitted(s, svc.Namespace, []string{svc.Hostname})) > 0 })
}

// passthroughChains are the filter chains of a PASSTHROUGH server: one per tls route
// of the VirtualServices bound to its gateway, matching the route's SNI hosts, each
// under the gateway's AuthorizationPolicies (by what TCP shows).
func passthroughChains(ctx *Context, s gatewayServer) []*listenerv3.FilterChain {
	port := s.GetPort().GetNumber() // the Gateway's, which VirtualServices name
	var out []*listenerv3.FilterChain
	for _, vs := range boundServices(ctx, s) {
		ns := vs.Resource.Meta.Namespace
		for _, r := range vs.Resource.Spec.(*networking.VirtualService).Tls {
			for _, m := range r.Match {
				if !tlsMatchApplies(m, port, ns, s.gateway) {
					continue
				}
				sni := sniNames(admitted(s, ns, m.SniHosts))
				if len(sni) == 0 {
					continue // no SNI host this server admits (a "*" route would take every name)
				}
				out = append(out, &listenerv3.FilterChain{
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: sni},
					Filters: tcpTelemetry(ctx, classGateway, false, append(rbacNetworkFilters(ctx, ctx.Proxy.Namespace, ctx.Proxy.Labels),
						tcpProxyTo(ctx, vs.Resource, r.Route, registry.Port{Number: port, Name: s.GetPort().GetName()}))...),
				})
			}
		}
	}
	return out
}

// tcpProxyTo forwards a connection to the destinations of a route, by weight; stats
// go under stat, or the (first) destination's cluster when stat is "".
func tcpProxyTo(ctx *Context, vs *api.Resource, dests []*networking.RouteDestination, port registry.Port) *listenerv3.Filter {
	ns := vs.Meta.Namespace
	tp := &tcpv3.TcpProxy{StatPrefix: vs.Meta.Name + "." + ns, AccessLog: accessLogsFor(ctx).client, IdleTimeout: ctx.Proxy.IdleTimeout}
	if len(dests) == 1 {
		d := dests[0].Destination
		cluster := destinationCluster(ctx, ns, d, port.Number)
		tp.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: cluster}
		// One destination's statistics go under its cluster's stat name, as istiod
		// has it, with the listener's port; several under the VirtualService.
		svc := ctx.Snapshot.Service(registry.ResolveHost(d.Host, ns, ctx.Snapshot.Domain), ctx.Proxy.Namespace)
		tp.StatPrefix = outboundStatName(ctx, svc, port, d.Subset, cluster)
	} else {
		wc := &tcpv3.TcpProxy_WeightedCluster{}
		for _, d := range dests {
			if d.Weight > 0 {
				wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
					Name: destinationCluster(ctx, ns, d.Destination, port.Number), Weight: uint32(min(int64(d.Weight), math.MaxUint32))})
			}
		}
		tp.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	if len(dests) > 0 {
		subset := dests[0].Destination.Subset
		if len(dests) > 1 {
			subset = "" // a subset's tunnel is the cluster's, and this is no one cluster
		}
		tcpPolicy(ctx, tp, registry.ResolveHost(dests[0].Destination.Host, ns, ctx.Snapshot.Domain), subset)
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

type gatewayRoutes struct{}

func (gatewayRoutes) Name() string    { return "gateway-routes" }
func (gatewayRoutes) TypeURL() string { return RouteType }

// Generate builds "http.<port>" for each plaintext HTTP port (from all its servers)
// and one for each HTTPS server (gatewayServer.routeName).
func (gatewayRoutes) Generate(ctx *Context) []named {
	servers := gatewayServers(ctx)
	var out []named
	for _, gl := range sortedListeners(servers) {
		// Named by the listener's port; routed by the servers' own (the ports of
		// the Gateway, which VirtualServices name), as istiod does.
		p := strconv.FormatUint(uint64(gl.port), 10)
		switch first := servers[gl][0]; kindOf(first.Server) {
		case kindHTTP:
			out = append(out, gatewayRouteConfig(ctx, "http."+p+gl.routeSuffix(), first.GetPort().GetNumber(), servers[gl]))
		case kindHTTPS, kindTLS, kindPassthrough:
			for _, s := range servers[gl] {
				if kindOf(s.Server) == kindHTTPS {
					out = append(out, gatewayRouteConfig(ctx, s.routeName(), s.GetPort().GetNumber(), []gatewayServer{s}))
				}
			}
		}
	}
	return out
}

// gatewayRouteConfig is a route configuration of servers on port, built as istiod
// builds a gateway's:
//
//   - a virtual host per host where a server's hosts and those of a VirtualService
//     bound to its gateway meet (the more specific of the two: a VirtualService for
//     "*" on a server for shop.example.com makes shop.example.com's);
//   - the routes of every such VirtualService, in age order, with catch-all routes
//     moved to the end; each VirtualService's routes are built once per gateway;
//   - an httpsRedirect server requires TLS on each of its hosts, with a virtual host
//     of no routes for a host no VirtualService routes;
//   - virtual hosts with the very same routes (and TLS requirement) are one, answering
//     to all their hosts, named after the most specific host;
//   - virtual hosts in name order; with none, a "blackhole" one (404 for everything).
func gatewayRouteConfig(ctx *Context, name string, port uint32, servers []gatewayServer) named {
	byHost := map[string]*routev3.VirtualHost{}
	vhost := func(h string) *routev3.VirtualHost {
		vh := byHost[h]
		if vh == nil {
			vh = &routev3.VirtualHost{Name: h + ":" + strconv.FormatUint(uint64(port), 10), Domains: []string{h}} // with any port: the configuration ignores them (envoyRouteConfig)
			byHost[h] = vh
		}
		return vh
	}
	built := map[string][]*routev3.Route{} // by gateway and VirtualService
	for _, s := range servers {
		redirect := s.GetTls().GetHttpsRedirect()
		for _, vs := range boundServices(ctx, s) {
			ns := vs.Resource.Meta.Namespace
			hosts := hostIntersection(serverHosts(s, ns), vs.Hosts)
			if len(hosts) == 0 {
				continue
			}
			key := s.gateway + "|" + ns + "/" + vs.Resource.Meta.Name
			routes, ok := built[key]
			if !ok {
				routes = httpRoutes(ctx, vs.Resource, port, s.gateway, s.Tls != nil)
				built[key] = routes
			}
			if len(routes) == 0 {
				continue
			}
			for _, h := range hosts {
				vh := vhost(h)
				vh.Routes = append(vh.Routes, routes...)
				if redirect {
					vh.RequireTls = routev3.VirtualHost_ALL
				}
			}
		}
		if redirect {
			for _, h := range s.Hosts {
				if _, host, ok := strings.Cut(h, "/"); ok {
					h = host
				}
				vhost(strings.ToLower(h)).RequireTls = routev3.VirtualHost_ALL
			}
		}
	}
	vhosts := collapseVirtualHosts(byHost)
	for _, vh := range vhosts {
		vh.Routes = catchAllLast(vh.Routes)
	}
	slices.SortStableFunc(vhosts, func(a, b *routev3.VirtualHost) int { return strings.Compare(a.Name, b.Name) })
	rc := envoyRouteConfig(ctx, name, vhosts)
	if len(vhosts) == 0 { // istiod's, without the proxy's header settings
		rc.VirtualHosts = []*routev3.VirtualHost{{Name: "blackhole:" + strconv.FormatUint(uint64(port), 10), Domains: []string{"*"}}}
	}
	return named{name: name, msg: rc}
}

// hostIntersection is where a gateway server's hosts and a VirtualService's meet:
// for each pair of which one admits the other, the more specific, each once, in the
// server's order.
func hostIntersection(serverHosts, vsHosts []string) []string {
	var out []string
	for _, sh := range serverHosts {
		for _, vh := range vsHosts {
			h := ""
			switch {
			case registry.HostMatches(vh, sh):
				h = sh
			case registry.HostMatches(sh, vh):
				h = vh
			default:
				continue
			}
			if h = strings.ToLower(h); !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// collapseVirtualHosts returns the virtual hosts of byHost, those with the same
// routes (the same built routes, in the same order) and TLS requirement made one, as
// istiod makes them: the most specific host's takes the others' names.
func collapseVirtualHosts(byHost map[string]*routev3.VirtualHost) []*routev3.VirtualHost {
	hosts := slices.SortedFunc(maps.Keys(byHost), moreSpecificFirst)
	var out []*routev3.VirtualHost
	for _, h := range hosts {
		vh := byHost[h]
		i := slices.IndexFunc(out, func(o *routev3.VirtualHost) bool {
			return o.RequireTls == vh.RequireTls && slices.Equal(o.Routes, vh.Routes)
		})
		if i < 0 {
			out = append(out, vh)
			continue
		}
		out[i].Domains = append(out[i].Domains, vh.Domains...)
	}
	return out
}

// moreSpecificFirst orders host names as istiod does: names before wildcards, then
// longest first, then alphabetically.
func moreSpecificFirst(a, b string) int {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		if bw {
			return -1
		}
		return 1
	}
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

// catchAllLast moves the routes that match every request (a path prefix of "/" or
// a regular expression of ".*", and nothing else) after the others, keeping the
// order within each group, as istiod orders a gateway's virtual host.
func catchAllLast(routes []*routev3.Route) []*routev3.Route {
	var some, all []*routev3.Route
	for _, r := range routes {
		m := r.GetMatch()
		catchAll := (m.GetPrefix() == "/" || m.GetPathSeparatedPrefix() == "/" || m.GetSafeRegex().GetRegex() == ".*") &&
			len(m.GetHeaders()) == 0 && len(m.GetQueryParameters()) == 0 && len(m.GetDynamicMetadata()) == 0
		if catchAll {
			all = append(all, r)
		} else {
			some = append(some, r)
		}
	}
	return append(some, all...)
}
