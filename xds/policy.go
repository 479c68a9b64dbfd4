package xds

import (
	"cmp"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// trafficPolicy returns the traffic policy for a service port and subset, merged as
// Istio merges it (MergeSubsetTrafficPolicy): the DestinationRule's top-level policy,
// or instead, where it has settings for the port, those settings alone (they do not
// inherit the top level's: what they leave out takes its default, and the top
// level's tunnel, proxy protocol and retry budget go too); then the subset's policy
// over it, a part at a time (load balancer, connection pool, outlier detection,
// TLS, tunnel, proxy protocol, retry budget), or, where the subset has settings for
// the port, its settings' four parts whether set or not. The mesh config's
// defaultTrafficPolicy gives the connection pool and outlier detection where the
// result has none. nil when nothing applies.
func trafficPolicy(m *meshconfig.MeshConfig, dr *networking.DestinationRule, port uint32, subset string) *networking.TrafficPolicy {
	var tp *networking.TrafficPolicy
	if dr != nil {
		tp, _ = portPolicy(dr.TrafficPolicy, port)
		for _, s := range dr.Subsets {
			if s.Name != subset || subset == "" || s.TrafficPolicy == nil {
				continue
			}
			sp, forPort := portPolicy(s.TrafficPolicy, port)
			if tp == nil {
				tp = sp
				break
			}
			tp = shallowPolicy(tp)
			if sp.LoadBalancer != nil || forPort {
				tp.LoadBalancer = sp.LoadBalancer
			}
			if sp.ConnectionPool != nil || forPort {
				tp.ConnectionPool = sp.ConnectionPool
			}
			if sp.OutlierDetection != nil || forPort {
				tp.OutlierDetection = sp.OutlierDetection
			}
			if sp.Tls != nil || forPort {
				tp.Tls = sp.Tls
			}
			if sp.Tunnel != nil {
				tp.Tunnel = sp.Tunnel
			}
			if sp.ProxyProtocol != nil {
				tp.ProxyProtocol = sp.ProxyProtocol
			}
			if sp.RetryBudget != nil {
				tp.RetryBudget = sp.RetryBudget
			}
			break
		}
	}
	if d := m.GetDefaultTrafficPolicy(); (d.GetConnectionPool() != nil && tp.GetConnectionPool() == nil) ||
		(d.GetOutlierDetection() != nil && tp.GetOutlierDetection() == nil) {
		if tp == nil {
			tp = &networking.TrafficPolicy{}
		} else {
			tp = shallowPolicy(tp)
		}
		tp.ConnectionPool = cmp.Or(tp.ConnectionPool, d.GetConnectionPool())
		tp.OutlierDetection = cmp.Or(tp.OutlierDetection, d.GetOutlierDetection())
	}
	return tp
}

// portPolicy returns policy, or, where it has settings for port, those settings as a
// policy of their own (forPort set).
func portPolicy(policy *networking.TrafficPolicy, port uint32) (tp *networking.TrafficPolicy, forPort bool) {
	for _, pl := range policy.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			return &networking.TrafficPolicy{LoadBalancer: pl.LoadBalancer, ConnectionPool: pl.ConnectionPool,
				OutlierDetection: pl.OutlierDetection, Tls: pl.Tls}, true
		}
	}
	return policy, false
}

// shallowPolicy copies a policy's parts, not its port-level settings, so that
// setting a part leaves the DestinationRule as it is.
func shallowPolicy(tp *networking.TrafficPolicy) *networking.TrafficPolicy {
	return &networking.TrafficPolicy{LoadBalancer: tp.LoadBalancer, ConnectionPool: tp.ConnectionPool, OutlierDetection: tp.OutlierDetection,
		Tls: tp.Tls, Tunnel: tp.Tunnel, ProxyProtocol: tp.ProxyProtocol, RetryBudget: tp.RetryBudget}
}

// subsetWorkloads returns the workloads of svc serving port that a subset's labels
// select (all of them for the default subset "").
func subsetWorkloads(ctx *Context, svc *registry.Service, port registry.Port, subset string) []*registry.Workload {
	all := ctx.Snapshot.EndpointsOn(svc, port.Number)
	if subset == "" {
		return all
	}
	labels, found := subsetLabelsOf(ctx, svc, subset)
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

// subsetLabelsOf are the labels that pick the workloads of a subset of svc (in the
// DestinationRule the proxy takes for it); found is false when there is no such
// subset.
func subsetLabelsOf(ctx *Context, svc *registry.Service, subset string) (labels map[string]string, found bool) {
	if dr := ctx.destinationRule(svc); dr != nil {
		for _, s := range dr.Subsets {
			if s.Name == subset {
				return s.Labels, true
			}
		}
	}
	return nil, false
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
