package xds

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	originalsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// An Envoy sidecar's inbound side is Istio's: traffic to the workload is redirected
// (by iptables) to the virtual inbound listener on 15006, which recovers the original
// destination and picks a filter chain by its port. Ports of the services that select
// the workload get chains of their own: HTTP ports an HTTP connection manager (RBAC,
// then to the application), other ports a TCP proxy after network RBAC, ports of no
// given protocol both (below). Every other port gets the passthrough chains, which
// are those of a port of no given protocol, to wherever the connection was going; a
// port the workload's PeerAuthentication sets a mode for gets them under that mode.
// Which chains exist per port says what its PeerAuthentication mode accepts:
//
//	STRICT      TLS                          -> mTLS terminated
//	PERMISSIVE  TLS offering the mesh's ALPN -> mTLS terminated
//	            other TLS                    -> passed through to the application
//	            plaintext                    -> to the application
//	DISABLE     anything                     -> to the application
//
// A port of no given protocol gets both: what the HTTP inspector finds to be
// plaintext HTTP/1.1 or h2c, and mTLS whose ALPN says it carries HTTP (Istio's
// sidecars send istio-http/1.0, istio-http/1.1 or istio-h2 for HTTP they detected),
// goes through the HTTP connection manager; everything else is TCP, as in Istio.
//
// A connection no chain accepts (plaintext under STRICT) is closed. Connections go on
// to the workload at their original destination, from 127.0.0.6 (the address
// istio-init's rules let out without redirecting it back).
//
// A Sidecar with ingress listeners names the ports itself, each with where its traffic
// goes (defaultEndpoint), instead of the services' ports; one with tls terminates TLS
// with the certificates it names, for clients outside the mesh, in place of the mTLS
// PeerAuthentication would ask for.
//
// The services of a workload are those of its namespace that select it by its labels
// (workloadSelector), and those that list an endpoint at its address inline (a
// ServiceEntry's endpoints, a registry without selectors), on the ports that
// endpoint names, as istiod finds them by the sidecar's IP: such proxies are a
// class of their own (Proxy.AddressServices).

const (
	virtualInbound            = "virtualInbound"
	virtualInboundPort        = 15006
	inboundPassthroughCluster = "InboundPassthroughCluster"
)

// inboundPort is a port of the workload that gets chains of its own.
type inboundPort struct {
	number      uint32
	http, http2 bool
	sniffed     bool // no protocol given: HTTP detected, the rest TCP
	// passthrough is set for a port only a PeerAuthentication names: its chains
	// are the passthrough chains of its mode, to InboundPassthroughCluster.
	passthrough bool
	// endpoint is where a Sidecar ingress listener sends the port's traffic
	// (defaultEndpoint); "" for the connection's original destination.
	endpoint string
	// pool is the Sidecar ingress listener's connection pool, ahead of the Sidecar's
	// inboundConnectionPool.
	pool *networking.ConnectionPoolSettings
	// tls is the Sidecar ingress listener's TLS: the port terminates it with the
	// certificates it names, for clients outside the mesh, instead of mTLS.
	tls *networking.ServerTLSSettings
	// bind is set for a Sidecar ingress listener with captureMode NONE: its chains
	// are a listener of their own, bound on this address and the port, for traffic
	// not redirected to the virtual inbound listener (a VM without iptables).
	bind string
	// address is the address a Sidecar ingress listener's chains are named by
	// (chainNames): its bind, else the proxy's unicast address, else the wildcard.
	address string
	// service is the service whose port this is (for a Sidecar ingress listener,
	// the one whose workload port it is, if any), and servicePort its port (the
	// Sidecar ingress listener's); sidecar is "<name>.<namespace>" of the Sidecar of
	// an ingress listener. They name the port's statistics (tcpStatPrefix,
	// clusterStatName).
	service     *registry.Service
	servicePort registry.Port
	sidecar     string
}

// host names the port's requests in traces: its Sidecar's "<name>.<namespace>" for
// a Sidecar ingress listener, else its service's host, "" for none (the
// passthrough chains), as istiod names them.
func (p inboundPort) host() string {
	switch {
	case p.sidecar != "":
		return p.sidecar
	case p.service != nil:
		return p.service.Hostname
	}
	return ""
}

// chainNames are the names of the port's filter chains, for TCP and for HTTP, as
// istiod names them (and EnvoyFilters match them): the virtual inbound listener's
// passthrough names for a port only a PeerAuthentication names, else
// "<address>_<port>" for every chain of the port, the address a Sidecar ingress
// listener's (address) or the proxy's wildcard.
func (port inboundPort) chainNames(ctx *Context) (tcp, http string) {
	if port.passthrough {
		return virtualInbound, virtualInbound + "-catchall-http"
	}
	n := cmp.Or(port.address, ctx.Proxy.wildcard()) + "_" + strconv.FormatUint(uint64(port.number), 10)
	return n, n
}

// inboundPorts returns the workload's ports with chains of their own, sorted.
func inboundPorts(ctx *Context) []inboundPort {
	return derived(ctx, "inbound-ports", func() []inboundPort { return buildInboundPorts(ctx) })
}

func buildInboundPorts(ctx *Context) []inboundPort {
	p := ctx.Proxy
	byNumber := map[uint32]inboundPort{}
	ingress := sidecarIngress(ctx)
	if len(ingress) == 0 && p.InterceptionNone {
		// Nothing redirects connections to the proxy, and listeners on the services'
		// ports would take them from the application: without ingress listeners
		// saying where, no inbound side, as in Istio.
		return nil
	}
	for _, ip := range ingress {
		byNumber[ip.number] = ip
	}
	for _, svc := range ctx.Snapshot.Services() {
		if len(ingress) > 0 {
			break // a Sidecar's ingress listeners replace the services' ports, as in Istio
		}
		if !selectsWorkload(svc, p) {
			continue
		}
		for _, port := range svc.Ports {
			n := workloadPort(ctx, svc, port)
			if _, taken := byNumber[n]; !taken && n != virtualInboundPort {
				byNumber[n] = inboundPort{number: n, http: isHTTP(port), http2: isHTTP2(port), sniffed: isSniffed(port), service: svc, servicePort: port}
			}
		}
	}
	for _, n := range peerAuthPorts(ctx.Snapshot, p.Namespace, p.Labels) {
		if _, taken := byNumber[n]; !taken && n != virtualInboundPort {
			byNumber[n] = inboundPort{number: n, sniffed: true, passthrough: true}
		}
	}
	out := make([]inboundPort, 0, len(byNumber))
	for _, ip := range byNumber {
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

// selectsWorkload reports whether svc sends its traffic to the workload of proxy
// p: a service of its namespace whose selector its labels match, or without a
// selector, listing an endpoint at its address.
func selectsWorkload(svc *registry.Service, p *Proxy) bool {
	if svc.Namespace != p.Namespace {
		return false
	}
	if svc.Selector == nil {
		return p.AddressServices[svc.Hostname] != nil
	}
	return len(svc.Selector) > 0 && registry.LabelsMatch(p.Labels, svc.Selector)
}

// sidecarIngress returns the ports the ingress listeners of the Sidecar that scopes
// the proxy declare, with where each sends its traffic. One with captureMode NONE,
// or without a capture mode on a proxy without interception, binds its port; one an
// unprivileged proxy cannot bind (below 1024) is reported and left out.
func sidecarIngress(ctx *Context) []inboundPort {
	if ctx.sidecar == nil {
		return nil
	}
	var out []inboundPort
	for i, in := range ctx.sidecar.Spec.(*networking.Sidecar).Ingress {
		port := registry.Port{Number: in.GetPort().GetNumber(), Name: in.GetPort().GetName(), Protocol: in.GetPort().GetProtocol()}
		ip := inboundPort{number: port.Number, http: isHTTP(port), http2: isHTTP2(port), sniffed: isSniffed(port),
			endpoint: in.DefaultEndpoint, pool: in.ConnectionPool, tls: in.Tls,
			service: workloadService(ctx, port.Number), servicePort: port, sidecar: ctx.sidecar.Meta.Name + "." + ctx.sidecar.Meta.Namespace}
		// Istio's default: the proxy's unicast address, else the wildcard.
		ip.address = cmp.Or(in.Bind, ctx.Proxy.UnicastIP, ctx.Proxy.wildcard())
		if in.CaptureMode == networking.CaptureMode_NONE || (ctx.Proxy.InterceptionNone && in.CaptureMode == networking.CaptureMode_DEFAULT) {
			ip.bind = ip.address
			if ctx.Proxy.Unprivileged && ip.number < 1024 {
				where := fmt.Sprintf("Sidecar %s/%s spec.ingress[%d]", ctx.sidecar.Meta.Namespace, ctx.sidecar.Meta.Name, i)
				ctx.skip(where, fmt.Errorf("an unprivileged proxy cannot bind port %d; left out", ip.number))
				continue
			}
		}
		out = append(out, ip)
	}
	return out
}

// workloadService is the first service that sends its traffic to the workload at
// port n, nil if none does.
func workloadService(ctx *Context, n uint32) *registry.Service {
	for _, svc := range ctx.Snapshot.Services() {
		if !selectsWorkload(svc, ctx.Proxy) {
			continue
		}
		for _, port := range svc.Ports {
			if workloadPort(ctx, svc, port) == n {
				return svc
			}
		}
	}
	return nil
}

// workloadPort is the port the workload serves a service port on: what the
// service's endpoint at its address says (a service without a selector), or its
// WorkloadEntries with the workload's labels, else the target port.
func workloadPort(ctx *Context, svc *registry.Service, port registry.Port) uint32 {
	if n, ok := ctx.Proxy.AddressServices[svc.Hostname][port.Number]; ok && svc.Selector == nil {
		return n
	}
	for _, w := range ctx.Snapshot.Endpoints(svc) {
		if w.Namespace == ctx.Proxy.Namespace && registry.LabelsMatch(ctx.Proxy.Labels, w.Labels) {
			return w.PortFor(port)
		}
	}
	return (&registry.Workload{}).PortFor(port)
}

// inboundListeners builds the virtual inbound listener of an Envoy sidecar, and a
// listener of its own for each port whose Sidecar ingress listener binds one
// (captureMode NONE), named "<bind>_<port>" as in Istio.
func inboundListeners(ctx *Context) (virtual *listenerv3.Listener, bound []*listenerv3.Listener) {
	p := ctx.Proxy
	chains := []*listenerv3.FilterChain{{
		// Connections to 15006 itself would loop.
		Name:             virtualInbound + "-blackhole",
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(virtualInboundPort)},
		Filters:          tcpTelemetry(ctx, classInbound, true, loopBlackhole()),
	}}
	for _, port := range inboundPorts(ctx) {
		mode := peerAuthMode(ctx.Snapshot, ctx.RootNamespace, p.Namespace, p.Labels, port.number)
		name, httpName := port.chainNames(ctx)
		prefix := port.httpStatPrefix(ctx.Proxy.wildcard())
		cluster := port.cluster()
		tcp := tcpTelemetry(ctx, classInbound, true, append(rbacNetworkFilters(ctx, p.Namespace, p.Labels),
			tcpStack(port.servicePort, namedTCPProxy(ctx, port.tcpStatPrefix(ctx), cluster, accessLogsFor(ctx).server))...)...)
		app, alpn := tcp, alpnServerTCP // what the port's protocol gets, TLS terminated or plaintext
		if port.http {
			app, alpn = withInboundMX(ctx, inboundHTTP(ctx, port.servicePort.Number, port.host(), cluster, prefix)), alpnServerHTTP
		}
		var portChains []*listenerv3.FilterChain
		switch {
		case port.tls != nil:
			portChains = []*listenerv3.FilterChain{{Name: name, TransportSocket: serverTLS(ctx, port.tls, port.http), Filters: app,
				FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port.number), TransportProtocol: "tls"}}}
		case port.sniffed:
			portChains = sniffedInboundChains(ctx, mode, name, httpName, port.number, withInboundMX(ctx, inboundHTTP(ctx, port.servicePort.Number, port.host(), cluster, prefix)), tcp)
		default:
			tlsPassed := tcp
			if port.http {
				tlsPassed = nil // TLS not the mesh's is no HTTP: closed, as in Istio
			}
			portChains = inboundChains(ctx, mode, name, port.number, app, tlsPassed, app, alpn)
		}
		if port.sidecar != "" {
			for _, fc := range portChains {
				fc.Metadata = configMetadata(ctx.sidecar) // as istiod marks a Sidecar ingress listener's chains
			}
		}
		if port.bind == "" {
			chains = append(chains, portChains...)
			continue
		}
		lname := port.bind + "_" + strconv.FormatUint(uint64(port.number), 10)
		l := &listenerv3.Listener{
			Name:                                 lname,
			Address:                              socketAddress(port.bind, port.number),
			ListenerFilters:                      []*listenerv3.ListenerFilter{tlsInspector()},
			ListenerFiltersTimeout:               durationpb.New(0), // the TLS inspector waits as long as the client, as in Istio
			ContinueOnListenerFiltersTimeout:     true,
			FilterChains:                         portChains,
			AccessLog:                            accessLogsFor(ctx).serverListener,
			TrafficDirection:                     corev3.TrafficDirection_INBOUND,
			MaxConnectionsToAcceptPerSocketEvent: acceptPerSocketEvent(),
		}
		if port.sniffed && port.tls == nil {
			detectHTTP(ctx, l)
		}
		bound = append(bound, l)
	}
	mode := peerAuthMode(ctx.Snapshot, ctx.RootNamespace, p.Namespace, p.Labels, 0)
	pass := inboundPort{passthrough: true}
	passthrough := tcpTelemetry(ctx, classInbound, true, append(rbacNetworkFilters(ctx, p.Namespace, p.Labels),
		namedTCPProxy(ctx, pass.tcpStatPrefix(ctx), inboundPassthroughCluster, accessLogsFor(ctx).server))...)
	httpPassthrough := inboundHTTP(ctx, 0, "", inboundPassthroughCluster, pass.httpStatPrefix(ctx.Proxy.wildcard()))
	tcpName, httpName := pass.chainNames(ctx)
	chains = append(chains, sniffedInboundChains(ctx, mode, tcpName, httpName, 0, withInboundMX(ctx, httpPassthrough), passthrough)...)
	virtual = &listenerv3.Listener{
		Name:            virtualInbound,
		Address:         socketAddress(p.wildcard(), virtualInboundPort),
		Transparent:     p.transparent(),
		ListenerFilters: append(originalAddressFilters(p), inboundInspectors(chains)...),
		// The inspectors wait as long as the client takes, unless the mesh config's
		// protocolDetectionTimeout says otherwise, as in Istio.
		ListenerFiltersTimeout:               cmp.Or(ctx.Mesh.GetProtocolDetectionTimeout(), durationpb.New(0)),
		ContinueOnListenerFiltersTimeout:     true,
		FilterChains:                         chains,
		AccessLog:                            accessLogsFor(ctx).serverListener,
		TrafficDirection:                     corev3.TrafficDirection_INBOUND,
		MaxConnectionsToAcceptPerSocketEvent: acceptPerSocketEvent(),
	}
	return virtual, bound
}

// originalAddressFilters are the virtual inbound listener's first listener
// filters: original_dst, which finds the port a connection was meant for, and for
// a TPROXY proxy original_src, which connects to the application from the client's
// address (marking the packets 1337, which Istio's iptables rules route back to the
// proxy), as istiod has them.
func originalAddressFilters(p *Proxy) []*listenerv3.ListenerFilter {
	fs := []*listenerv3.ListenerFilter{
		{Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})}},
	}
	if p.InterceptionTPROXY {
		fs = append(fs, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.original_src",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originalsrcv3.OriginalSrc{Mark: 1337})}})
	}
	return fs
}

// inboundInspectors are the virtual inbound listener's inspectors, as istiod derives
// them from its chains: the TLS inspector if some chain matches TLS, on the ports
// whose chains do (port 0: those of no port, which decide whether the rest are in
// or out); the HTTP inspector, after it, if some chain matches plaintext HTTP's
// ALPN, off on every port none of whose chains does. Without the TLS inspector
// every connection is raw_buffer to the chains.
func inboundInspectors(chains []*listenerv3.FilterChain) []*listenerv3.ListenerFilter {
	type needs struct{ tls, http bool }
	byPort := map[uint32]needs{}
	for _, c := range chains {
		m := c.GetFilterChainMatch()
		port := m.GetDestinationPort().GetValue()
		n := byPort[port]
		n.tls = n.tls || m.GetTransportProtocol() == "tls"
		n.http = n.http || slices.ContainsFunc(m.GetApplicationProtocols(), func(p string) bool { return p == "http/1.1" || p == "h2c" })
		byPort[port] = n
	}
	ports := slices.Sorted(maps.Keys(byPort))
	where := func(keep func(port uint32, n needs) bool) []uint32 {
		var out []uint32
		for _, p := range ports {
			if keep(p, byPort[p]) {
				out = append(out, p)
			}
		}
		return out
	}
	var out []*listenerv3.ListenerFilter
	if len(where(func(_ uint32, n needs) bool { return n.tls })) > 0 {
		f := tlsInspector()
		if byPort[0].tls {
			if off := where(func(p uint32, n needs) bool { return p != 0 && !n.tls }); len(off) > 0 {
				f.FilterDisabled = portsMatch(off)
			}
		} else if on := where(func(p uint32, n needs) bool { return p != 0 && n.tls }); len(on) > 0 {
			f.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: portsMatch(on)}}
		}
		out = append(out, f)
	}
	if len(where(func(_ uint32, n needs) bool { return n.http })) > 0 {
		f := httpInspector()
		if off := where(func(_ uint32, n needs) bool { return !n.http }); len(off) > 0 {
			f.FilterDisabled = portsMatch(off)
		}
		out = append(out, f)
	}
	return out
}

// What an inbound mTLS chain offers a client in ALPN, as istiod's: HTTP's versions,
// and for TCP Istio's metadata exchange first (which a client that offers it, as
// Istio's sidecars do, picks).
var (
	alpnServerHTTP = []string{"h2", "http/1.1"}
	alpnServerTCP  = []string{"istio-peer-exchange", "h2", "http/1.1"}
)

// alpnMeshHTTP is the ALPN of mTLS from an Istio sidecar that detected HTTP.
var alpnMeshHTTP = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}

// sniffedInboundChains returns the filter chains of a port of no given protocol (0:
// the passthrough chains, for every port without chains of their own) under mode, as
// Istio's: http for HTTP (detected in plaintext, or named by the mTLS ALPN), tcp for
// the rest; under DISABLE, plaintext only (TLS is what a listener without a TLS
// inspector takes for plaintext too, or falls to the catch-all chains).
func sniffedInboundChains(ctx *Context, mode mtlsMode, tcpName, httpName string, port uint32, http, tcp []*listenerv3.Filter) []*listenerv3.FilterChain {
	chain := func(name, transport string, alpn []string, filters []*listenerv3.Filter, ts *corev3.TransportSocket) *listenerv3.FilterChain {
		m := &listenerv3.FilterChainMatch{TransportProtocol: transport, ApplicationProtocols: alpn}
		if port != 0 {
			m.DestinationPort = wrapperspb.UInt32(port)
		}
		return &listenerv3.FilterChain{Name: name, Filters: filters, TransportSocket: ts, FilterChainMatch: m}
	}
	httpMTLS := chain(httpName, "tls", alpnMeshHTTP, http, downstreamMTLS(ctx.Mesh, ctx.trustDomains(), ctx.certSource(), alpnServerHTTP...))
	tcpMTLS := downstreamMTLS(ctx.Mesh, ctx.trustDomains(), ctx.certSource(), alpnServerTCP...)
	httpPlain := chain(httpName, "raw_buffer", alpnPlaintextHTTP, http, nil)
	tcpPlain := chain(tcpName, "raw_buffer", nil, tcp, nil)
	tcpPassed := chain(tcpName, "tls", nil, tcp, nil)
	switch mode {
	case mtlsStrict:
		return []*listenerv3.FilterChain{httpMTLS, chain(tcpName, "tls", nil, tcp, tcpMTLS)}
	case mtlsDisable:
		return []*listenerv3.FilterChain{httpPlain, tcpPlain}
	}
	return []*listenerv3.FilterChain{httpMTLS, chain(tcpName, "tls", alpnMesh, tcp, tcpMTLS), tcpPassed, httpPlain, tcpPlain}
}

// inboundChains returns the filter chains of a port of HTTP or TCP under mode:
// terminated serves mTLS connections (offering alpn), tlsPassed TLS connections that
// are not the mesh's (PERMISSIVE; nil: no chain takes them), plain plaintext ones.
func inboundChains(ctx *Context, mode mtlsMode, name string, port uint32, terminated, tlsPassed, plain []*listenerv3.Filter, alpn []string) []*listenerv3.FilterChain {
	match := func(transport string, alpn ...string) *listenerv3.FilterChainMatch {
		return &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: transport, ApplicationProtocols: alpn}
	}
	mtls := func(m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
		return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: terminated, TransportSocket: downstreamMTLS(ctx.Mesh, ctx.trustDomains(), ctx.certSource(), alpn...)}
	}
	switch mode {
	case mtlsStrict:
		return []*listenerv3.FilterChain{mtls(match("tls"))}
	case mtlsDisable:
		return []*listenerv3.FilterChain{{Name: name, FilterChainMatch: match("raw_buffer"), Filters: plain}}
	}
	chains := []*listenerv3.FilterChain{mtls(match("tls", alpnMeshInbound...))}
	if tlsPassed != nil {
		chains = append(chains, &listenerv3.FilterChain{Name: name, FilterChainMatch: match("tls"), Filters: tlsPassed})
	}
	return append(chains, &listenerv3.FilterChain{Name: name, FilterChainMatch: match("raw_buffer"), Filters: plain})
}

// inboundHTTP is the HTTP connection manager of an inbound HTTP port, its virtual
// host named by the service's port, as istiod names it (0: the HTTP detected on
// ports without chains of their own, or on ports only a PeerAuthentication names): RBAC, then every request to the
// application by cluster, with the client's certificate identity in
// x-forwarded-client-cert (as the ProxyConfig's proxyHeaders say). Its spans are
// named by host and port (inboundPort.host).
func inboundHTTP(ctx *Context, port uint32, host, cluster, prefix string) *listenerv3.Filter {
	ph := headersFor(ctx, classInbound)
	name := "inbound|http|" + strconv.FormatUint(uint64(port), 10)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: prefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:             cluster,
			ValidateClusters: wrapperspb.Bool(false),
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    name,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:      "default",
					Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Decorator: &routev3.Decorator{Operation: traceOperation(host, port)},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						// No timeout: the application's business, a gRPC client's
						// deadline aside, as in Istio.
						Timeout:           durationpb.New(0),
						MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(0), GrpcTimeoutHeaderMax: durationpb.New(0)},
						// A request the application's socket reset before taking it (the
						// application starting or going) is tried again, as in Istio.
						RetryPolicy: &routev3.RetryPolicy{RetryOn: "reset-before-request", NumRetries: wrapperspb.UInt32(2)},
					}},
				}},
			}},
		}},
		HttpFilters:                 envoyHTTPFilters(ctx, classInbound, rbacFilters(ctx, ctx.Proxy.Namespace, ctx.Proxy.Labels), false),
		AccessLog:                   accessLogsFor(ctx).server,
		Tracing:                     tracingFor(ctx).server,
		RequestIdExtension:          tracingFor(ctx).serverRequestID,
		ForwardClientCertDetails:    ph.forwardClientCert,
		SetCurrentClientCertDetails: ph.currentCert,
	}
	ph.apply(hcm)
	return envoyConnectionManager(ctx, hcm)
}

// cluster is the cluster the port's traffic leaves by.
func (p inboundPort) cluster() string {
	if p.passthrough {
		return inboundPassthroughCluster
	}
	return inboundClusterName(p.number)
}

// httpStatPrefix is the stat prefix of the port's HTTP connection managers (under the
// proxy's wildcard address when the port binds none), as
// istiod names them.
func (p inboundPort) httpStatPrefix(wildcard string) string {
	if p.passthrough {
		return inboundPassthroughCluster + statDelimiter
	}
	return "inbound_" + cmp.Or(p.bind, wildcard) + "_" + strconv.FormatUint(uint64(p.number), 10) + statDelimiter
}

// tcpStatPrefix is the stat prefix of the port's TCP proxies: its cluster's name, or
// the mesh's inboundClusterStatName for its service's port, as istiod expands it
// for inbound TCP proxies (the host of a Sidecar ingress listener's its Sidecar's;
// the passthrough chains' no service, port 0 named virtualInbound; %TARGET_PORT%
// left as written).
func (p inboundPort) tcpStatPrefix(ctx *Context) string {
	pattern := ctx.Mesh.GetInboundClusterStatName()
	switch {
	case pattern == "":
		return p.cluster()
	case p.passthrough:
		return statName{portName: virtualInbound}.expand(pattern)
	case p.sidecar != "":
		return statName{host: p.sidecar, port: p.servicePort.Number, portName: p.servicePort.Name}.expand(pattern)
	}
	return statName{svc: p.service, host: p.service.Hostname, port: p.servicePort.Number, portName: p.servicePort.Name}.expand(pattern)
}

// clusterStatName is the alternative stat name of the port's cluster: its name, or
// the mesh's inboundClusterStatName for its service's port (for a Sidecar ingress
// listener with no service at its port, the Sidecar's name as host), delimited.
func (p inboundPort) clusterStatName(ctx *Context) string {
	pattern := ctx.Mesh.GetInboundClusterStatName()
	if pattern == "" {
		return p.cluster() + statDelimiter
	}
	n := statName{svc: p.service, host: p.sidecar, port: p.servicePort.Number, portName: p.servicePort.Name, target: strconv.FormatUint(uint64(p.number), 10)}
	if p.service != nil {
		n.host = p.service.Hostname
	}
	return n.expand(pattern) + statDelimiter
}

// envoyServerName is the server header of the responses an inbound or gateway
// connection manager sends back, istiod's (outbound ones keep Envoy's, "envoy", as
// in Istio).
const envoyServerName = "istio-envoy"

func inboundClusterName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// inboundClusters are the clusters inbound traffic leaves an Envoy sidecar by: one per
// port with chains of its own and the passthrough cluster, each to the connection's
// original destination from the proxy's inboundBind address.
func inboundClusters(ctx *Context) []named {
	passthrough := originalDstCluster(ctx, inboundPassthroughCluster)
	passthrough.CircuitBreakers, passthrough.TypedExtensionProtocolOptions = defaultCircuitBreakers(), passthroughProtocol()
	passthrough.AltStatName = passthroughCluster + statDelimiter // istiod's
	if ctx.Proxy.IPFamilies == "46" {
		// A dual-stack workload may be reached over either: Envoy binds ::6 for an
		// IPv6 destination, as istiod has it.
		passthrough.UpstreamBindConfig.ExtraSourceAddresses = []*corev3.ExtraSourceAddress{{Address: socketAddress("::6", 0).GetSocketAddress()}}
	}
	applyMeshKeepalive(ctx, passthrough, ctx.Mesh.GetDefaultTrafficPolicy().GetConnectionPool())
	preserveCase := headersFor(ctx, classInbound).preserveCase
	if preserveCase {
		preserveClusterCase(passthrough, true)
	}
	out := []named{{name: inboundPassthroughCluster, msg: passthrough}}
	var pool *networking.ConnectionPoolSettings
	if ctx.sidecar != nil {
		pool = ctx.sidecar.Spec.(*networking.Sidecar).InboundConnectionPool
	}
	for _, port := range inboundPorts(ctx) {
		if port.passthrough {
			continue
		}
		c := inboundCluster(ctx, port)
		c.CircuitBreakers = defaultCircuitBreakers()
		c.AltStatName = port.clusterStatName(ctx)
		if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
			// Its one destination is the workload: the connection pool to it is kept
			// for good rather than cleaned up every 5 s, as in Istio.
			c.CleanupInterval = &durationpb.Duration{Seconds: (math.MaxInt64 - 999_999_999) / 1_000_000_000}
		}
		switch {
		case port.http2:
			c.TypedExtensionProtocolOptions = http2Upstream()
		case port.sniffed:
			c.TypedExtensionProtocolOptions = downstreamProtocol()
		}
		// The connection pool a DestinationRule sets for the service's port applies
		// to the server's side too, so that it takes what its clients may send (as in
		// Istio); a Sidecar's ingress listener or inbound pool overrides it.
		var drPool *networking.ConnectionPoolSettings
		if port.service != nil {
			dr := ctx.inboundDestinationRule(port.service)
			if dr != nil {
				tp, _ := portPolicy(dr.Spec.(*networking.DestinationRule).GetTrafficPolicy(), port.servicePort.Number)
				drPool = tp.GetConnectionPool()
			}
			if ctx.Proxy.IstioProxy {
				inboundClusterMetadata(ctx, c, port, dr)
			}
		}
		cp := cmp.Or(port.pool, pool, drPool, ctx.Mesh.GetDefaultTrafficPolicy().GetConnectionPool())
		applyConnectionPool(c, cp)
		applyMeshKeepalive(ctx, c, cp)
		if preserveCase {
			preserveClusterCase(c, (port.http && !port.http2) || port.sniffed)
		}
		out = append(out, named{name: c.Name, msg: c})
	}
	return out
}

// inboundCluster is the cluster a port's traffic leaves by: to the connection's
// original destination, or where a Sidecar ingress listener says: the workload's own
// address at another port (0.0.0.0:PORT), a loopback address (127.0.0.1:PORT) or a
// unix socket.
func inboundCluster(ctx *Context, port inboundPort) *clusterv3.Cluster {
	name := inboundClusterName(port.number)
	if port.endpoint == "" && ctx.Mesh.GetInboundTrafficPolicy().GetMode() == meshconfig.MeshConfig_InboundTrafficPolicy_LOCALHOST {
		// The mesh's inboundTrafficPolicy LOCALHOST: to the application on loopback,
		// for applications that listen on localhost only, as in Istio.
		port.endpoint = net.JoinHostPort(ctx.Proxy.loopback(), strconv.FormatUint(uint64(port.number), 10))
	}
	if port.endpoint == "" {
		return originalDstCluster(ctx, name)
	}
	var addr *corev3.Address
	if strings.HasPrefix(port.endpoint, unixPrefix) {
		addr = envoyAddress(port.endpoint, 0)
	} else {
		host, portText, _ := net.SplitHostPort(port.endpoint) // checked by api
		n, _ := strconv.ParseUint(portText, 10, 32)
		if host == "" || host == "0.0.0.0" || host == "::" {
			c := originalDstCluster(ctx, name)
			c.LbConfig = &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
				UpstreamPortOverride: wrapperspb.UInt32(uint32(n))}}
			return c
		}
		switch { // loopback as the proxy has it, as in Istio: IPv4's unless it has none
		case host == "127.0.0.1":
			host = ctx.Proxy.loopback()
		case host == "::1" && ctx.Proxy.IPFamilies == "4":
			host = "127.0.0.1"
		}
		addr = socketAddress(host, uint32(n))
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout(ctx)),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}}}},
		}}},
	}
}

func originalDstCluster(ctx *Context, name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(connectTimeout(ctx)),
		UpstreamBindConfig:   &corev3.BindConfig{SourceAddress: socketAddress(ctx.Proxy.inboundBind(), 0).GetSocketAddress()},
	}
}
