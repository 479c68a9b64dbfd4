package xds

import (
	"cmp"
	"math"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// clusters builds a cluster per service port and per DestinationRule subset of it:
// outbound|<port>|<subset>|<host>, with the merged traffic policy applied. For Envoy
// (envoy set) DNS services are STRICT_DNS (DNS_ROUND_ROBIN ones LOGICAL_DNS) and the
// sidecar's special clusters are added; grpc-go gets LOGICAL_DNS, the only DNS
// cluster it supports.
type clusters struct{ envoy bool }

func (clusters) Name() string    { return "clusters" }
func (clusters) TypeURL() string { return ClusterType }

func (g clusters) Generate(ctx *Context) []named {
	var out []named
	if g.envoy {
		out = specialClusters(ctx)
		if ctx.Proxy.Type != TypeRouter {
			out = append(out, inboundClusters(ctx)...) // gateways take no inbound traffic of a workload
		}
	}
	key := ctx.shareKey()
	preserveCase := g.envoy && headersFor(ctx, classOutbound).preserveCase
	if g.envoy {
		kind := "envoy"
		if ctx.Proxy.IstioProxy {
			kind = "istio-proxy" // clusters with its metadata exchange
		}
		key = ctx.shareKey(kind, ctx.Proxy.IPFamilies) // DNS clusters resolve by IP version
		if preserveCase {
			key += "|preserve-case"
		}
	}
	for _, svc := range ctx.Services {
		dr := ctx.destinationRule(svc)
		k := key
		if svc.Resolution == registry.ResolutionNone {
			k += "|" + ctx.Proxy.Type // ORIGINAL_DST for sidecars, EDS for gateways
		}
		for _, port := range svc.Ports {
			if isUDP(port) {
				continue
			}
			k := k
			sniffing := g.envoy && ctx.Proxy.Type != TypeRouter && isSniffed(port)
			if sniffing {
				k += "|sniffing" // a gateway's cluster speaks HTTP/1.1 on such a port
			}
			dnat := sniDNAT(ctx, svc)
			for _, subset := range append([]string{""}, subsets(ctx, svc)...) {
				if g.envoy && !resolvesToAny(ctx, svc, port, subset) {
					continue
				}
				name := clusterName(svc.Hostname, port.Number, subset)
				// A cluster depends on the proxy only through which DestinationRule
				// applies: its namespace's, or one selecting it; and, for TLS by a
				// credential, on whether it is a gateway (originatedTLS).
				k := k
				if trafficPolicy(ctx.Mesh, dr, port.Number, subset).GetTls().GetCredentialName() != "" {
					k += "|" + ctx.Proxy.Type
				}
				build := func() *clusterv3.Cluster {
					c := newCluster(ctx, svc, port, subset, name, g.envoy)
					if g.envoy {
						c.CircuitBreakers = defaultCircuitBreakers()
						c.Filters = clusterMXFilters(ctx)
						c.AltStatName = outboundStatName(ctx, svc, port, subset, name) + statDelimiter
					}
					tp := trafficPolicy(ctx.Mesh, dr, port.Number, subset)
					applyPolicy(c, tp)
					if g.envoy {
						applyEnvoyLoadBalancer(c, tp.GetLoadBalancer())
						applyEnvoyLocality(ctx, c, tp, svc)
						applyEnvoyConnectionPool(c, ctx.Mesh, port, tp.GetConnectionPool(), sniffing)
					}
					if g.envoy && isDNSCluster(c) {
						dnsEndpointMetadata(ctx, c, svc, port, subset, tp)
					}
					if originalDestination(ctx, svc) {
						// Envoy balances an ORIGINAL_DST cluster by itself only.
						c.LbPolicy, c.LbConfig = clusterv3.Cluster_CLUSTER_PROVIDED, nil
					}
					wls := subsetWorkloads(ctx, svc, port, subset)
					mtls := func() *corev3.TransportSocket {
						sni := cmp.Or(tp.GetTls().GetSni(), meshSNI(svc.Hostname, port.Number, subset)) // the DestinationRule's, as istiod
						return upstreamTLS(ctx.Mesh, serverSANs(ctx, tp, svc, wls), ctx.certSource(), speaksHTTP2(ctx.Mesh, port, tp), sni)
					}
					switch {
					case (c.GetType() == clusterv3.Cluster_EDS && (!g.envoy || tp.GetTls() != nil) || c.GetType() == clusterv3.Cluster_ORIGINAL_DST) &&
						clientUsesMTLS(ctx, tp, port, wls):
						// An Envoy's EDS cluster without the DestinationRule's TLS takes
						// automatic mTLS by endpoint, below, as from istiod: STRICT
						// servers without a sidecar's mark are not taken to have one.
						c.TransportSocket = mtls()
					case g.envoy && (c.GetType() == clusterv3.Cluster_EDS || isDNSCluster(c)) && tp.GetTls() == nil && autoMTLS(ctx) && !svc.MeshExternal &&
						peerAuthMode(ctx.Snapshot, ctx.RootNamespace, svc.Namespace, nil, port.Number) != mtlsDisable:
						// By endpoint, as istiod has it for a service of the mesh its
						// namespace does not take out of mTLS.
						c.TransportSocketMatches = autoMTLSMatches(mtls())
					case g.envoy:
						c.TransportSocket = originatedTLS(ctx, tp.GetTls(), svc, ctx.destinationRuleResource(svc), speaksHTTP2(ctx.Mesh, port, tp))
						if c.TransportSocket != nil {
							autoSNI(c, tp.GetTls())
						}
						if mode := tp.GetTls().GetMode(); ctx.Proxy.IstioProxy && (mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL) {
							// TLS of the DestinationRule's: its ALPN is not Istio's
							// (marked even where a sidecar may not use the rule's
							// credential, as by istiod).
							istioMetadata(c).Fields["alpn_override"] = structpb.NewStringValue("false")
						}
					}
					if ctx.Proxy.IstioProxy {
						serviceClusterMetadata(c, svc, subset, ctx.destinationRuleResource(svc))
					}
					if g.envoy {
						applyProxyProtocol(c, tp.GetProxyProtocol())
						applyRetryBudget(c, tp.GetRetryBudget())
					}
					if preserveCase {
						preserveClusterCase(c, (isHTTP(port) && !isHTTP2(port)) || isSniffed(port))
					}
					return c
				}
				out = append(out, shared(name, k, func() proto.Message { return build() }))
				if dnat {
					sni := meshSNI(svc.Hostname, port.Number, subset)
					out = append(out, shared(sni, k+"|sni-dnat", func() proto.Message {
						return sniDNATCluster(build(), sni, outboundStatName(ctx, svc, port, subset, sni)+statDelimiter)
					}))
				}
			}
		}
	}
	return out
}

// sniDNATCluster turns c, a service's cluster, into its SNI-DNAT cluster named sni,
// as istiod builds them for a gateway's AUTO_PASSTHROUGH servers: the same endpoints
// and load balancing, and no TLS of its own, since the connections it forwards are
// the clients' mTLS, still encrypted; its statistics go under altStatName.
func sniDNATCluster(c *clusterv3.Cluster, sni, altStatName string) *clusterv3.Cluster {
	c.Name, c.AltStatName = sni, altStatName
	if eds := c.GetEdsClusterConfig(); eds != nil {
		eds.ServiceName = sni
	}
	if c.LoadAssignment != nil {
		c.LoadAssignment.ClusterName = sni
	}
	c.TransportSocket, c.TransportSocketMatches = nil, nil
	return c
}

// http2Upstream makes an Envoy cluster speak HTTP/2 to its endpoints (gRPC needs it;
// Envoy's default is HTTP/1.1).
func http2Upstream() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptions: mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})}
}

const httpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// downstreamProtocol makes an Envoy cluster speak to its endpoints the HTTP version
// its client spoke.
func downstreamProtocol() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptions: mustAny(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: useDownstreamProtocol()})}
}

// passthroughProtocol is how a passthrough cluster speaks HTTP it is given (detected
// HTTP, requests for unknown hosts), as istiod has it: the client's version, with
// connections closed after 5 minutes idle.
func passthroughProtocol() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptions: mustAny(&httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(5 * time.Minute)},
		UpstreamProtocolOptions:   useDownstreamProtocol(),
	})}
}

func useDownstreamProtocol() *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig {
	return &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
		HttpProtocolOptions: &corev3.Http1ProtocolOptions{}, Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}
}

// applyProxyProtocol makes an Envoy cluster open each connection with a PROXY
// protocol header (version 1 or 2), around whatever transport it had.
func applyProxyProtocol(c *clusterv3.Cluster, pp *networking.TrafficPolicy_ProxyProtocol) {
	if pp == nil {
		return
	}
	if len(c.TransportSocketMatches) > 0 { // automatic mTLS: around each match's socket, as istiod
		for _, m := range c.TransportSocketMatches {
			m.TransportSocket = proxyProtocolAround(m.TransportSocket, pp)
		}
		return
	}
	c.TransportSocket = proxyProtocolAround(c.TransportSocket, pp)
}

// proxyProtocolAround is a transport socket sending a PROXY protocol header (pp's
// version) before whatever inner (nil: plaintext) sends.
func proxyProtocolAround(inner *corev3.TransportSocket, pp *networking.TrafficPolicy_ProxyProtocol) *corev3.TransportSocket {
	if inner == nil {
		inner = &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}}
	}
	version := corev3.ProxyProtocolConfig_V1
	if pp.Version == networking.TrafficPolicy_ProxyProtocol_V2 {
		version = corev3.ProxyProtocolConfig_V2
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.upstream_proxy_protocol", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(&proxyprotocolv3.ProxyProtocolUpstreamTransport{Config: &corev3.ProxyProtocolConfig{Version: version}, TransportSocket: inner})}}
}

// applyRetryBudget bounds an Envoy cluster's concurrent retries by a share of its
// active requests (instead of a fixed number).
func applyRetryBudget(c *clusterv3.Cluster, rb *networking.TrafficPolicy_RetryBudget) {
	if rb == nil {
		return
	}
	budget := &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
	if p := rb.GetPercent(); p != nil {
		budget.BudgetPercent = &typev3.Percent{Value: p.Value}
	}
	if rb.MinRetryConcurrency > 0 {
		budget.MinRetryConcurrency = wrapperspb.UInt32(rb.MinRetryConcurrency)
	}
	budget.BudgetInterval = rb.BudgetInterval
	if c.CircuitBreakers == nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}}}
	}
	c.CircuitBreakers.Thresholds[0].RetryBudget = budget
}

// applyEnvoyLoadBalancer sets what of a load balancer only Envoy reads: Istio's
// default, least request, where none is given (grpc-go clients get round robin, as
// istiod's gRPC generator gives them); RANDOM (which grpc-go refuses); PASSTHROUGH,
// an ORIGINAL_DST cluster to the address the client dialled, as istiod makes it;
// Maglev consistent hashing (grpc-go has ring hash only) and slow start (warmup) for
// round robin and least request.
func applyEnvoyLoadBalancer(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	if lb.GetConsistentHash() == nil {
		switch lb.GetSimple() {
		case networking.LoadBalancerSettings_UNSPECIFIED:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		case networking.LoadBalancerSettings_RANDOM:
			c.LbPolicy = clusterv3.Cluster_RANDOM
		case networking.LoadBalancerSettings_PASSTHROUGH:
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			c.LbPolicy, c.LbConfig, c.EdsClusterConfig, c.LoadAssignment = clusterv3.Cluster_CLUSTER_PROVIDED, nil, nil, nil
			return
		}
	}
	if m := lb.GetConsistentHash().GetMaglev(); m != nil {
		c.LbPolicy = clusterv3.Cluster_MAGLEV
		c.LbConfig = nil
		if m.TableSize > 1 { // 1, which Istio accepts, is not a prime: Envoy's default size instead
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(m.TableSize)}}
		}
		return
	}
	legacy := lb.GetWarmupDurationSecs()
	var slow *clusterv3.Cluster_SlowStartConfig
	if w := lb.GetWarmup(); w != nil && w.Duration != nil {
		slow = &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: w.Duration}
		if a := w.GetAggression(); a != nil {
			slow.Aggression = &corev3.RuntimeDouble{DefaultValue: a.Value}
		}
		if p := w.GetMinimumPercent(); p != nil {
			slow.MinWeightPercent = &typev3.Percent{Value: p.Value}
		}
	} else if legacy != nil {
		slow = &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: legacy}
	}
	switch {
	case slow == nil:
	case c.LbPolicy == clusterv3.Cluster_LEAST_REQUEST:
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: slow}}
	case c.LbPolicy == clusterv3.Cluster_ROUND_ROBIN:
		c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: slow}}
	}
}

// applyEnvoyLocality sets how Envoy takes the health and localities of the
// endpoints navarch sends it, as istiod does: no panic mode (at Envoy's default
// threshold, 50%, it would send traffic to the endpoints marked unhealthy once half
// of them are), unless outlier detection's minHealthPercent sets the threshold (the
// endpoints then list the healthy ones only; keepsUnhealthy); and locality weighted
// load balancing when the locality setting weights localities (distribute) or names
// an order (failover, failoverPriority) that applies (with outlier detection, or by
// traffic distribution).
func applyEnvoyLocality(ctx *Context, c *clusterv3.Cluster, tp *networking.TrafficPolicy, svc *registry.Service) {
	if c.GetType() != clusterv3.Cluster_EDS {
		return
	}
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	if keepsUnhealthy(ctx, tp, svc) {
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: 0}
	}
	place := balanceByPlace(ctx, tp, svc)
	if za := place.zoneAware; za != nil {
		cfg := &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig{}
		if n := za.GetMinClusterSize(); n != nil {
			cfg.MinClusterSize = wrapperspb.UInt64(uint64(n.Value))
		}
		if !zoneAwareRouting(za) {
			cfg.RoutingEnabled = &typev3.Percent{Value: 0} // and Envoy's own zone routing off too
		}
		c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{ZoneAwareLbConfig: cfg}
		return
	}
	lb := place.locality
	if len(lb.GetDistribute()) > 0 ||
		((place.forced || tp.GetOutlierDetection() != nil) && (len(lb.GetFailover()) > 0 || len(lb.GetFailoverPriority()) > 0)) {
		c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}
	}
}

// speaksHTTP2 reports whether an Envoy cluster of port under tp speaks HTTP/2 to its
// endpoints: the port's protocol, or an HTTP port the policy upgrades
// (h2UpgradePolicy UPGRADE; DEFAULT takes the mesh config's h2UpgradePolicy), which
// its mTLS then offers in ALPN too, as istiod's.
func speaksHTTP2(mesh *meshconfig.MeshConfig, port registry.Port, tp *networking.TrafficPolicy) bool {
	h := tp.GetConnectionPool().GetHttp()
	if isHTTP2(port) {
		return true
	}
	if !isHTTP(port) || h.GetUseClientProtocol() {
		return false
	}
	switch h.GetH2UpgradePolicy() {
	case networking.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		return true
	case networking.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		return false
	}
	return mesh.GetH2UpgradePolicy() == meshconfig.MeshConfig_UPGRADE
}

// applyEnvoyConnectionPool sets what of a connection pool only Envoy reads: TCP
// keepalive, HTTP idle timeout and maximum connection duration, HTTP/2 upstream (the
// port's protocol, or h2UpgradePolicy UPGRADE on an HTTP port) with its concurrent
// stream limit and keepalive pings, or the client's protocol (useClientProtocol, or
// a sidecar's sniffing: the HTTP it detected on a port of no given protocol goes on
// as HTTP/1.1 or HTTP/2, whichever the client spoke, as in Istio).
func applyEnvoyConnectionPool(c *clusterv3.Cluster, mesh *meshconfig.MeshConfig, port registry.Port, cp *networking.ConnectionPoolSettings, sniffing bool) {
	tcp, h := cp.GetTcp(), cp.GetHttp()
	applyTCPKeepalive(c, mesh.GetTcpKeepalive())
	applyTCPKeepalive(c, tcp.GetTcpKeepalive()) // over the mesh's, field by field, as istiod
	opts := &httpv3.HttpProtocolOptions{}
	if h.GetIdleTimeout() != nil || tcp.GetMaxConnectionDuration() != nil || h.GetMaxRequestsPerConnection() > 0 {
		opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: h.GetIdleTimeout(), MaxConnectionDuration: tcp.GetMaxConnectionDuration()}
		if n := h.GetMaxRequestsPerConnection(); n > 0 {
			opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(uint32(n))
		}
	}
	if sniffing || (h.GetUseClientProtocol() && isHTTP(port) && !isHTTP2(port)) {
		// Upstream in the protocol the client spoke.
		opts.UpstreamProtocolOptions = useDownstreamProtocol()
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptions: mustAny(opts)}
		return
	}
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{}
	switch {
	case speaksHTTP2(mesh, port, &networking.TrafficPolicy{ConnectionPool: cp}):
		h2 := &corev3.Http2ProtocolOptions{}
		if n := h.GetMaxConcurrentStreams(); n > 0 {
			h2.MaxConcurrentStreams = wrapperspb.UInt32(uint32(n))
		}
		if ka := h.GetHttp2KeepAlive(); ka != nil {
			h2.ConnectionKeepalive = &corev3.KeepaliveSettings{Interval: ka.GetInterval(), Timeout: ka.GetTimeout()}
		}
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}
	case opts.CommonHttpProtocolOptions != nil:
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}
	default:
		return
	}
	opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptions: mustAny(opts)}
}

func newCluster(ctx *Context, svc *registry.Service, port registry.Port, subset, name string, envoy bool) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(connectTimeout(ctx)),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	if host, hostPort, dns := dnsTarget(ctx, svc, port, subset); dns {
		if envoy && svc.Resolution == registry.ResolutionDNS {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			c.LoadAssignment = dnsLoadAssignment(ctx, svc, port, subset, name)
			applyEnvoyDNS(ctx, c)
			return c
		}
		// grpc-go resolves LOGICAL_DNS clusters itself (it supports no STRICT_DNS), and
		// Envoy a DNS_ROUND_ROBIN service's one host name, as istiod has it: each new
		// connection goes to the first address of the latest lookup, so that a name
		// that answers with one of many addresses at a time spreads the connections.
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality:            &corev3.Locality{},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints:         []*endpointv3.LbEndpoint{lbEndpoint(host, hostPort, 1, true)},
			}},
		}
		if envoy {
			applyEnvoyDNS(ctx, c)
		}
		return c
	}
	if originalDestination(ctx, svc) {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		return c
	}
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource(), ServiceName: name}
	if envoy {
		// Envoy waits for the endpoints as long as they take, as istiod has it, rather
		// than 15 s after which the cluster warms without any.
		c.EdsClusterConfig.EdsConfig.InitialFetchTimeout = durationpb.New(0)
	}
	return c
}

// applyEnvoyDNS sets how an Envoy resolves a DNS cluster, as istiod does: IPv6
// names for an IPv6-only proxy, else IPv4 ones (a dual-stack proxy's too, as under
// istiod's default of ISTIO_DUAL_STACK off; Envoy's own default tries IPv6 first),
// their TTL honoured, and the mesh config's dnsRefreshRate (Istio's default, 60 s,
// not Envoy's 5 s) where a lookup fails.
func applyEnvoyDNS(ctx *Context, c *clusterv3.Cluster) {
	c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
	if ctx.Proxy.IPFamilies == "6" {
		c.DnsLookupFamily = clusterv3.Cluster_V6_ONLY
	}
	// (The fields istiod sets: their replacement, the envoy.cluster.dns cluster
	// type, is newer than the Envoys of many meshes.)
	//lint:ignore SA1019 see above
	c.RespectDnsTtl = true
	//lint:ignore SA1019 see above
	c.DnsRefreshRate = cmp.Or(ctx.Mesh.GetDnsRefreshRate(), durationpb.New(defaultDNSRefreshRate))
	// Refreshes spread over a jitter, and c-ares sending at most 100 queries from one
	// UDP socket before it opens another (unlimited, a socket whose conntrack entry
	// goes stale keeps failing lookups), as istiod has them.
	//lint:ignore SA1019 see above
	c.DnsJitter = durationpb.New(dnsJitter)
	c.TypedDnsResolverConfig = &corev3.TypedExtensionConfig{Name: "envoy.network.dns_resolver.cares",
		TypedConfig: mustAny(&caresv3.CaresDnsResolverConfig{UdpMaxQueries: wrapperspb.UInt32(dnsUDPMaxQueries)})}
}

// Istio's defaults for Envoy's DNS resolution (PILOT_DNS_JITTER_DURATION,
// PILOT_DNS_CARES_UDP_MAX_QUERIES).
const (
	dnsJitter        = 100 * time.Millisecond
	dnsUDPMaxQueries = 100
)

// defaultDNSRefreshRate is Istio's mesh default.
const defaultDNSRefreshRate = time.Minute

// originalDestination reports whether the proxy sends a connection to svc where its
// client was going rather than to an endpoint it picks: an Envoy sidecar, for a
// service of resolution NONE (a headless Kubernetes Service, whose clients pick a
// pod: a StatefulSet's), through an ORIGINAL_DST cluster, as in Istio. Gateways
// and proxyless gRPC clients balance over its endpoints by EDS, as istiod has them.
func originalDestination(ctx *Context, svc *registry.Service) bool {
	return svc.Resolution == registry.ResolutionNone && ctx.Proxy.Generator != GeneratorGRPC && ctx.Proxy.Type != TypeRouter
}

// dnsTarget returns the host name and port a DNS-resolved service port is reached
// at: its first endpoint's address and its port for the service port, or the
// service's own host name and target port when it lists none.
func dnsTarget(ctx *Context, svc *registry.Service, port registry.Port, subset string) (string, uint32, bool) {
	if svc.Resolution != registry.ResolutionDNS && svc.Resolution != registry.ResolutionDNSRoundRobin {
		return "", 0, false
	}
	wls := subsetWorkloads(ctx, svc, port, subset)
	if len(wls) == 0 {
		return svc.Hostname, (&registry.Workload{}).PortFor(port), true
	}
	if isIP(wls[0].Address) {
		return "", 0, false // DNS service listing IP endpoints: serve them by EDS
	}
	return wls[0].Address, wls[0].PortFor(port), true
}

func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// rdsConfigSource is where an Envoy's HTTP connection manager takes its route
// configuration: ADS, waited for however long it takes (Envoy's own default gives
// up after 15 s and serves 404 until it comes), as istiod has it.
func rdsConfigSource() *corev3.ConfigSource {
	c := adsConfigSource()
	c.InitialFetchTimeout = durationpb.New(0)
	return c
}

// applyPolicy sets a cluster's load balancing, connection pool and outlier detection
// from a DestinationRule traffic policy.
func applyPolicy(c *clusterv3.Cluster, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	applyLoadBalancer(c, tp.LoadBalancer)
	applyConnectionPool(c, tp.ConnectionPool)
	applyOutlierDetection(c, tp.OutlierDetection)
}

func applyLoadBalancer(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	switch lb.GetSimple() {
	//lint:ignore SA1019 LEAST_CONN is deprecated but Istio still accepts it, as LEAST_REQUEST
	case networking.LoadBalancerSettings_LEAST_CONN, networking.LoadBalancerSettings_LEAST_REQUEST:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_RANDOM:
		// grpc-go rejects RANDOM; round robin spreads load the same way on average.
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		ring := &clusterv3.Cluster_RingHashLbConfig{}
		if rh := ch.GetRingHash(); rh != nil && rh.MinimumRingSize > 0 {
			ring.MinimumRingSize = wrapperspb.UInt64(rh.MinimumRingSize)
		} else if n := deprecatedMinimumRingSize(ch); n > 0 {
			ring.MinimumRingSize = wrapperspb.UInt64(n)
		}
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: ring}
	}
}

// applyConnectionPool sets a connection pool's limits on a cluster's circuit
// breaker (on top of the defaults an Envoy cluster starts with:
// defaultCircuitBreakers), its connect timeout and requests per connection.
func applyConnectionPool(c *clusterv3.Cluster, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	t := &clusterv3.CircuitBreakers_Thresholds{}
	if th := c.GetCircuitBreakers().GetThresholds(); len(th) > 0 {
		t = th[0]
	}
	set := false
	if tcp := cp.Tcp; tcp != nil {
		if tcp.MaxConnections > 0 {
			t.MaxConnections, set = wrapperspb.UInt32(uint32(tcp.MaxConnections)), true
		}
		if tcp.ConnectTimeout != nil {
			c.ConnectTimeout = tcp.ConnectTimeout
		}
	}
	if h := cp.Http; h != nil {
		if h.Http2MaxRequests > 0 {
			t.MaxRequests, set = wrapperspb.UInt32(uint32(h.Http2MaxRequests)), true
		}
		if h.Http1MaxPendingRequests > 0 {
			t.MaxPendingRequests, set = wrapperspb.UInt32(uint32(h.Http1MaxPendingRequests)), true
		}
		if h.MaxRetries > 0 {
			t.MaxRetries, set = wrapperspb.UInt32(uint32(h.MaxRetries)), true
		}
	}
	if set && c.CircuitBreakers == nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
	}
}

// defaultCircuitBreakers are the limits an Envoy cluster starts with, Istio's: none
// (Envoy's own defaults, 1,024 connections, pending and active requests and 3
// retries at once, throttle a busy service and fail requests while endpoints come
// and go). A DestinationRule's connection pool sets its own.
func defaultCircuitBreakers() *clusterv3.CircuitBreakers {
	unlimited := wrapperspb.UInt32(math.MaxUint32)
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: unlimited, MaxPendingRequests: unlimited, MaxRequests: unlimited, MaxRetries: unlimited,
	}}}
}

func applyOutlierDetection(c *clusterv3.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{
		Interval:         od.Interval,
		BaseEjectionTime: od.BaseEjectionTime,
	}
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.MaxEjectionPercent))
	}
	if e := od.Consecutive_5XxErrors; e != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(e.Value)
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
		if e.Value == 0 {
			out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
		}
	}
	if e := od.ConsecutiveGatewayErrors; e != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(e.Value)
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		if e.Value == 0 {
			out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(0)
		}
	}
	//lint:ignore SA1019 consecutiveErrors is deprecated, still accepted: gateway errors, as Istio reads it
	if e := od.ConsecutiveErrors; e > 0 && od.ConsecutiveGatewayErrors == nil {
		out.ConsecutiveGatewayFailure, out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(e)), wrapperspb.UInt32(100)
	}
	if od.SplitExternalLocalOriginErrors {
		out.SplitExternalLocalOriginErrors = true
		if n := od.ConsecutiveLocalOriginFailures; n != nil {
			out.ConsecutiveLocalOriginFailure = wrapperspb.UInt32(n.Value)
			out.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(100)
		}
		out.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
	}
	// As Istio: consecutive errors eject, success-rate ejection is off.
	out.EnforcingSuccessRate = wrapperspb.UInt32(0)
	c.OutlierDetection = out
	if od.MinHealthPercent > 0 {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: float64(od.MinHealthPercent)},
		}
	}
}

// serverSANs are the identities a client accepts from a cluster's servers: the
// DestinationRule's subjectAltNames when it lists some, else the SPIFFE IDs of the
// workloads' service accounts (none for a workload without one: any identity of the
// mesh, as in Istio) and the ServiceEntry's subjectAltNames.
func serverSANs(ctx *Context, tp *networking.TrafficPolicy, svc *registry.Service, wls []*registry.Workload) []string {
	if sans := tp.GetTls().GetSubjectAltNames(); len(sans) > 0 {
		return sans
	}
	seen := map[string]bool{}
	var out []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, w := range wls {
		if w.ServiceAccount != "" { // none to check for a workload without one, as in Istio
			add(spiffeID(ctx.TrustDomain, w.Namespace, w.ServiceAccount))
		}
	}
	for _, id := range svc.SubjectAltNames {
		add(id)
	}
	sort.Strings(out)
	return out
}

// resolvesToAny reports whether an Envoy's DNS cluster of svc's port (or subset)
// has any endpoint, as istiod decides it, which builds no DNS cluster of none. A
// service that lists no endpoints and selects no workloads resolves its own host
// name, an endpoint of no labels: in no subset that names labels. Any other cluster
// has its endpoints.
func resolvesToAny(ctx *Context, svc *registry.Service, port registry.Port, subset string) bool {
	if svc.Resolution != registry.ResolutionDNS && svc.Resolution != registry.ResolutionDNSRoundRobin {
		return true
	}
	if _, _, dns := dnsTarget(ctx, svc, port, subset); !dns {
		return true // IP endpoints, by EDS
	}
	if len(subsetWorkloads(ctx, svc, port, subset)) > 0 {
		return true
	}
	if len(ctx.Snapshot.Endpoints(svc)) > 0 || svc.Selector != nil {
		return false
	}
	labels, _ := subsetLabelsOf(ctx, svc, subset)
	return len(labels) == 0
}

// dnsLoadAssignment lists the host names Envoy resolves for a DNS service: its
// endpoints, or the service's own host name when it lists none.
func dnsLoadAssignment(ctx *Context, svc *registry.Service, port registry.Port, subset, name string) *endpointv3.ClusterLoadAssignment {
	loc := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{}}
	for _, w := range dnsWorkloads(ctx, svc, port, subset) {
		loc.LbEndpoints = append(loc.LbEndpoints, lbEndpoint(w.Address, w.PortFor(port), max(w.Weight, 1), w.Healthy))
	}
	loc.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(loc.LbEndpoints)))
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{loc}}
}

// dnsWorkloads are the endpoints of a DNS service's cluster: its workloads, or the
// service's own host name, on the port's target port as in Istio, when it has none.
func dnsWorkloads(ctx *Context, svc *registry.Service, port registry.Port, subset string) []*registry.Workload {
	if wls := subsetWorkloads(ctx, svc, port, subset); len(wls) > 0 {
		return wls
	}
	return []*registry.Workload{{Address: svc.Hostname, Namespace: svc.Namespace, Healthy: true,
		WorkloadName: svc.Origin.Name, Source: svc.Source}}
}

func isDNSCluster(c *clusterv3.Cluster) bool {
	return c.GetType() == clusterv3.Cluster_STRICT_DNS || c.GetType() == clusterv3.Cluster_LOGICAL_DNS
}

// dnsEndpointMetadata gives the endpoints of an Envoy's DNS cluster c (one per
// workload of dnsWorkloads, a LOGICAL_DNS cluster the first's) the metadata of EDS
// endpoints (envoyEndpointMetadata): the mark of mTLS, Istio's workload.
func dnsEndpointMetadata(ctx *Context, c *clusterv3.Cluster, svc *registry.Service, port registry.Port, subset string, tp *networking.TrafficPolicy) {
	meta := envoyEndpointMetadata(ctx, tp, port)
	wls := dnsWorkloads(ctx, svc, port, subset)
	for _, loc := range c.GetLoadAssignment().GetEndpoints() {
		for i, e := range loc.LbEndpoints {
			if i < len(wls) {
				e.Metadata = meta(wls[i])
			}
		}
	}
}

// deprecatedMinimumRingSize reads consistentHash.minimumRingSize, deprecated in favour
// of ringHash.minimumRingSize but still accepted by Istio (the corpus uses it).
func deprecatedMinimumRingSize(ch *networking.LoadBalancerSettings_ConsistentHashLB) uint64 {
	//lint:ignore SA1019 see above
	return ch.GetMinimumRingSize()
}

// applyTCPKeepalive turns on TCP keepalive for a cluster's connections with what ka
// sets (the mesh config's tcpKeepalive, then a connection pool's), the system's
// defaults for the rest.
func applyTCPKeepalive(c *clusterv3.Cluster, ka *networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive) {
	if ka == nil {
		return
	}
	if c.UpstreamConnectionOptions == nil {
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{}}
	}
	k := c.UpstreamConnectionOptions.TcpKeepalive
	if ka.Probes > 0 {
		k.KeepaliveProbes = wrapperspb.UInt32(ka.Probes)
	}
	if ka.Time != nil {
		k.KeepaliveTime = wrapperspb.UInt32(uint32(ka.Time.GetSeconds()))
	}
	if ka.Interval != nil {
		k.KeepaliveInterval = wrapperspb.UInt32(uint32(ka.Interval.GetSeconds()))
	}
}

// applyMeshKeepalive turns on TCP keepalive for a cluster of a connection pool only
// Envoy's generic settings come from (inbound and passthrough clusters): the mesh
// config's tcpKeepalive, then the pool's, as istiod has them.
func applyMeshKeepalive(ctx *Context, c *clusterv3.Cluster, cp *networking.ConnectionPoolSettings) {
	applyTCPKeepalive(c, ctx.Mesh.GetTcpKeepalive())
	applyTCPKeepalive(c, cp.GetTcp().GetTcpKeepalive())
}
