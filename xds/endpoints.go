package xds

import (
	"cmp"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

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
				if len(ctx.Proxy.NetworkView) > 0 {
					k += "|view=" + strings.Join(ctx.Proxy.NetworkView, ",")
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
					wls := subsetWorkloads(ctx, svc, port, subset)
					if !unhealthy {
						wls = healthyOnly(wls)
					}
					if svc.NodeLocal {
						wls = onNode(wls, ctx.Proxy.NodeName)
					}
					if clusterOnly {
						wls = inCluster(wls, ctx.Proxy.ClusterID)
					}
					if len(ctx.Proxy.NetworkView) > 0 {
						wls = inNetworks(wls, ctx.Proxy.NetworkView)
					}
					nw := networks{from: ctx.Proxy.Network, snap: ctx.Snapshot, pipes: g.envoy}
					if g.envoy {
						nw.mtls = func(w *registry.Workload) bool { return endpointMTLS(ctx, tp, w, port) }
						nw.meta = envoyGatewayMetadata(ctx)
					}
					var byLabel func(labels map[string]string, locality, network, node string) uint32
					if byLabels != nil {
						byLabel = byLabels.priority
					}
					var meta func(*registry.Workload) *corev3.Metadata
					if g.envoy {
						meta = envoyEndpointMetadata(ctx, tp, port)
					}
					cla := loadAssignment(name, port, wls, nw, byLabel, meta)
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
// at port, under traffic policy tp: the mark by which the cluster's transport
// socket matches give it mTLS (autoMTLSMatches), if the client talks mTLS to it
// (endpointMTLS); for istio-proxy, the workload's
// telemetry metadata (workloadMetadata). nil when it has none.
func envoyEndpointMetadata(ctx *Context, tp *networking.TrafficPolicy, port registry.Port) func(*registry.Workload) *corev3.Metadata {
	return func(w *registry.Workload) *corev3.Metadata {
		mtls := endpointMTLS(ctx, tp, w, port)
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

// envoyGatewayMetadata returns the metadata of an Envoy's endpoint of a gateway
// into another network, as istiod gives it: the mark of mTLS (the way through is
// mTLS); for istio-proxy, a workload of no name in the gateway's cluster.
func envoyGatewayMetadata(ctx *Context) func(registry.Gateway) *corev3.Metadata {
	return func(gw registry.Gateway) *corev3.Metadata {
		md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatch: tlsModeIstio}}
		if ctx.Proxy.IstioProxy {
			md.FilterMetadata["istio"] = &structpb.Struct{Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue(";;;;" + gw.Cluster)}}
		}
		return md
	}
}

// networks is how a proxy reaches workloads in networks other than its own
// (loadAssignment).
type networks struct {
	from string             // the proxy's network
	snap *registry.Snapshot // the gateways into each network; nil: none
	// mtls, set for a proxy that can go through gateways (Envoy, which sends the
	// SNI they forward by; grpc-go cannot), says whether it talks mTLS to a
	// workload, as it must through a gateway; meta is the metadata of a
	// gateway's endpoint.
	mtls func(*registry.Workload) bool
	meta func(registry.Gateway) *corev3.Metadata
	// pipes, set for Envoy, says the proxy reaches a workload at a unix domain
	// socket ("unix:///path", on its own host); grpc-go's EDS takes IPs only.
	pipes bool
}

// loadAssignment groups the workloads a proxy reaches by locality and, when
// priority is given (failover by labels), by the priority it gives each endpoint
// (its labels, locality and network), renumbered from 0 as clients require.
//
// Networks are as istiod's sidecars have them. Once any network has gateways,
// every weight is scaled by the snapshot's GatewayScale. A workload of the proxy's
// network, of no network or of a network without gateways is reached directly. One
// of a network with gateways (its cluster's, if it has any) is reached through them,
// by a proxy that can use them and talks mTLS to it (for Envoy, a proxy of no
// network too): each gateway gets an equal share of its weight, in its locality.
// Gateway endpoints follow the workloads of each locality, in order of address. A
// proxy that cannot use them (grpc-go) does not reach such a workload (but one of
// no network reaches it directly); the locality of a workload not reached stays,
// without endpoints or weight, as istiod leaves it.
//
// meta, if given, is the metadata of a workload's endpoint (an Envoy's:
// envoyEndpointMetadata).
func loadAssignment(name string, port registry.Port, wls []*registry.Workload, nw networks,
	priority func(labels map[string]string, locality, network, node string) uint32, meta func(*registry.Workload) *corev3.Metadata) *endpointv3.ClusterLoadAssignment {
	// wls come in the snapshot's stable order, so the output is deterministic.
	type group struct {
		locality string
		priority uint32
	}
	groups := map[group]*endpointv3.LocalityLbEndpoints{}
	locality := func(loc, network, node string, labels map[string]string) *endpointv3.LocalityLbEndpoints {
		g := group{locality: loc}
		if priority != nil {
			g.priority = priority(labels, loc, network, node)
		}
		l := groups[g]
		if l == nil {
			l = &endpointv3.LocalityLbEndpoints{Locality: ParseLocality(loc), Priority: g.priority}
			groups[g] = l
		}
		return l
	}
	add := func(w *registry.Workload, loc, network, node string, labels map[string]string, addr string, port, weight uint32, healthy bool) *endpointv3.LbEndpoint {
		l := locality(loc, network, node, labels)
		e := lbEndpoint(addr, port, weight, healthy)
		if meta != nil && w != nil {
			e.Metadata = meta(w)
		}
		l.LbEndpoints = append(l.LbEndpoints, e)
		return e
	}
	scale := uint32(1)
	if nw.snap != nil {
		scale = max(nw.snap.GatewayScale(), 1)
	}
	viaGateway := map[string]map[registry.Gateway]uint32{} // by locality
	for _, w := range wls {
		weight := uint32(min(uint64(max(w.Weight, 1))*uint64(scale), math.MaxUint32))
		if strings.HasPrefix(w.Address, unixPrefix) {
			if nw.pipes { // on the proxy's host, whatever its network
				add(w, w.Locality, w.Network, w.Node, w.Labels, w.Address, 0, weight, w.Healthy)
			}
			continue
		}
		if !isIP(w.Address) {
			continue // a host name is not an EDS endpoint
		}
		var gws []registry.Gateway
		if nw.snap != nil && w.Network != "" {
			cluster, _ := registry.KubernetesCluster(w.Source)
			gws = nw.snap.GatewaysFor(w.Network, cluster)
		}
		forced := nw.from == "" && len(gws) > 0 && nw.mtls != nil
		if len(gws) == 0 || (!forced && registry.SameNetwork(nw.from, w.Network)) {
			add(w, w.Locality, w.Network, w.Node, w.Labels, w.Address, w.PortFor(port), weight, w.Healthy)
			continue
		}
		if nw.mtls == nil || !nw.mtls(w) {
			locality(w.Locality, w.Network, w.Node, w.Labels) // left empty, as istiod leaves it
			continue
		}
		shares := viaGateway[w.Locality]
		if shares == nil {
			shares = map[registry.Gateway]uint32{}
			viaGateway[w.Locality] = shares
		}
		for _, gw := range gws {
			shares[gw] += weight / uint32(len(gws))
		}
	}
	for _, loc := range registry.SortedKeys(viaGateway) {
		shares := viaGateway[loc]
		gws := slices.SortedFunc(maps.Keys(shares), func(a, b registry.Gateway) int {
			return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		for _, gw := range gws {
			e := add(nil, loc, gw.Network, "", nil, gw.Address, gw.Port, max(shares[gw], 1), true)
			if nw.meta != nil {
				e.Metadata = nw.meta(gw)
			}
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
		if len(loc.LbEndpoints) > 0 {
			loc.LoadBalancingWeight = wrapperspb.UInt32(max(total, 1))
		}
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
			Address: envoyAddress(addr, port),
		}},
		HealthStatus:        status,
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}
}

// envoyAddress is addr at port, or the pipe of a unix domain socket
// ("unix:///path"), which has no port.
func envoyAddress(addr string, port uint32) *corev3.Address {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
	}
	return socketAddress(addr, port)
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
	cla := loadAssignment(selfDiscoveryClusterName, port, subsetWorkloads(ctx, own, port, ""), networks{from: ctx.Proxy.Network, pipes: true}, nil, envoyEndpointMetadata(ctx, nil, port))
	return named{name: selfDiscoveryClusterName, msg: cla}
}

// inNetworks keeps the workloads a proxy's network view (REQUESTED_NETWORK_VIEW)
// shows: those of the networks it names and those of no network, as istiod's
// proxy view does. The others are left out entirely, gateways and all.
func inNetworks(wls []*registry.Workload, view []string) []*registry.Workload {
	var out []*registry.Workload
	for _, w := range wls {
		if w.Network == "" || slices.Contains(view, w.Network) {
			out = append(out, w)
		}
	}
	return out
}
