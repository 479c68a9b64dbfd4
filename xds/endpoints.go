package xds

import (
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/navarch/navarch/registry"
)

// endpoints builds a ClusterLoadAssignment for every EDS cluster: the workloads of the
// service (or subset) grouped by locality, each locality weighted by the sum of its
// endpoints' weights (grpc-go ignores localities without a weight).
type endpoints struct{}

func (endpoints) Name() string    { return "endpoints" }
func (endpoints) TypeURL() string { return EndpointType }

func (endpoints) Generate(ctx *Context) []named {
	var out []named
	for _, svc := range ctx.Services {
		if svc.Resolution == registry.ResolutionNone {
			continue
		}
		for _, port := range svc.Ports {
			for _, subset := range append([]string{""}, subsets(ctx, svc)...) {
				if _, dns := dnsTarget(ctx, svc, port, subset); dns {
					continue // LOGICAL_DNS clusters carry their endpoint inline
				}
				name := clusterName(svc.Hostname, port.Number, subset)
				// Which workloads a subset holds depends on the DestinationRule, chosen
				// by the proxy's namespace.
				out = append(out, shared(name, ctx.Proxy.Namespace, func() proto.Message {
					return loadAssignment(name, port, subsetWorkloads(ctx, svc, subset))
				}))
			}
		}
	}
	return out
}

func loadAssignment(name string, port registry.Port, wls []*registry.Workload) *endpointv3.ClusterLoadAssignment {
	// wls come in the snapshot's stable order, so the output is deterministic.
	byLocality := map[string]*endpointv3.LocalityLbEndpoints{}
	for _, w := range wls {
		if !isIP(w.Address) {
			continue // unix sockets and host names are not reachable through EDS by gRPC
		}
		loc := byLocality[w.Locality]
		if loc == nil {
			loc = &endpointv3.LocalityLbEndpoints{Locality: locality(w.Locality)}
			byLocality[w.Locality] = loc
		}
		weight := max(w.Weight, 1)
		loc.LbEndpoints = append(loc.LbEndpoints, lbEndpoint(w.Address, w.PortFor(port), weight, w.Healthy))
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{}}
	for _, key := range registry.SortedKeys(byLocality) {
		loc := byLocality[key]
		var total uint32
		for _, e := range loc.LbEndpoints {
			total += e.LoadBalancingWeight.GetValue()
		}
		loc.LoadBalancingWeight = wrapperspb.UInt32(max(total, 1))
		cla.Endpoints = append(cla.Endpoints, loc)
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

// locality parses "region/zone/subzone".
func locality(s string) *corev3.Locality {
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
