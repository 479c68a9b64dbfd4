package xds

import (
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// trafficPolicy returns the traffic policy for a service port and subset, merged as
// Istio merges it: the mesh config's defaultTrafficPolicy (connection pool and outlier
// detection), overridden field by field by the DestinationRule's top-level policy,
// then by its settings for the port, then by the subset's policy (and the subset's
// settings for the port). nil when nothing applies.
func trafficPolicy(m *meshconfig.MeshConfig, dr *networking.DestinationRule, port uint32, subset string) *networking.TrafficPolicy {
	var tp *networking.TrafficPolicy
	if d := m.GetDefaultTrafficPolicy(); d.GetConnectionPool() != nil || d.GetOutlierDetection() != nil {
		tp = &networking.TrafficPolicy{ConnectionPool: d.GetConnectionPool(), OutlierDetection: d.GetOutlierDetection()}
	}
	if dr == nil {
		return tp
	}
	tp = mergePolicy(tp, dr.TrafficPolicy, port)
	if subset != "" {
		for _, s := range dr.Subsets {
			if s.Name == subset {
				tp = mergePolicy(tp, s.TrafficPolicy, port)
			}
		}
	}
	return tp
}

// mergePolicy overlays over onto base (either may be nil), applying over's
// port-level settings for port as well.
func mergePolicy(base, over *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy {
	if over == nil {
		return base
	}
	out := &networking.TrafficPolicy{}
	if base != nil {
		out = proto.Clone(base).(*networking.TrafficPolicy)
	}
	overlay(out, over.LoadBalancer, over.ConnectionPool, over.OutlierDetection, over.Tls)
	for _, pl := range over.PortLevelSettings {
		if pl.GetPort().GetNumber() == port {
			overlay(out, pl.LoadBalancer, pl.ConnectionPool, pl.OutlierDetection, pl.Tls)
		}
	}
	if over.Tunnel != nil {
		out.Tunnel = over.Tunnel
	}
	if over.ProxyProtocol != nil {
		out.ProxyProtocol = over.ProxyProtocol
	}
	if over.RetryBudget != nil {
		out.RetryBudget = over.RetryBudget
	}
	return out
}

func overlay(out *networking.TrafficPolicy, lb *networking.LoadBalancerSettings, cp *networking.ConnectionPoolSettings,
	od *networking.OutlierDetection, tls *networking.ClientTLSSettings) {
	if lb != nil {
		out.LoadBalancer = lb
	}
	if cp != nil {
		out.ConnectionPool = cp
	}
	if od != nil {
		out.OutlierDetection = od
	}
	if tls != nil {
		out.Tls = tls
	}
}

// subsetWorkloads returns the workloads of svc that a subset's labels select (all of
// them for the default subset "").
func subsetWorkloads(ctx *Context, svc *registry.Service, subset string) []*registry.Workload {
	all := ctx.Snapshot.Endpoints(svc)
	if subset == "" {
		return all
	}
	var labels map[string]string
	found := false
	if dr := ctx.destinationRule(svc); dr != nil {
		for _, s := range dr.Subsets {
			if s.Name == subset {
				labels, found = s.Labels, true
				break
			}
		}
	}
	if !found {
		return nil
	}
	var out []*registry.Workload
	for _, w := range all {
		if w.Matches(labels) {
			out = append(out, w)
		}
	}
	return out
}

// subsets returns the subset names a DestinationRule defines for svc, in order.
func subsets(ctx *Context, svc *registry.Service) []string {
	dr := ctx.destinationRule(svc)
	if dr == nil {
		return nil
	}
	out := make([]string, 0, len(dr.Subsets))
	for _, s := range dr.Subsets {
		out = append(out, s.Name)
	}
	return out
}
