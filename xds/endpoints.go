package xds

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/navarch/navarch/registry"
)

// endpoints builds a ClusterLoadAssignment for every EDS cluster: the workloads of the
// service (or subset) grouped by locality, each locality weighted by the sum of its
// endpoints' weights (grpc-go ignores localities without a weight).
type endpoints struct {
	// envoy: the proxies are Envoys, which can reach other networks through their
	// gateways (with mTLS, sending the SNI the gateway forwards by); grpc-go cannot.
	envoy bool
}

func (endpoints) Name() string    { return "endpoints" }
func (endpoints) TypeURL() string { return EndpointType }

func (g endpoints) Generate(ctx *Context) []named {
	var out []named
	key := ctx.shareKey(ctx.Proxy.Network)
	if g.envoy {
		key = ctx.shareKey(ctx.Proxy.Network, "envoy", strconv.FormatBool(ctx.Proxy.IstioProxy))
	}
	for _, svc := range ctx.Services {
		if originalDestination(ctx, svc) {
			continue // an ORIGINAL_DST cluster: no endpoints to send
		}
		dr := ctx.destinationRule(svc)
		for _, port := range svc.Ports {
			if isUDP(port) {
				continue
			}
			for _, subset := range append([]string{""}, subsets(ctx, svc)...) {
				if _, _, dns := dnsTarget(ctx, svc, port, subset); dns {
					continue // LOGICAL_DNS clusters carry their endpoint inline
				}
				name := clusterName(svc.Hostname, port.Number, subset)
				// Which workloads a subset holds depends on the DestinationRule, chosen
				// by the proxy's namespace; how they are reached, on its network and
				// kind.
				tp := trafficPolicy(ctx.Mesh, dr, port.Number, subset)
				lb := localityPolicy(ctx, tp, svc)
				unhealthy := keepsUnhealthy(ctx, tp, svc)
				k := key
				if svc.NodeLocal {
					k += "|node=" + ctx.Proxy.NodeName
				}
				clusterOnly := ownCluster(ctx, svc.Hostname)
				if clusterOnly {
					k += "|cluster=" + ctx.Proxy.ClusterID
				}
				var byLabels *labelFailover
				za := balanceByPlace(ctx, tp, svc).zoneAware
				if !zoneAwareRouting(za) {
					za = nil // the endpoints stay as they are
				}
				if za != nil {
					// Priorities by region, the proxy's first, under those of its labels.
					k += "|zone-aware:" + ParseLocality(ctx.Proxy.Locality).GetRegion()
					if len(za.FailoverPriority) > 0 {
						byLabels = newLabelFailover(za.FailoverPriority, ctx.Proxy)
						k += "|" + byLabels.key()
					}
				}
				if lb != nil {
					// The priorities or weights are the proxy's own; with distribute,
					// failoverPriority is ignored, as in Istio.
					k += "|" + ctx.Proxy.Locality
					if len(lb.FailoverPriority) > 0 && len(lb.Distribute) == 0 {
						byLabels = newLabelFailover(lb.FailoverPriority, ctx.Proxy)
						k += "|" + byLabels.key()
					}
				}
				build := func() *endpointv3.ClusterLoadAssignment {
					wls := subsetWorkloads(ctx, svc, subset)
					if !unhealthy {
						wls = healthyOnly(wls)
					}
					if svc.NodeLocal {
						wls = onNode(wls, ctx.Proxy.NodeName)
					}
					if clusterOnly {
						wls = inCluster(wls, ctx.Proxy.ClusterID)
					}
					gateways := noGateways
					if g.envoy {
						// Asked only when some workloads are in another network.
						gateways = func(network string) []registry.Gateway {
							if !clientUsesMTLS(ctx, tp, port, wls) {
								return nil
							}
							return ctx.Snapshot.Gateways(network)
						}
					}
					var byLabel func(labels map[string]string, locality, network, node string) uint32
					if byLabels != nil {
						byLabel = byLabels.priority
					}
					var meta func(*registry.Workload) *corev3.Metadata
					if g.envoy {
						meta = envoyEndpointMetadata(ctx, port)
					}
					cla := loadAssignment(name, port, wls, ctx.Proxy.Network, gateways, byLabel, meta)
					if lb != nil {
						applyLocality(cla, ctx.Proxy.Locality, lb)
					}
					if za != nil {
						zoneAwareFailover(cla, ParseLocality(ctx.Proxy.Locality).GetRegion(), za.Failover)
					}
					return cla
				}
				out = append(out, shared(name, k, func() proto.Message { return build() }))
				if sniDNAT(ctx, svc) { // the endpoints of its SNI-DNAT cluster too (clusters.go)
					sni := meshSNI(svc.Hostname, port.Number, subset)
					out = append(out, shared(sni, k+"|sni-dnat", func() proto.Message {
						cla := build()
						cla.ClusterName = sni
						return cla
					}))
				}
			}
		}
	}
	if g.envoy && ctx.Proxy.SelfDiscovery {
		out = append(out, selfDiscoveryCluster(ctx))
	}
	return out
}

// onNode returns the workloads of wls on node (a node-local service's, for a proxy
// there): none for a proxy that does not say where it runs, as in Istio.
func onNode(wls []*registry.Workload, node string) []*registry.Workload {
	var out []*registry.Workload
	for _, w := range wls {
		if node != "" && w.Node == node {
			out = append(out, w)
		}
	}
	return out
}

// healthyOnly returns the healthy workloads of wls.
func healthyOnly(wls []*registry.Workload) []*registry.Workload {
	out := make([]*registry.Workload, 0, len(wls))
	for _, w := range wls {
		if w.Healthy {
			out = append(out, w)
		}
	}
	return out
}

// envoyEndpointMetadata returns the metadata of an Envoy's endpoint of a workload
// at port: the mark by which the cluster's transport socket matches give it mTLS
// (autoMTLSMatches), if automatic mTLS picks it; for istio-proxy, the workload's
// telemetry metadata (workloadMetadata). nil when it has none.
func envoyEndpointMetadata(ctx *Context, port registry.Port) func(*registry.Workload) *corev3.Metadata {
	return func(w *registry.Workload) *corev3.Metadata {
		mtls := takesAutoMTLS(ctx, w, port)
		if !mtls && !ctx.Proxy.IstioProxy {
			return nil
		}
		md := &corev3.Metadata{FilterMetadata: make(map[string]*structpb.Struct, 2)}
		if mtls {
			md.FilterMetadata[transportSocketMatch] = tlsModeIstio
		}
		if ctx.Proxy.IstioProxy {
			md.FilterMetadata["istio"] = workloadMetadata(w)
		}
		return md
	}
}

// noGateways is the gateways of a client that cannot use them.
func noGateways(string) []registry.Gateway { return nil }

// loadAssignment groups the workloads a proxy in network from reaches by locality
// and, when priority is given (failover by labels), by the priority it gives each
// endpoint (its labels, locality and network), renumbered from 0 as clients require.
// Workloads in another network are reached through that network's gateways (as
// Istio's multi-network meshes): each gateway stands for an equal share of the
// network's healthy workloads' weight; a network without gateways (or a client
// without the means to use them: Envoy with mTLS) is unreachable and left out.
//
// meta, if given, is the metadata of a workload's endpoint (an Envoy's:
// envoyEndpointMetadata).
func loadAssignment(name string, port registry.Port, wls []*registry.Workload, from string, gateways func(network string) []registry.Gateway,
	priority func(labels map[string]string, locality, network, node string) uint32, meta func(*registry.Workload) *corev3.Metadata) *endpointv3.ClusterLoadAssignment {
	// wls come in the snapshot's stable order, so the output is deterministic.
	type group struct {
		locality string
		priority uint32
	}
	groups := map[group]*endpointv3.LocalityLbEndpoints{}
	add := func(w *registry.Workload, loc, network, node string, labels map[string]string, addr string, port, weight uint32, healthy bool) {
		g := group{locality: loc}
		if priority != nil {
			g.priority = priority(labels, loc, network, node)
		}
		l := groups[g]
		if l == nil {
			l = &endpointv3.LocalityLbEndpoints{Locality: ParseLocality(loc), Priority: g.priority}
			groups[g] = l
		}
		e := lbEndpoint(addr, port, weight, healthy)
		if meta != nil && w != nil {
			e.Metadata = meta(w)
		}
		l.LbEndpoints = append(l.LbEndpoints, e)
	}
	remote := map[string]uint32{} // healthy weight behind each other network
	for _, w := range wls {
		if !isIP(w.Address) {
			continue // unix sockets and host names are not reachable through EDS by gRPC
		}
		weight := max(w.Weight, 1)
		switch {
		case registry.SameNetwork(from, w.Network):
			add(w, w.Locality, w.Network, w.Node, w.Labels, w.Address, w.PortFor(port), weight, w.Healthy)
		case w.Healthy:
			remote[w.Network] += weight
		}
	}
	for _, network := range registry.SortedKeys(remote) {
		gws := gateways(network)
		for _, gw := range gws {
			add(nil, gw.Locality, network, "", nil, gw.Address, gw.Port, max(remote[network]/uint32(len(gws)), 1), true)
		}
	}
	order := make([]group, 0, len(groups))
	for g := range groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(a, b group) int {
		return cmp.Or(strings.Compare(a.locality, b.locality), cmp.Compare(a.priority, b.priority))
	})
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{}}
	for _, g := range order {
		loc := groups[g]
		var total uint32
		for _, e := range loc.LbEndpoints {
			total += e.LoadBalancingWeight.GetValue()
		}
		loc.LoadBalancingWeight = wrapperspb.UInt32(max(total, 1))
		cla.Endpoints = append(cla.Endpoints, loc)
	}
	if priority != nil {
		renumberPriorities(cla)
	}
	return cla
}

func lbEndpoint(addr string, port, weight uint32, healthy bool) *endpointv3.LbEndpoint {
	status := corev3.HealthStatus_HEALTHY
	if !healthy {
		status = corev3.HealthStatus_UNHEALTHY
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(addr, port),
		}},
		HealthStatus:        status,
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// ParseLocality parses "region/zone/subzone" (zone and sub-zone optional).
func ParseLocality(s string) *corev3.Locality {
	parts := strings.SplitN(s, "/", 3)
	l := &corev3.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

func isIP(s string) bool { return net.ParseIP(s) != nil }

// selfDiscoveryClusterName is the EDS cluster an Envoy bootstrapped for zone-aware
// load balancing (ENABLE_SELF_DISCOVERY) asks for as its local cluster, Istio's.
const selfDiscoveryClusterName = "local_cluster"

// selfDiscoveryCluster is the load assignment of the proxy's local cluster: the
// endpoints of its own service (the first, by host name, that selects its
// workload) on that service's first port, without priorities or locality weights,
// from which Envoy learns how its own service spreads over zones (balanceByPlace). A
// proxy without a service gets it empty, as from istiod.
func selfDiscoveryCluster(ctx *Context) named {
	var own *registry.Service
	for _, svc := range ctx.Snapshot.Services() {
		if selectsWorkload(svc, ctx.Proxy) && len(svc.Ports) > 0 {
			own = svc
			break
		}
	}
	if own == nil {
		return named{name: selfDiscoveryClusterName, msg: &endpointv3.ClusterLoadAssignment{ClusterName: selfDiscoveryClusterName}}
	}
	port := own.Ports[0]
	cla := loadAssignment(selfDiscoveryClusterName, port, subsetWorkloads(ctx, own, ""), ctx.Proxy.Network, noGateways, nil, envoyEndpointMetadata(ctx, port))
	return named{name: selfDiscoveryClusterName, msg: cla}
}
