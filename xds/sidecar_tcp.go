package xds

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	mongov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/mongo_proxy/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// The outbound listeners of an Envoy sidecar other than the HTTP ones bound to an
// address of their own: a listener per address and port (tcpListener), whose chains
// go by SNI and destination subnets to TCP proxies, and which detects plaintext HTTP
// where the port's protocol is HTTP or not given (detectHTTP).

// addSubnet adds a chain for the connections to a range of service addresses, to
// the service's cluster (on a TLS port, for its host name as SNI too).
func (l *tcpListener) addSubnet(ctx *Context, svc *registry.Service, port registry.Port, subnet string) {
	var names []string
	if isTLS(port) {
		names = []string{svc.Hostname}
	}
	l.chain(nil, names, []string{subnet}, tcpStack(port, serviceTCPProxy(ctx, svc, port.Number, clusterName(svc.Hostname, port.Number, ""))))
}

// tcpListener is an outbound listener at an address and port: the chains of the TCP
// services there, and an HTTP chain where HTTP is detected (httpRoute).
// Services without an address of their own share 0.0.0.0_<port>. As in Istio:
//
//   - On a TLS or HTTPS port, each tls route match of a service's VirtualService that
//     holds for the proxy is a filter chain by the SNI the client sends (and the
//     destination subnets the match names); a service whose VirtualService has no
//     such match gets a chain by its host name on a shared listener, or the
//     listener's plain chain on its own address. A service with tls matches has no
//     chain besides them: a connection none takes goes nowhere.
//   - On other ports the first service of the listener has it: its VirtualService's
//     tcp routes in order, up to the first whose match holds with no destination
//     subnets (or has no match), which takes what no subnet chain does; the routes
//     before it whose matches all name destination subnets are chains by those
//     subnets. Without such a route the service's cluster takes the rest.
type tcpListener struct {
	name       string
	ip         string
	port       uint32
	bindToPort bool                      // a port of its own (captureMode NONE), not handed connections
	extra      []string                  // further addresses (Proxy.otherFamily)
	chains     []*listenerv3.FilterChain // by SNI and/or destination subnets (Envoy takes the most specific)
	taken      map[string]bool           // the matches of chains, "name|subnets"
	plain      []*listenerv3.Filter      // for connections no chain takes
	plainFrom  *api.Resource             // the VirtualService plain's route is of, if any
	// httpRoute, if set, is the route configuration of the plaintext HTTP the
	// listener detects (a port of HTTP or of no given protocol).
	httpRoute string
}

// tcpListeners are the outbound listeners of TCP (and detected) ports, by name.
type tcpListeners map[string]*tcpListener

// get returns the listener of ip (anyAddress for the proxy's wildcard) and port,
// created if there is none yet; b is the port's Sidecar binding, if bound.
func (ls tcpListeners) get(ctx *Context, ip string, port uint32, b egressBinding, bound bool) *tcpListener {
	name := ctx.listenerIP(ip) + "_" + strconv.FormatUint(uint64(port), 10)
	l := ls[name]
	if l == nil {
		l = &tcpListener{name: name, ip: ip, port: port, taken: map[string]bool{}, bindToPort: bound && b.bindToPort}
		switch {
		case bound:
			l.extra = b.extra
		case ip == anyAddress:
			l.extra = ctx.Proxy.otherFamily(true, false)
		}
		ls[name] = l
	}
	return l
}

// sniffedRouteName is the route configuration of the HTTP a listener at ip detects
// on a port of host whose protocol is not given: the host's own ("<host>:<port>") at
// an address of the service, the port's shared one on 0.0.0.0, as in Istio.
func sniffedRouteName(ip, host string, port uint32) string {
	if ip == anyAddress {
		return strconv.FormatUint(uint64(port), 10)
	}
	return listenerName(host, port)
}

func (l *tcpListener) add(ctx *Context, svc *registry.Service, port registry.Port) {
	vs := virtualServiceFor(ctx, svc.Hostname)
	cluster := clusterName(svc.Hostname, port.Number, "")
	if isTLS(port) {
		if l.addTLSRoutes(ctx, vs, port) {
			return
		}
		if l.ip == anyAddress {
			l.chain(nil, []string{svc.Hostname}, nil, tcpStack(port, serviceTCPProxy(ctx, svc, port.Number, cluster)))
		} else if l.plain == nil {
			l.plain = tcpStack(port, serviceTCPProxy(ctx, svc, port.Number, cluster))
		}
		return
	}
	if l.plain != nil {
		return
	}
	l.addTCPRoutes(ctx, vs, port)
	if l.plain == nil {
		l.plain = tcpStack(port, serviceTCPProxy(ctx, svc, port.Number, cluster))
	}
}

// addTCPRoutes adds chains for vs's tcp routes whose matches that hold for the proxy
// on port all name destination subnets, up to the first route that takes every
// connection it sees, which becomes the plain chain.
func (l *tcpListener) addTCPRoutes(ctx *Context, vs *registry.HostRoutes, port registry.Port) {
	if vs == nil {
		return
	}
	ns := vs.Resource.Meta.Namespace
	for _, r := range vs.Resource.Spec.(*networking.VirtualService).Tcp {
		if len(r.Route) == 0 {
			continue
		}
		if len(r.Match) == 0 {
			l.plain, l.plainFrom = tcpStack(port, tcpProxyTo(ctx, vs.Resource, r.Route, port)), vs.Resource
			return
		}
		var subnets []string
		for _, m := range r.Match {
			if !meshMatchHolds(ctx.Proxy, port.Number, ns, m.Port, m.Gateways, m.SourceNamespace, m.SourceLabels) {
				continue
			}
			if len(m.DestinationSubnets) == 0 {
				l.plain, l.plainFrom = tcpStack(port, tcpProxyTo(ctx, vs.Resource, r.Route, port)), vs.Resource
				return
			}
			subnets = append(subnets, m.DestinationSubnets...)
		}
		if len(subnets) > 0 {
			l.chain(vs.Resource, nil, subnets, tcpStack(port, tcpProxyTo(ctx, vs.Resource, r.Route, port)))
		}
	}
}

// addTLSRoutes adds a chain for each tls route match of vs that holds for the proxy
// on port, and reports whether there was one.
func (l *tcpListener) addTLSRoutes(ctx *Context, vs *registry.HostRoutes, port registry.Port) bool {
	if vs == nil {
		return false
	}
	ns := vs.Resource.Meta.Namespace
	matched := false
	for _, r := range vs.Resource.Spec.(*networking.VirtualService).Tls {
		if len(r.Route) == 0 {
			continue
		}
		for _, m := range r.Match {
			if meshMatchHolds(ctx.Proxy, port.Number, ns, m.Port, m.Gateways, m.SourceNamespace, m.SourceLabels) {
				l.chain(vs.Resource, sniNames(m.SniHosts), m.DestinationSubnets, tcpStack(port, tcpProxyTo(ctx, vs.Resource, r.Route, port)))
				matched = true
			}
		}
	}
	return matched
}

// chain adds a filter chain for connections to server names (any if none) and
// destination subnets (any if none), leaving out what an earlier chain matches
// already (Envoy refuses two chains with the same match). A chain with neither would
// take everything, which is the plain chain's place. from is the VirtualService the
// chain's route is of, if any (the chain's metadata names it, as istiod's).
func (l *tcpListener) chain(from *api.Resource, names, subnets []string, filters []*listenerv3.Filter) {
	if len(names) == 0 && len(subnets) == 0 {
		return
	}
	subnets = slices.Sorted(slices.Values(subnets))
	if len(names) == 0 {
		names = []string{""} // any server name
	}
	var fresh []string
	for _, n := range names {
		if k := n + "|" + strings.Join(subnets, ","); !l.taken[k] {
			l.taken[k] = true
			fresh = append(fresh, n)
		}
	}
	if len(fresh) == 0 {
		return
	}
	m := &listenerv3.FilterChainMatch{PrefixRanges: cidrRanges(subnets)}
	if fresh[0] != "" {
		m.ServerNames = fresh
	}
	fc := &listenerv3.FilterChain{FilterChainMatch: m, Filters: filters} // unnamed, as istiod's
	if from != nil {
		fc.Metadata = configMetadata(from)
	}
	l.chains = append(l.chains, fc)
}

// cidrRanges turns destination subnets (addresses, or addresses with a prefix
// length) into Envoy's CIDR ranges.
func cidrRanges(subnets []string) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue // refused by validation
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}) // as written, as istiod
	}
	return out
}

func (l *tcpListener) build(ctx *Context) *listenerv3.Listener {
	plain := l.plain
	if plain == nil { // only SNI chains: anything else is an unknown destination
		plain = []*listenerv3.Filter{tcpProxy(ctx, cmp.Or(unknownDestinations(ctx), blackHoleCluster), accessLogsFor(ctx).client)}
	}
	lis := outboundListener(l.name, ctx.listenerIP(l.ip), l.port, tcpTelemetry(ctx, classOutbound, false, plain...))
	if l.plainFrom != nil {
		lis.FilterChains[0].Metadata = configMetadata(l.plainFrom)
	}
	lis.AdditionalAddresses = additionalAddresses(l.extra, l.port)
	if l.bindToPort {
		lis.BindToPort, lis.MaxConnectionsToAcceptPerSocketEvent = nil, acceptPerSocketEvent()
	}
	chains := l.chains
	for _, c := range chains {
		c.Filters = tcpTelemetry(ctx, classOutbound, false, c.Filters...)
		c.TransportSocketConnectTimeout = handshakeTimeout()
	}
	if l.httpRoute != "" {
		chains = append(chains, &listenerv3.FilterChain{
			FilterChainMatch:              &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: alpnPlaintextHTTP},
			Filters:                       []*listenerv3.Filter{outboundHTTP(ctx, l.name, l.httpRoute)},
			TransportSocketConnectTimeout: handshakeTimeout(),
		})
	}
	if len(chains) == 0 {
		return lis
	}
	// The catch-all chain is the default: Envoy does not go back to it once a more
	// specific criterion (a transport protocol) picked the HTTP chain.
	lis.DefaultFilterChain, lis.FilterChains = lis.FilterChains[0], chains
	if l.plain == nil {
		// Named and left unbounded as istiod's fallback chain, which EnvoyFilters match
		// by that name.
		lis.DefaultFilterChain.Name, lis.DefaultFilterChain.TransportSocketConnectTimeout = passthroughChain, nil
	}
	if slices.ContainsFunc(l.chains, func(c *listenerv3.FilterChain) bool { return len(c.FilterChainMatch.ServerNames) > 0 }) {
		lis.ListenerFilters = append(lis.ListenerFilters, tlsInspector())
	}
	if l.httpRoute != "" {
		detectHTTP(ctx, lis)
	}
	return lis
}

// alpnPlaintextHTTP is what Envoy's http_inspector calls the plaintext HTTP it
// detects, which a chain for it matches (HTTP/1.0 is left to TCP, as in Istio).
var alpnPlaintextHTTP = []string{"http/1.1", "h2c"}

// tlsInspector is Envoy's TLS inspector as istiod configures it: it reads the
// ClientHello 512 bytes at a time at first (Envoy's default is 64 KiB).
func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{InitialReadBufferSize: wrapperspb.UInt32(512)})}}
}

// detectHTTP adds Envoy's http_inspector to a listener (after any TLS inspector,
// which leaves it TLS connections), for every destination port but those given: it
// waits for the client's first bytes, which a protocol where the server speaks first
// (MySQL) never sends, so ports of a declared protocol go without it. The mesh
// config's protocolDetectionTimeout bounds the wait (Istio's default, 0, waits as
// long as the connection does).
func detectHTTP(ctx *Context, l *listenerv3.Listener, except ...uint32) {
	f := httpInspector()
	if len(except) > 0 {
		f.FilterDisabled = portsMatch(except)
	}
	l.ListenerFilters = append(l.ListenerFilters, f)
	l.ListenerFiltersTimeout = cmp.Or(ctx.Mesh.GetProtocolDetectionTimeout(), durationpb.New(0))
	l.ContinueOnListenerFiltersTimeout = true
}

func httpInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: "envoy.filters.listener.http_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspectorv3.HttpInspector{})}}
}

// portsMatch is a listener filter predicate matching connections to any of ports.
func portsMatch(ports []uint32) *listenerv3.ListenerFilterChainMatchPredicate {
	var rules []*listenerv3.ListenerFilterChainMatchPredicate
	for _, p := range ports {
		rules = append(rules, &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
			DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1}}})
	}
	if len(rules) == 1 {
		return rules[0]
	}
	return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
		OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules}}}
}

// isTLS reports whether a port carries TLS a client starts, so its SNI names the
// destination.
func isTLS(p registry.Port) bool {
	switch strings.ToUpper(p.Protocol) {
	case "TLS", "HTTPS":
		return true
	}
	return false
}

// meshMatchHolds reports whether the conditions an L4 or TLS match sets hold for proxy
// p's connections to port, under a VirtualService in namespace ns: its port, gateways
// (the mesh), source namespace and labels.
func meshMatchHolds(p *Proxy, port uint32, ns string, mPort uint32, gateways []string, sourceNS string, sourceLabels map[string]string) bool {
	return (mPort == 0 || mPort == port) && boundTo(gateways, ns, "") &&
		(sourceNS == "" || sourceNS == p.Namespace) && registry.LabelsMatch(p.Labels, sourceLabels)
}

// serviceTCPProxy forwards a connection to a service's cluster of port, with what
// its DestinationRule says of TCP proxying (tcpPolicy). Its statistics go under the
// cluster's stat name, which istiod expands here with no port name.
func serviceTCPProxy(ctx *Context, svc *registry.Service, port uint32, cluster string) *listenerv3.Filter {
	stat := outboundStatName(ctx, svc, registry.Port{Number: port}, "", cluster)
	tp := &tcpv3.TcpProxy{StatPrefix: stat, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}, AccessLog: accessLogsFor(ctx).client,
		IdleTimeout: ctx.Proxy.IdleTimeout}
	tcpPolicy(ctx, tp, svc.Hostname, "")
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

// tcpPolicy sets on a TCP proxy to host (its subset, if any) what Istio takes there
// from the host's DestinationRule: the connection pool's TCP idle timeout and
// maximum connection duration (of the top-level traffic policy only, as in Istio),
// hashing by source IP when the (subset's) load balancer hashes on it, and HTTP
// CONNECT (or POST) tunnelling to the (subset's) tunnel target.
func tcpPolicy(ctx *Context, tp *tcpv3.TcpProxy, host, subset string) {
	svc := ctx.Snapshot.Service(host, ctx.Proxy.Namespace)
	if svc == nil {
		return
	}
	dr := ctx.destinationRule(svc)
	if dr == nil {
		return
	}
	top := dr.GetTrafficPolicy()
	tp.IdleTimeout = cmp.Or(top.GetConnectionPool().GetTcp().GetIdleTimeout(), ctx.Proxy.IdleTimeout) // the proxy's where the rule sets none
	tp.MaxDownstreamConnectionDuration = top.GetConnectionPool().GetTcp().GetMaxConnectionDuration()
	lb, tunnel := top.GetLoadBalancer(), top.GetTunnel()
	if subset != "" {
		for _, s := range dr.Subsets {
			if s.Name == subset {
				if s.GetTrafficPolicy().GetLoadBalancer() != nil {
					lb = s.TrafficPolicy.LoadBalancer
				}
				tunnel = s.GetTrafficPolicy().GetTunnel()
				break
			}
		}
	}
	if lb.GetConsistentHash().GetUseSourceIp() {
		tp.HashPolicy = []*typev3.HashPolicy{{PolicySpecifier: &typev3.HashPolicy_SourceIp_{SourceIp: &typev3.HashPolicy_SourceIp{}}}}
	}
	if tunnel != nil {
		tp.TunnelingConfig = &tcpv3.TcpProxy_TunnelingConfig{
			Hostname: net.JoinHostPort(tunnel.TargetHost, strconv.FormatUint(uint64(tunnel.TargetPort), 10)),
			UsePost:  tunnel.Protocol == "POST",
		}
	}
}

// loopBlackhole closes a connection to a virtual listener's own port, which would
// otherwise come back to it without end (no idle timeout: it ends at once).
func loopBlackhole() *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(&tcpv3.TcpProxy{StatPrefix: blackHoleCluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: blackHoleCluster}})}}
}

// tcpProxy forwards a connection to cluster, its statistics under the cluster's name.
func tcpProxy(ctx *Context, cluster string, logs []*accesslogv3.AccessLog) *listenerv3.Filter {
	return namedTCPProxy(ctx, cluster, cluster, logs)
}

// tcpStack is what forwards a connection on port: the TCP proxy tcp, after the
// filter of the port's protocol where istiod puts one, Envoy's MongoDB proxy for
// MONGO (its statistics under the TCP proxy's prefix); Redis and MySQL filters are
// off in istiod by default and are not built.
func tcpStack(port registry.Port, tcp *listenerv3.Filter) []*listenerv3.Filter {
	if !strings.EqualFold(port.Protocol, "MONGO") {
		return []*listenerv3.Filter{tcp}
	}
	var tp tcpv3.TcpProxy
	if err := tcp.GetTypedConfig().UnmarshalTo(&tp); err != nil {
		return []*listenerv3.Filter{tcp}
	}
	mongo := &listenerv3.Filter{Name: "envoy.filters.network.mongo_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&mongov3.MongoProxy{StatPrefix: tp.StatPrefix})}}
	return []*listenerv3.Filter{mongo, tcp}
}

// namedTCPProxy forwards a connection to cluster, its statistics under stat, idle
// for as long as the proxy's metadata allows (IDLE_TIMEOUT; Envoy's hour without).
func namedTCPProxy(ctx *Context, stat, cluster string, logs []*accesslogv3.AccessLog) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(&tcpv3.TcpProxy{StatPrefix: stat, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}, AccessLog: logs,
			IdleTimeout: ctx.Proxy.IdleTimeout})}}
}
