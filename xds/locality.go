package xds

import (
	"math"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
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
// Without a proxy locality, or with enabled: false, endpoints are weighted by
// locality only. failoverPriority (failover by workload labels) is not translated.

// localityPolicy returns the locality load balancing that applies to a cluster with
// traffic policy tp, nil for none.
func localityPolicy(tp *networking.TrafficPolicy, proxyLocality string) *networking.LocalityLoadBalancerSetting {
	if proxyLocality == "" || tp == nil {
		return nil
	}
	lb := tp.GetLoadBalancer().GetLocalityLbSetting()
	if lb != nil && lb.Enabled != nil && !lb.Enabled.Value {
		return nil
	}
	if len(lb.GetDistribute()) == 0 && tp.OutlierDetection == nil {
		return nil
	}
	if lb == nil {
		return &networking.LocalityLoadBalancerSetting{}
	}
	return lb
}

// applyLocality weights or prioritizes the locality groups of cla for a proxy in
// locality proxy under lb.
func applyLocality(cla *endpointv3.ClusterLoadAssignment, proxy string, lb *networking.LocalityLoadBalancerSetting) {
	if len(lb.Distribute) > 0 {
		distribute(cla, proxy, lb.Distribute)
		return
	}
	failover(cla, locality(proxy), lb.Failover)
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
// for the proxy's region (any other region when there is none), 4 the rest;
// renumbered to consecutive priorities from 0, as clients require.
func failover(cla *endpointv3.ClusterLoadAssignment, proxy *corev3.Locality, entries []*networking.LocalityLoadBalancerSetting_Failover) {
	used := map[uint32]bool{}
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
		group.Priority = p
		used[p] = true
	}
	next, renumber := uint32(0), map[uint32]uint32{}
	for p := uint32(0); p <= 4; p++ {
		if used[p] {
			renumber[p] = next
			next++
		}
	}
	for _, group := range cla.Endpoints {
		group.Priority = renumber[group.Priority]
	}
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
