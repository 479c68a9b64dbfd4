package xds

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// An Envoy sidecar gets Istio's outbound model: traffic the workload sends is
// redirected (by iptables, as istio-init sets up) to the virtual outbound listener on
// 15001, which hands each connection to the listener of its original destination
// port: 0.0.0.0_<port> for HTTP services (routes by RDS from the route configuration
// named by the port, a virtual host per service), <address>_<port> or 0.0.0.0_<port>
// for TCP services (straight to the cluster). Anything else goes out as it came
// (PassthroughCluster), unless a Sidecar says otherwise (sidecar_scope.go). Clusters and endpoints are the proxyless ones, with DNS
// services resolved by Envoy (STRICT_DNS).
//
// A port whose protocol is not given (a Kubernetes Service port named neither by
// protocol nor by appProtocol) is left for the proxy to detect, as in Istio: its
// listener inspects each plaintext connection (http_inspector), sends what speaks
// HTTP/1.1 or h2c through an HTTP connection manager (RDS "<host>:<port>", the
// service's own virtual host, on a listener at the service's address; the port's
// route configuration on 0.0.0.0) and the rest on as TCP. The wildcard listener of
// an HTTP port detects the same way, so TCP to other destinations on that port
// still goes out as TCP. Which chain takes what is Envoy's filter chain match: the
// HTTP chain names its application protocols, and the catch-all chain is the
// listener's default (Envoy does not fall back to a less specific chain once one
// criterion picked a more specific one).

const (
	virtualOutbound     = "virtualOutbound"
	virtualOutboundPort = 15001
	passthroughCluster  = "PassthroughCluster"
	blackHoleCluster    = "BlackHoleCluster"
)

// sidecarProfile builds configuration for Envoy sidecars.
func sidecarProfile() Profile {
	return Profile{sidecarListeners{}, sidecarRoutes{}, clusters{envoy: true}, endpoints{envoy: true}}
}

// isHTTP reports whether a port's protocol is routed by HTTP (Istio's protocols that
// Envoy's HTTP connection manager handles).
func isHTTP(p registry.Port) bool {
	switch strings.ToUpper(p.Protocol) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

// isUDP reports whether a port is a UDP port. Envoy proxies no UDP for a mesh, so,
// as in Istio, a UDP port gets no outbound listener, route or cluster (nor does a
// proxyless client get any); a workload's inbound chains still cover it.
func isUDP(p registry.Port) bool { return strings.EqualFold(p.Protocol, "UDP") }

// isSniffed reports whether a port's protocol is left for an Envoy sidecar to
// detect: none given, or one Istio does not know (Istio's "auto" protocol).
func isSniffed(p registry.Port) bool {
	switch strings.ToUpper(p.Protocol) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY", "HTTPS", "TLS", "TCP", "UDP", "MONGO", "MYSQL", "REDIS":
		return false
	}
	return true
}

// isHTTP2 reports whether a port's protocol needs HTTP/2 to the workload.
func isHTTP2(p registry.Port) bool {
	switch strings.ToUpper(p.Protocol) {
	case "HTTP2", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

type sidecarListeners struct{}

func (sidecarListeners) Name() string    { return "sidecar-listeners" }
func (sidecarListeners) TypeURL() string { return ListenerType }

func (sidecarListeners) Generate(ctx *Context) []named {
	vin, bound := inboundListeners(ctx)
	var out []named
	if !ctx.Proxy.InterceptionNone { // nothing redirects connections to virtual listeners
		out = []named{{name: virtualOutbound, msg: &listenerv3.Listener{
			Name:           virtualOutbound,
			Address:        socketAddress(ctx.Proxy.wildcard(), virtualOutboundPort),
			UseOriginalDst: wrapperspb.Bool(true),
			Transparent:    ctx.Proxy.transparent(),
			FilterChains: []*listenerv3.FilterChain{{
				// A connection to 15001 itself would come back here without end.
				Name:             virtualOutbound + "-blackhole",
				FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(virtualOutboundPort)},
				Filters:          tcpTelemetry(ctx, classOutbound, false, loopBlackhole()),
			}, {Name: virtualOutbound + "-catchall-tcp", Filters: tcpTelemetry(ctx, classOutbound, false, tcpProxy(ctx, cmp.Or(unknownDestinations(ctx), blackHoleCluster), accessLogsFor(ctx).client))}},
			AccessLog:                            accessLogsFor(ctx).clientListener,
			TrafficDirection:                     corev3.TrafficDirection_OUTBOUND,
			MaxConnectionsToAcceptPerSocketEvent: acceptPerSocketEvent(),
		}}, {name: virtualInbound, msg: vin}}
	}
	httpPorts := map[uint32]bool{}
	tcp := tcpListeners{}
	binds := egressBindings(ctx)
	refused := map[uint32]bool{} // ports the proxy cannot bind, reported once
	for _, svc := range ctx.Services {
		for _, port := range svc.Ports {
			if isUDP(port) || !ctx.importedOn(svc, port.Number) {
				continue
			}
			port = ctx.outboundPort(port)
			if isHTTPProxy(port) {
				continue // the port is an HTTP proxy's (httpproxy.go), for every service
			}
			b, bound := binds.on(port.Number)
			if !canBind(ctx, b, bound, port.Number, refused) {
				continue
			}
			if isHTTP(port) {
				httpPorts[port.Number] = true
				continue
			}
			for _, a := range outboundAddresses(ctx, svc, port.Number, binds) {
				ip, subnet := listenerAddress(a)
				l := tcp.get(ctx, ip, port.Number, b, bound)
				if subnet != "" {
					l.addSubnet(ctx, svc, port, subnet)
					continue
				}
				l.add(ctx, svc, port)
				if isSniffed(port) && l.httpRoute == "" {
					l.httpRoute = sniffedRouteName(ip, svc.Hostname, port.Number)
				}
			}
		}
	}
	for _, port := range sortedPorts(httpPorts) {
		ip := anyAddress
		b, bound := binds.on(port)
		if bound {
			ip = b.ip
		}
		if ip == anyAddress {
			// HTTP takes the port's wildcard listener by detection: TCP to other
			// destinations (or a TCP service without an address) on the port stays TCP.
			tcp.get(ctx, ip, port, b, bound).httpRoute = strconv.FormatUint(uint64(port), 10)
			continue
		}
		name := ip + "_" + strconv.FormatUint(uint64(port), 10)
		l := outboundListener(name, ip, port, []*listenerv3.Filter{outboundHTTP(ctx, name, strconv.FormatUint(uint64(port), 10))})
		l.AdditionalAddresses = additionalAddresses(b.extra, port)
		if b.bindToPort {
			l.BindToPort, l.MaxConnectionsToAcceptPerSocketEvent = nil, acceptPerSocketEvent()
		}
		out = append(out, named{name: name, msg: l})
		delete(tcp, name) // HTTP wins the bound address of a port
	}
	for _, name := range registry.SortedKeys(tcp) {
		out = append(out, named{name: name, msg: tcp[name].build(ctx)})
	}
	out = append(out, httpProxyListeners(ctx, binds, refused)...)
	out = addBoundInbound(ctx, out, bound)
	for _, n := range out {
		l, _ := n.msg.(*listenerv3.Listener)
		switch {
		case l == nil || l.Name == virtualOutbound:
			// Envoy balances a listener handed its connections by their original
			// destination as the listener that took them; istiod leaves it unset.
		case l.TrafficDirection == corev3.TrafficDirection_INBOUND && ctx.Proxy.InboundExactBalance,
			l.TrafficDirection == corev3.TrafficDirection_OUTBOUND && ctx.Proxy.OutboundExactBalance:
			l.ConnectionBalanceConfig = exactBalance()
		}
	}
	return out
}

// exactBalance is Envoy's exact connection balance, which a proxy's metadata asks
// for (Proxy.InboundExactBalance, OutboundExactBalance).
func exactBalance() *listenerv3.Listener_ConnectionBalanceConfig {
	return &listenerv3.Listener_ConnectionBalanceConfig{BalanceType: &listenerv3.Listener_ConnectionBalanceConfig_ExactBalance_{
		ExactBalance: &listenerv3.Listener_ConnectionBalanceConfig_ExactBalance{}}}
}

// addresses are the addresses the proxy knows svc by: its own, else, for a proxy
// with DNS capture, those allocated to it (ofFamily), as istiod's auto-allocated
// addresses (which its name table gives the workload for the host).
func (ctx *Context) addresses(svc *registry.Service) []string {
	if len(svc.Addresses) > 0 || !ctx.Proxy.DNSCapture {
		return svc.Addresses
	}
	return ctx.Proxy.ofFamily(svc.AutoAddresses)
}

// outboundAddresses are the addresses of a service whose listeners take its
// connections to a port: where the port's Sidecar egress listener binds, else the
// service's addresses (ctx.addresses), else (resolution NONE) its endpoints', else
// 0.0.0.0.
func outboundAddresses(ctx *Context, svc *registry.Service, port uint32, binds egressBindingSet) []string {
	b, bound := binds.on(port)
	if bound {
		return []string{b.ip}
	}
	if addrs := ctx.addresses(svc); len(addrs) > 0 {
		return addrs
	}
	if svc.Resolution == registry.ResolutionNone {
		return instanceAddresses(ctx, svc)
	}
	return []string{anyAddress}
}

// listenerAddress returns the address of the listener that takes a service
// address's connections: the address itself, or for a range of addresses (a CIDR
// block wider than one host) 0.0.0.0, with the range as the chain's subnet, as in
// Istio (as written: 192.192.192.192/24 stays so, Envoy masks it).
func listenerAddress(a string) (ip, subnet string) {
	p, err := netip.ParsePrefix(a)
	if err != nil {
		ip, _, _ = strings.Cut(a, "/")
		return ip, ""
	}
	if p.IsSingleIP() {
		return p.Addr().String(), ""
	}
	return anyAddress, p.String()
}

// instanceAddresses are where the TCP listeners of a service of resolution NONE
// without addresses go, as in Istio: a listener per endpoint address, so that a
// connection to one endpoint (a StatefulSet's pod) goes to it through the service's
// ORIGINAL_DST cluster even when other services share the port; 0.0.0.0 for a
// ServiceEntry that neither lists nor selects endpoints (egress to hosts outside).
// A service that selects workloads but has none yet has no listener.
func instanceAddresses(ctx *Context, svc *registry.Service) []string {
	wls := ctx.Snapshot.Endpoints(svc)
	if len(wls) == 0 && svc.Selector == nil {
		return []string{anyAddress}
	}
	var out []string
	for _, w := range wls {
		if isIP(w.Address) && !slices.Contains(out, w.Address) {
			out = append(out, w.Address)
		}
	}
	return out
}

// addBoundInbound adds the inbound listeners Sidecar ingress listeners bind. One
// named as an outbound listener is (the same address and port) is reported and
// left out: Envoy takes one listener per name, and the outbound one came first.
func addBoundInbound(ctx *Context, out []named, bound []*listenerv3.Listener) []named {
	taken := map[string]bool{}
	for _, n := range out {
		taken[n.name] = true
	}
	for _, l := range bound {
		if taken[l.Name] {
			where := fmt.Sprintf("Sidecar %s/%s spec.ingress", ctx.sidecar.Meta.Namespace, ctx.sidecar.Meta.Name)
			ctx.skip(where, fmt.Errorf("listener %s (captureMode NONE) has the address and port of an outbound listener; left out", l.Name))
			continue
		}
		out = append(out, named{name: l.Name, msg: l})
	}
	return out
}

// egressBinding is where a Sidecar's egress listener puts the listeners of its port
// (or, for the one without a port, of every other port), as in Istio: with
// captureMode NONE the listener binds a port of its own (so that an application
// without iptables redirection, a VM's, connects to it), on the bind address or
// 127.0.0.1; with only a bind address, the listeners of the port take that address
// instead of the services' (still reached through the virtual outbound listener).
type egressBinding struct {
	ip         string
	bindToPort bool
	extra      []string // further addresses (Proxy.otherFamily)
}

type egressBindingSet struct {
	byPort   map[uint32]*egressBinding // nil: the port's egress listener sets none
	catchAll *egressBinding            // the egress listener without a port's
}

// on returns the binding of a port's listeners, if its egress listener sets one.
func (s egressBindingSet) on(port uint32) (egressBinding, bool) {
	b, named := s.byPort[port]
	if !named {
		b = s.catchAll
	}
	if b == nil {
		return egressBinding{}, false
	}
	return *b, true
}

// canBind reports whether the proxy can have a listener of its own on port under
// binding b: not below 1024 for an unprivileged proxy (UNPRIVILEGED_POD), as in
// Istio, where the port's listeners are left out and reported (once: refused).
func canBind(ctx *Context, b egressBinding, bound bool, port uint32, refused map[uint32]bool) bool {
	if !bound || !b.bindToPort || !ctx.Proxy.Unprivileged || port >= 1024 {
		return true
	}
	if !refused[port] {
		refused[port] = true
		ctx.skip(fmt.Sprintf("outbound port %d", port), errors.New("an unprivileged proxy cannot bind a port below 1024; its listeners are left out"))
	}
	return false
}

// egressBindings returns the bindings the proxy's Sidecar sets. A unix domain
// socket bind is not built: it is reported and the port's listeners stay as without
// a bind. A proxy without interception (INTERCEPTION_MODE NONE) binds every port's
// listeners, on its egress listener's bind or 127.0.0.1, whatever its capture mode,
// as in Istio.
func egressBindings(ctx *Context) egressBindingSet {
	set := egressBindingSet{byPort: map[uint32]*egressBinding{}}
	none := ctx.Proxy.InterceptionNone
	if none {
		set.catchAll = &egressBinding{ip: ctx.Proxy.loopback(), bindToPort: true, extra: ctx.Proxy.otherFamily(false, true)}
	}
	if ctx.sidecar == nil {
		return set
	}
	for i, eg := range egressListeners(ctx.sidecar.Spec.(*networking.Sidecar)) {
		b := egressBinding{ip: eg.Bind, bindToPort: none || eg.CaptureMode == networking.CaptureMode_NONE}
		if strings.HasPrefix(b.ip, unixPrefix) {
			// An HTTP one is a listener of its own (httpProxies); other protocols'
			// are not built.
			if !isHTTP(registry.Port{Protocol: eg.GetPort().GetProtocol()}) {
				where := fmt.Sprintf("Sidecar %s/%s spec.egress[%d].bind", ctx.sidecar.Meta.Namespace, ctx.sidecar.Meta.Name, i)
				ctx.skip(where, fmt.Errorf("unix domain socket listeners of protocol %q are not built (HTTP ones are)", eg.GetPort().GetProtocol()))
			}
			b = egressBinding{bindToPort: none}
		}
		if b.ip == "" && b.bindToPort {
			b.ip = ctx.Proxy.loopback() // Istio's default for a listener of its own
			b.extra = ctx.Proxy.otherFamily(false, true)
		}
		var bp *egressBinding
		if b.ip != "" {
			bp = &b
		}
		if eg.Port != nil {
			set.byPort[eg.Port.Number] = bp
		} else {
			set.catchAll = bp
		}
	}
	return set
}

// outboundHTTP is the HTTP connection manager of an outbound listener, routing by
// the route configuration rds.
func outboundHTTP(ctx *Context, listener, rds string) *listenerv3.Filter {
	return envoyConnectionManager(ctx, outboundHCM(ctx, listener, rds))
}

// outboundHCM is the HTTP connection manager outboundHTTP packs.
func outboundHCM(ctx *Context, listener, rds string) *hcmv3.HttpConnectionManager {
	ph := headersFor(ctx, classOutbound)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + listener + statDelimiter,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: rdsConfigSource(), RouteConfigName: rds}},
		HttpFilters:        envoyHTTPFilters(ctx, classOutbound, nil, ph.skipMXHeaders),
		AccessLog:          accessLogsFor(ctx).client,
		Tracing:            tracingFor(ctx).client,
		RequestIdExtension: tracingFor(ctx).clientRequestID,
	}
	ph.apply(hcm)
	return hcm
}

// outboundListener is a listener the virtual outbound listener hands connections to;
// it binds no port of its own. Its listener filters (if any) wait for the client's
// first bytes as long as it takes (Envoy's default gives up after 15 s and closes
// the connection), as istiod has it.
func outboundListener(name, ip string, port uint32, filters []*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:                             name,
		Address:                          envoyAddress(ip, port), // an IP, or a unix domain socket
		BindToPort:                       wrapperspb.Bool(false),
		FilterChains:                     []*listenerv3.FilterChain{{Filters: filters, TransportSocketConnectTimeout: handshakeTimeout()}},
		TrafficDirection:                 corev3.TrafficDirection_OUTBOUND,
		ListenerFiltersTimeout:           durationpb.New(0),
		ContinueOnListenerFiltersTimeout: true,
	}
}

// passthroughChain is istiod's name of an outbound listener's fallback chain, to
// the unknown destinations' cluster (PassthroughCluster or BlackHoleCluster).
const passthroughChain = "PassthroughFilterChain"

// handshakeTimeout bounds the transport socket handshake (TLS) of a connection a
// chain of a sidecar's outbound listener or of a gateway's takes, against slow
// handshakes that hold the proxy's memory: 15 s, as istiod sets it.
func handshakeTimeout() *durationpb.Duration { return durationpb.New(15 * time.Second) }

// additionalAddresses are the further listener addresses of ips on port.
func additionalAddresses(ips []string, port uint32) []*listenerv3.AdditionalAddress {
	var out []*listenerv3.AdditionalAddress
	for _, ip := range ips {
		out = append(out, &listenerv3.AdditionalAddress{Address: socketAddress(ip, port)})
	}
	return out
}

// acceptPerSocketEvent is how many connections a listener that binds its port
// accepts per wake-up, Istio's: one, so that Envoy's worker threads share them
// rather than the first awake taking a burst.
func acceptPerSocketEvent() *wrapperspb.UInt32Value { return wrapperspb.UInt32(1) }

func sortedPorts(m map[uint32]bool) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type sidecarRoutes struct{}

func (sidecarRoutes) Name() string    { return "sidecar-routes" }
func (sidecarRoutes) TypeURL() string { return RouteType }

// Generate builds a route configuration per HTTP port, named by the port: a virtual
// host per service on that port, answering to its host name (and, within its
// namespace, the short forms Kubernetes DNS accepts), and a last one passing anything
// else through. A port of no given protocol is in its port's configuration too
// (which the wildcard listener's detected HTTP routes by) and, for a service with
// addresses of its own, has one of its own, "<host>:<port>": the service's virtual
// host alone, for whatever host the request names, as in Istio.
func (sidecarRoutes) Generate(ctx *Context) []named {
	byPort := map[uint32][]*routev3.VirtualHost{}
	taken := map[uint32]map[string]bool{}
	var sniffed []named
	binds := egressBindings(ctx)
	for _, svc := range ctx.Services {
		vs := virtualServiceFor(ctx, svc.Hostname)
		for _, port := range svc.Ports {
			op := ctx.outboundPort(port)
			if isUDP(port) || !(isHTTP(op) || isSniffed(op)) || !ctx.importedOn(svc, port.Number) {
				continue
			}
			if taken[port.Number] == nil {
				taken[port.Number] = map[string]bool{}
			}
			var routes []*routev3.Route
			if vs != nil {
				routes = httpRoutes(ctx, vs.Resource, port.Number, "", false)
			}
			if len(routes) == 0 {
				routes = []*routev3.Route{defaultRoute(ctx, svc, port.Number)}
			}
			name := listenerName(svc.Hostname, port.Number)
			if isSniffed(op) && slices.ContainsFunc(outboundAddresses(ctx, svc, port.Number, binds), func(a string) bool {
				ip, subnet := listenerAddress(a)
				return ip != anyAddress && subnet == ""
			}) {
				vh := &routev3.VirtualHost{Name: name, Domains: []string{"*"}, Routes: routes}
				sniffed = append(sniffed, named{name: name, msg: envoyRouteConfig(ctx, name, []*routev3.VirtualHost{vh})})
			}
			var domains []string
			for _, d := range domainsFor(ctx, svc, port.Number, false) {
				if !taken[port.Number][d] {
					taken[port.Number][d] = true
					domains = append(domains, d)
				}
			}
			if len(domains) == 0 {
				continue
			}
			byPort[port.Number] = append(byPort[port.Number], &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes})
		}
	}
	for port := range byPort {
		byPort[port] = append(byPort[port], nonServiceVirtualHosts(ctx, port, taken[port])...)
	}
	var out []named
	for _, port := range sortedPorts(keysOf(byPort)) {
		name := strconv.FormatUint(uint64(port), 10)
		vhs := byPort[port]
		slices.SortStableFunc(vhs, func(a, b *routev3.VirtualHost) int { return strings.Compare(a.Name, b.Name) })
		vhs = append(vhs, unknownHostsVirtualHost(ctx))
		out = append(out, named{name: name, msg: envoyRouteConfig(ctx, name, vhs)})
	}
	out = append(out, sniffed...)
	return append(out, httpProxyRoutes(ctx, binds)...)
}

// nonServiceVirtualHosts are the virtual hosts, on an Envoy sidecar's HTTP port, of
// the hosts of VirtualServices (bound to the mesh, oldest first) that name no
// service the proxy sees: an alias, or a host outside the registry. As in Istio, a
// VirtualService gives them its routes on the HTTP ports of the services it does
// name (exactly, or as the most specific wildcard), or on port 80 when it names
// none; each answers to its host alone unless a virtual host before has it (taken).
func nonServiceVirtualHosts(ctx *Context, port uint32, taken map[string]bool) []*routev3.VirtualHost {
	var out []*routev3.VirtualHost
	for _, a := range virtualServiceAliases(ctx) {
		if !a.ports[port] {
			continue
		}
		routes := httpRoutes(ctx, a.vs.Resource, port, "", false)
		if len(routes) == 0 {
			continue
		}
		for _, h := range a.hosts {
			if taken[h] {
				continue
			}
			taken[h] = true
			out = append(out, &routev3.VirtualHost{Name: listenerName(h, port), Domains: []string{h}, Routes: routes})
		}
	}
	return out
}

// vsAliases is a VirtualService's hosts that name no service the proxy sees, and
// the ports their virtual hosts go on (nonServiceVirtualHosts).
type vsAliases struct {
	vs    *registry.HostRoutes
	hosts []string
	ports map[uint32]bool
}

// virtualServiceAliases returns, once per build, the vsAliases of every
// VirtualService bound to the mesh that has such hosts, oldest first.
func virtualServiceAliases(ctx *Context) []vsAliases {
	return derived(ctx, "vs-aliases", func() []vsAliases {
		byHost := make(map[string]*registry.Service, len(ctx.Services))
		for _, svc := range ctx.Services {
			byHost[svc.Hostname] = svc
		}
		var out []vsAliases
		for _, vs := range ctx.Snapshot.VirtualServices(ctx.Proxy.Namespace) {
			if !boundToMesh(vs.Resource.Spec.(*networking.VirtualService).Gateways) {
				continue
			}
			a := vsAliases{vs: vs, ports: map[uint32]bool{}}
			httpPorts := func(svc *registry.Service) {
				for _, p := range svc.Ports {
					if op := ctx.outboundPort(p); isHTTP(op) || isSniffed(op) {
						a.ports[p.Number] = true
					}
				}
			}
			for _, h := range vs.Hosts {
				h = strings.ToLower(h)
				if !strings.HasPrefix(h, "*") {
					if svc := byHost[h]; svc != nil {
						httpPorts(svc)
					} else {
						a.hosts = append(a.hosts, h)
					}
					continue
				}
				named := false
				for _, svc := range ctx.Services {
					if !registry.HostMatches(h, svc.Hostname) {
						continue
					}
					named = true
					if virtualServiceFor(ctx, svc.Hostname) == vs { // not a more specific one's
						httpPorts(svc)
					}
				}
				if !named {
					a.hosts = append(a.hosts, h)
				}
			}
			if len(a.hosts) == 0 {
				continue
			}
			if len(a.ports) == 0 {
				a.ports[80] = true
			}
			out = append(out, a)
		}
		return out
	})
}

// envoyRouteConfig is an Envoy's route configuration of virtual hosts vhs (a
// sidecar's outbound or a gateway's), as istiod builds it: clusters not checked
// (they may come after the routes), direct responses up to Istio's limit (Envoy's
// default, 4 KiB, would refuse a route configuration with a larger one), the
// attempt count in a header to the upstream (x-envoy-attempt-count) unless the
// ProxyConfig's proxyHeaders turn it off, and virtual hosts matched by host name
// whatever port the request's authority names (so they list no ports).
func envoyRouteConfig(ctx *Context, name string, vhs []*routev3.VirtualHost) *routev3.RouteConfiguration {
	attempts := headersFor(ctx, classOutbound).attemptCount
	for _, vh := range vhs {
		vh.IncludeRequestAttemptCount = attempts
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhs, ValidateClusters: wrapperspb.Bool(false),
		MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(api.MaxDirectResponseBody), IgnorePortInHostMatching: true}
}

// unknownHostsVirtualHost is the last virtual host of a route configuration: requests
// for hosts no service answers to go where unknownDestinations says (Istio's
// allow_any), or are answered 502 (Istio's block_all, for REGISTRY_ONLY).
func unknownHostsVirtualHost(ctx *Context) *routev3.VirtualHost {
	r := &routev3.Route{Name: "allow_any", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}
	if cluster := unknownDestinations(ctx); cluster != "" {
		r.Action = &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}, Timeout: noTimeout(),
			MaxStreamDuration: grpcDeadlines(ctx), AppendXForwardedHost: headersFor(ctx, classOutbound).xForwardedHost}}
	} else {
		r.Name = "block_all"
		r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}}
	}
	return &routev3.VirtualHost{Name: r.Name, Domains: []string{"*"}, Routes: []*routev3.Route{r}}
}

// domainsFor is what a service answers to in a virtual host: its host name (and
// its absolute form, with a trailing dot) and, for a Kubernetes-style name in the
// proxy's namespace (name.ns.svc.<domain>), the short forms, then its addresses
// (virtual IPs, a Kubernetes Service's cluster IP, as in Istio); each also with the
// port (":<port>") for proxyless clients (withPort), which match the name they
// dialled. An Envoy's route configurations ignore the port instead.
func domainsFor(ctx *Context, svc *registry.Service, port uint32, withPort bool) []string {
	hosts := []string{svc.Hostname}
	if !isIP(svc.Hostname) { // the absolute name too, as Istio's: reviews.default.svc.cluster.local.
		hosts = append(hosts, svc.Hostname+".")
	}
	suffix := ".svc." + ctx.Snapshot.Domain
	if base, ok := strings.CutSuffix(svc.Hostname, suffix); ok { // in istiod's order
		name, ns, _ := strings.Cut(base, ".")
		if ns == ctx.Proxy.Namespace {
			hosts = append(hosts, name, base+".svc", base)
		} else {
			hosts = append(hosts, base, base+".svc")
		}
	}
	if svc.Resolution == registry.ResolutionNone && svc.Selector != nil && !strings.HasPrefix(svc.Hostname, "*") {
		// A headless service's pods have names of their own under its host
		// (db-0.db.shop.svc.cluster.local), as in Istio.
		for _, h := range slices.Clone(hosts) {
			hosts = append(hosts, "*."+h)
		}
	}
	for _, a := range ctx.addresses(svc) { // its addresses too, as in Istio (a CIDR as written)
		if a != "" && a != "0.0.0.0" {
			if strings.Contains(a, ":") {
				a = "[" + a + "]" // IPv6, as a Host header names it
			}
			hosts = append(hosts, a)
		}
	}
	if !withPort {
		return hosts
	}
	var out []string
	p := ":" + strconv.FormatUint(uint64(port), 10)
	for _, h := range hosts {
		out = append(out, h, h+p)
	}
	return out
}

func keysOf[V any](m map[uint32]V) map[uint32]bool {
	out := map[uint32]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// specialClusters are the clusters every sidecar has: PassthroughCluster sends a
// connection (or a request, through the allow_any virtual host) to where it was
// going; BlackHoleCluster drops it. A gateway has BlackHoleCluster only, as istiod
// gives it.
func specialClusters(ctx *Context) []named {
	passthrough := &clusterv3.Cluster{
		Name:                          passthroughCluster,
		AltStatName:                   passthroughCluster + statDelimiter,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:                      clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:                durationpb.New(connectTimeout(ctx)),
		CircuitBreakers:               defaultCircuitBreakers(),
		TypedExtensionProtocolOptions: passthroughProtocol(),
		Filters:                       clusterMXFilters(ctx),
	}
	// The mesh's default connection pool caps what goes out to unknown
	// destinations, as in Istio.
	applyConnectionPool(passthrough, ctx.Mesh.GetDefaultTrafficPolicy().GetConnectionPool())
	applyMeshKeepalive(ctx, passthrough, ctx.Mesh.GetDefaultTrafficPolicy().GetConnectionPool())
	if headersFor(ctx, classOutbound).preserveCase {
		preserveClusterCase(passthrough, true)
	}
	blackHole := named{name: blackHoleCluster, msg: &clusterv3.Cluster{
		Name:                 blackHoleCluster,
		AltStatName:          blackHoleCluster + statDelimiter,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout(ctx)),
	}}
	if ctx.Proxy.Type == TypeRouter {
		return []named{blackHole} // a gateway passes nothing on to where it was going
	}
	return []named{{name: passthroughCluster, msg: passthrough}, blackHole}
}
