package xds

import (
	"math"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// Locality load balancing, as in Istio, for a proxy that says where it is (its xDS
// node's locality: region, zone, sub-zone; `navarch bootstrap --locality`):
//
//   - a DestinationRule's localityLbSetting (Istio's mesh default is enabled, so a
//     rule without one counts as enabled) with distribute: the proxy's first `from`
//     that matches says what share of the traffic each locality (`to`, with `*`
//     wildcards) gets; localities no `to` names get none.
//   - otherwise, when the rule has outlierDetection (without it a failed locality
//     would never be left), failover by priority: the proxy's own
//     region/zone/sub-zone first, then its zone, its region, the region a failover
//     entry names for the proxy's region, then the rest. Endpoints ejected by
//     outlier detection in one priority make the client go on to the next.
//
//   - with failoverPriority (and no distribute), failover by labels: endpoints
//     whose labels match the proxy's on every listed key first, then those
//     matching on all but the last, and so on (labelFailover); with failover too,
//     locality failover orders the endpoints of each of those priorities.
//
//   - a service's traffic distribution (Kubernetes' spec.trafficDistribution,
//     Istio's annotation; registry.TrafficDistribution), when the
//     DestinationRule has no localityLbSetting: failover by its labels (network,
//     region, zone, and for PreferSameNode sub-zone and node), with or without
//     outlier detection, as istiod does.
//
// Without a proxy locality, or with enabled: false, endpoints are weighted by
// locality only.

// byPlace is how a cluster balances by where endpoints are: locality load balancing
// (locality, from a traffic distribution when forced) or zone-aware load balancing,
// or neither.
type byPlace struct {
	locality *networking.LocalityLoadBalancerSetting
	// forced: the locality setting is a traffic distribution's, which applies
	// without outlier detection, going by the health of endpoints.
	forced    bool
	zoneAware *networking.ZoneAwareLoadBalancerSetting
}

// balanceByPlace returns how a cluster of svc with traffic policy tp balances by
// place, as istiod resolves it, the first that applies: the DestinationRule's
// zoneAwareLbSetting; its localityLbSetting (none when it says enabled: false); the
// service's traffic distribution, as failover by its labels; the mesh config's
// zoneAwareLbSetting; its localityLbSetting (mesh.go).
//
// Zone-aware load balancing is Envoy's own (zone aware routing): each Envoy sends
// to the zones of its region in proportion to where the cluster's endpoints are
// against where its own service's are (the local_cluster, which the proxy asks for
// when its bootstrap has it: selfDiscoveryCluster), so that zones keep their
// traffic as far as capacity allows. The endpoints are put in priorities by region
// (zoneAwareFailover), with failoverPriority's label priorities over them; the
// cluster gets Envoy's zone-aware settings (applyEnvoyLocality). With enabled:
// false the cluster says 0% routing, and the endpoints stay as they are.
func balanceByPlace(ctx *Context, tp *networking.TrafficPolicy, svc *registry.Service) byPlace {
	lb := tp.GetLoadBalancer()
	switch {
	case lb.GetZoneAwareLbSetting() != nil:
		return byPlace{zoneAware: lb.GetZoneAwareLbSetting()}
	case lb.GetLocalityLbSetting() != nil:
		if l := lb.GetLocalityLbSetting(); l.Enabled == nil || l.Enabled.Value {
			return byPlace{locality: l}
		}
		return byPlace{}
	case byDistribution[svc.TrafficDistribution] != nil:
		return byPlace{locality: byDistribution[svc.TrafficDistribution], forced: true}
	case ctx.Mesh.GetZoneAwareLbSetting() != nil:
		return byPlace{zoneAware: ctx.Mesh.GetZoneAwareLbSetting()}
	}
	return byPlace{locality: meshLocality(ctx.Mesh)}
}

// zoneAwareRouting reports whether a zone-aware setting routes by zone (enabled
// unset or true).
func zoneAwareRouting(z *networking.ZoneAwareLoadBalancerSetting) bool {
	return z.GetEnabled() == nil || z.GetEnabled().GetValue()
}

// zoneAwareFailover puts the locality groups of cla in priorities by region for a
// proxy in region: 0 its own region (whose zones Envoy balances), 1 the region a
// failover entry names for it, 2 the rest, within the priority each group has
// already (failover by labels: 3 × that one plus this), renumbered from 0.
func zoneAwareFailover(cla *endpointv3.ClusterLoadAssignment, region string, entries []*networking.ZoneAwareLoadBalancerSetting_Failover) {
	for _, group := range cla.Endpoints {
		p := uint32(2)
		switch r := group.GetLocality().GetRegion(); {
		case r == region:
			p = 0
		default:
			for _, f := range entries {
				if f.From == region {
					if r == f.To {
						p = 1
					}
					break
				}
			}
		}
		group.Priority = group.Priority*3 + p
	}
	renumberPriorities(cla)
}

// The locality settings balanceByPlace returns without a DestinationRule's, shared (they
// are only read): Istio's mesh default, and failover by each traffic
// distribution's labels.
var (
	meshLocalityDefault = &networking.LocalityLoadBalancerSetting{}
	byDistribution      = map[registry.TrafficDistribution]*networking.LocalityLoadBalancerSetting{
		registry.PreferSameZone: {FailoverPriority: registry.PreferSameZone.FailoverPriority()},
		registry.PreferSameNode: {FailoverPriority: registry.PreferSameNode.FailoverPriority()},
	}
)

// localityPolicy returns the locality load balancing that applies for proxy p to a
// cluster of svc with traffic policy tp, nil for none: a traffic distribution for
// a proxy that says where it is (its locality or network); otherwise, for a proxy
// with a locality, distribute, or failover when the cluster has outlier detection
// (without it a failed locality would never be left).
func localityPolicy(ctx *Context, tp *networking.TrafficPolicy, svc *registry.Service) *networking.LocalityLoadBalancerSetting {
	p := ctx.Proxy
	place := balanceByPlace(ctx, tp, svc)
	lb, forced := place.locality, place.forced
	switch {
	case lb == nil:
		return nil
	case forced:
		if p.Locality == "" && p.Network == "" {
			return nil
		}
		return lb
	case p.Locality == "":
		return nil
	case len(lb.Distribute) == 0 && tp.GetOutlierDetection() == nil:
		return nil
	}
	return lb
}

// keepsUnhealthy reports whether a cluster's load assignment lists the endpoints
// that are not healthy (marked so, which clients skip): always, as Istio does by
// default, but when outlier detection's minHealthPercent lets Envoy's panic mode
// route to every endpoint listed once fewer are healthy (istiod's
// supportsUnhealthyEndpoints). A traffic distribution needs them (their health is
// how clients know to go on to farther endpoints) and turns panic mode off.
func keepsUnhealthy(ctx *Context, tp *networking.TrafficPolicy, svc *registry.Service) bool {
	return balanceByPlace(ctx, tp, svc).forced || tp.GetOutlierDetection().GetMinHealthPercent() <= 0
}

// applyLocality weights or prioritizes the locality groups of cla for a proxy in
// locality proxy under lb.
// Groups come with the priorities of failover by labels when the setting has
// failoverPriority: with failover too, locality failover orders the groups within
// each of those priorities; without it they are left as they are.
func applyLocality(cla *endpointv3.ClusterLoadAssignment, proxy string, lb *networking.LocalityLoadBalancerSetting) {
	switch {
	case len(lb.Distribute) > 0:
		distribute(cla, proxy, lb.Distribute)
	case len(lb.FailoverPriority) == 0 || len(lb.Failover) > 0:
		failover(cla, ParseLocality(proxy), lb.Failover)
	}
}

// distribute applies the first distribution whose from matches the proxy: each `to`
// pattern's share goes to the localities it matches (and no earlier pattern did), in
// proportion to their weights; the other localities are left out.
func distribute(cla *endpointv3.ClusterLoadAssignment, proxy string, rules []*networking.LocalityLoadBalancerSetting_Distribute) {
	for _, rule := range rules {
		if !localityMatches(rule.From, proxy) {
			continue
		}
		weights := make([]uint32, len(cla.Endpoints))
		taken := make([]bool, len(cla.Endpoints))
		patterns := make([]string, 0, len(rule.To))
		for p := range rule.To {
			patterns = append(patterns, p)
		}
		slices.Sort(patterns) // a locality two patterns match goes to the first, in a stable order
		for _, p := range patterns {
			var total uint32
			var matched []int
			for i, group := range cla.Endpoints {
				if !taken[i] && localityMatches(p, localityString(group.Locality)) {
					taken[i] = true
					matched = append(matched, i)
					total += group.LoadBalancingWeight.GetValue()
				}
			}
			for _, i := range matched {
				share := float64(cla.Endpoints[i].LoadBalancingWeight.GetValue()) * float64(rule.To[p]) / float64(max(total, 1))
				weights[i] = uint32(math.Ceil(share))
			}
		}
		kept := cla.Endpoints[:0]
		for i, group := range cla.Endpoints {
			if weights[i] > 0 {
				group.LoadBalancingWeight = wrapperspb.UInt32(weights[i])
				kept = append(kept, group)
			}
		}
		cla.Endpoints = kept
		return
	}
}

// failover sets the priority of each locality group for a proxy in locality proxy:
// 0 same sub-zone, 1 same zone, 2 same region, 3 the region a failover entry names
// for the proxy's region (any other region when there is none), 4 the rest, within
// the priority the group has already (failover by labels; as istiod, 5 × that one
// plus this); renumbered to consecutive priorities from 0, as clients require.
func failover(cla *endpointv3.ClusterLoadAssignment, proxy *corev3.Locality, entries []*networking.LocalityLoadBalancerSetting_Failover) {
	for _, group := range cla.Endpoints {
		l := group.GetLocality()
		p := uint32(3)
		switch {
		case l.GetRegion() != proxy.GetRegion():
			for _, f := range entries {
				if f.From == proxy.GetRegion() {
					if l.GetRegion() != f.To {
						p = 4
					}
					break
				}
			}
		case l.GetZone() != proxy.GetZone():
			p = 2
		case l.GetSubZone() != proxy.GetSubZone():
			p = 1
		default:
			p = 0
		}
		group.Priority = group.Priority*5 + p
	}
	renumberPriorities(cla)
}

// renumberPriorities makes the priorities of cla's groups consecutive from 0, in
// their order, as clients require.
func renumberPriorities(cla *endpointv3.ClusterLoadAssignment) {
	var used []uint32
	for _, group := range cla.Endpoints {
		if !slices.Contains(used, group.Priority) {
			used = append(used, group.Priority)
		}
	}
	slices.Sort(used)
	for _, group := range cla.Endpoints {
		group.Priority = uint32(slices.Index(used, group.Priority))
	}
}

// labelFailover is failover by labels (localityLbSetting.failoverPriority), as
// Istio has it: with n keys, an endpoint whose labels equal the proxy's on all of
// them has priority 0, one that differs first on key j priority n-j. "key=value"
// compares the endpoint's label with value instead of the proxy's. On both sides a
// locality gives the topology labels (topology.kubernetes.io/region and zone,
// topology.istio.io/subzone) and a network topology.istio.io/network, as istiod
// adds them.
type labelFailover struct {
	keys  []string
	proxy map[string]string // the values endpoints are compared with, by key
}

func newLabelFailover(priority []string, p *Proxy) *labelFailover {
	own := topologyLabels(p.Labels, p.Locality, p.Network, p.NodeName)
	f := &labelFailover{proxy: map[string]string{}}
	for _, entry := range priority {
		key, value, given := strings.Cut(entry, "=")
		if !given {
			value = own[key]
		}
		f.keys = append(f.keys, key)
		f.proxy[key] = value
	}
	return f
}

// key says what the priorities depend on, for sharing built endpoints.
func (f *labelFailover) key() string {
	var b strings.Builder
	for _, k := range f.keys {
		b.WriteString(k + "=" + f.proxy[k] + ",")
	}
	return b.String()
}

func (f *labelFailover) priority(labels map[string]string, locality, network, node string) uint32 {
	own := topologyLabels(labels, locality, network, node)
	for j, k := range f.keys {
		if own[k] != f.proxy[k] {
			return uint32(len(f.keys) - j)
		}
	}
	return 0
}

// topologyLabels returns labels with the topology labels of a locality
// ("region/zone/sub-zone", each part overriding), a node (kubernetes.io/hostname,
// overriding) and a network (unless labels have one) added, as istiod augments a
// proxy's and an endpoint's labels.
func topologyLabels(labels map[string]string, locality, network, node string) map[string]string {
	out := make(map[string]string, len(labels)+5)
	for k, v := range labels {
		out[k] = v
	}
	parts := strings.SplitN(locality, "/", 3)
	for i, key := range []string{registry.LabelRegion, registry.LabelZone, registry.LabelSubzone} {
		if i < len(parts) && parts[i] != "" {
			out[key] = parts[i]
		}
	}
	if node != "" {
		out[registry.LabelHostname] = node
	}
	if network != "" && out[registry.NetworkLabel] == "" {
		out[registry.NetworkLabel] = network
	}
	return out
}

// localityMatches reports whether locality l ("region/zone/sub-zone") matches
// pattern, whose segments may be "*" (and whose missing trailing segments match
// anything).
func localityMatches(pattern, l string) bool {
	if pattern == "*" {
		return true
	}
	ps, ls := strings.Split(pattern, "/"), strings.Split(l, "/")
	for i, p := range ps {
		if p == "*" {
			continue
		}
		if i >= len(ls) || ls[i] != p {
			return false
		}
	}
	return true
}

func localityString(l *corev3.Locality) string {
	return strings.TrimRight(l.GetRegion()+"/"+l.GetZone()+"/"+l.GetSubZone(), "/")
}
