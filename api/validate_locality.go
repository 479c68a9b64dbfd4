package api

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Topology labels that failoverPriority may not use together with failover, which
// already orders endpoints by region, zone and subzone.
const (
	topologyRegion  = "topology.kubernetes.io/region"
	topologyZone    = "topology.kubernetes.io/zone"
	topologySubzone = "topology.istio.io/subzone"
)

// validateLocalityLB checks locality weighted load balancing and failover.
// Localities are "region", "region/zone" or "region/zone/subzone", with an optional
// trailing "*" wildcard.
func validateLocalityLB(p *problems, path string, lb *networking.LocalityLoadBalancerSetting) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		p.add(path, "must not set both distribute and failover")
		return
	}
	if len(lb.Failover) > 0 {
		for i, l := range lb.FailoverPriority {
			if l == topologyRegion || l == topologyZone || l == topologySubzone {
				p.add(index(field(path, "failoverPriority"), i), "must not use topology label %q together with failover", l)
			}
		}
	}
	var from []string
	for i, d := range lb.Distribute {
		dp := index(field(path, "distribute"), i)
		if d == nil {
			p.add(dp, "must not be null")
			continue
		}
		from = append(from, d.From)
		var total uint64
		for _, to := range sortedKeys(d.To) {
			if w := d.To[to]; w < 1 || w > 100 {
				p.add(mapKey(field(dp, "to"), to), "weight must be 1-100, got %d", w)
			}
			total += uint64(d.To[to])
		}
		if total != 100 {
			p.add(field(dp, "to"), "weights must add up to 100, got %d", total)
		}
		validateLocalities(p, field(dp, "to"), sortedKeys(d.To))
	}
	validateLocalities(p, field(path, "distribute"), from)
	for i, f := range lb.Failover {
		fp := index(field(path, "failover"), i)
		switch {
		case f == nil:
			p.add(fp, "must not be null")
		case f.From == f.To:
			p.add(fp, "from and to must be different regions, got %q", f.From)
		case strings.ContainsAny(f.From+f.To, "/*"):
			p.add(fp, "from and to must be regions, without zones or wildcards, got %q and %q", f.From, f.To)
		}
	}
}

// validateLocalities checks locality syntax and that no two localities overlap.
func validateLocalities(p *problems, path string, localities []string) {
	for i, l := range localities {
		if n := strings.Count(l, "*"); n > 1 || n == 1 && !strings.HasSuffix(l, "*") {
			p.add(path, "locality %q may have one '*' wildcard, at the end", l)
			return
		}
		for _, part := range strings.SplitN(l, "/", 3) {
			if part == "" {
				p.add(path, "locality %q must not have an empty region, zone or subzone", l)
				return
			}
		}
		for _, prev := range localities[:i] {
			if localityCovers(prev, l) || localityCovers(l, prev) {
				p.add(path, "localities %q and %q overlap", prev, l)
				return
			}
		}
	}
}

// localityCovers reports whether every locality b matches is matched by a.
func localityCovers(a, b string) bool {
	ap := strings.Split(strings.TrimSuffix(strings.TrimSuffix(a, "*"), "/"), "/")
	if ap[0] == "" {
		return true // "*"
	}
	bp := strings.Split(b, "/")
	if len(ap) > len(bp) {
		return false
	}
	for i := range ap {
		if ap[i] != bp[i] {
			return false
		}
	}
	return true
}

// validateZoneAwareLB checks zone-aware load balancing, as Istio does: Envoy
// balances zones within the proxy's region itself and navarch puts the proxy's
// region first, so failover names regions only (different ones, no wildcards) and
// failoverPriority may not use the region, zone or subzone labels.
func validateZoneAwareLB(p *problems, path string, lb *networking.ZoneAwareLoadBalancerSetting) {
	if lb == nil {
		return
	}
	for i, l := range lb.FailoverPriority {
		if l == topologyRegion || l == topologyZone || l == topologySubzone {
			p.add(index(field(path, "failoverPriority"), i), "must not use topology label %q: region and zone routing are automatic under zone-aware load balancing", l)
		}
	}
	for i, f := range lb.Failover {
		fp := index(field(path, "failover"), i)
		if f == nil {
			p.add(fp, "must not be null")
			continue
		}
		if f.From == f.To {
			p.add(fp, "from and to must be different regions, both are %q", f.From)
		}
		if strings.Contains(f.From, "/") || strings.Contains(f.To, "/") {
			p.add(fp, "from and to name regions only (zone and subzone failover are automatic), got %q to %q", f.From, f.To)
		}
		if strings.Contains(f.From, "*") || strings.Contains(f.To, "*") {
			p.add(fp, "from and to must not contain the wildcard '*', got %q to %q", f.From, f.To)
		}
	}
}
