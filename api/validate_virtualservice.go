package api

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name meaning "every sidecar in the mesh".
const meshGateway = "mesh"

func validateVirtualService(p *problems, namespace string, vs *networking.VirtualService) {
	// A VirtualService without hosts is a delegate: it is only reached through
	// another VirtualService's http[].delegate, so it routes HTTP only.
	delegate := len(vs.Hosts) == 0
	if delegate {
		if len(vs.Gateways) > 0 {
			p.add("spec.hosts", "required: a VirtualService without hosts is a delegate, and a delegate must not set gateways")
		}
		if len(vs.Tls) > 0 {
			p.add("spec.tls", "must not be set on a delegate VirtualService (one without hosts)")
		}
		if len(vs.Tcp) > 0 {
			p.add("spec.tcp", "must not be set on a delegate VirtualService (one without hosts)")
		}
	}
	validateGatewayNames(p, "spec.gateways", vs.Gateways)
	toGateway := boundToGateways(vs)
	validateVirtualServiceHosts(p, vs, toGateway)

	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		p.add("spec", "at least one http, tcp or tls route is required")
	}
	for i, h := range vs.Http {
		validateHTTPRoute(p, index("spec.http", i), h, delegate, toGateway)
	}
	for i, t := range vs.Tls {
		validateTLSRoute(p, index("spec.tls", i), t, vs, toGateway)
	}
	for i, t := range vs.Tcp {
		validateTCPRoute(p, index("spec.tcp", i), t)
	}
	validateExportTo(p, "spec.exportTo", namespace, vs.ExportTo, false)
}

// boundToGateways reports whether the VirtualService applies to gateways only, not
// to sidecars: it names gateways, and "mesh" is not one of them.
func boundToGateways(vs *networking.VirtualService) bool {
	if len(vs.Gateways) == 0 {
		return false
	}
	for _, g := range vs.Gateways {
		if g == meshGateway {
			return false
		}
	}
	return true
}

func validateVirtualServiceHosts(p *problems, vs *networking.VirtualService, toGateway bool) {
	allValid := true
	for i, h := range vs.Hosts {
		path := index("spec.hosts", i)
		if reason := virtualHostError(h, toGateway && hasSNIHosts(vs)); reason != "" && !isIP(h) {
			p.add(path, "invalid host %q: %s", h, reason)
			allValid = false
		} else if h == "*" && !toGateway {
			p.add(path, "\"*\" is not allowed in a VirtualService that applies to sidecars (the mesh gateway)")
			allValid = false
		}
	}
	if !allValid {
		return
	}
	for i, a := range vs.Hosts {
		for j := i + 1; j < len(vs.Hosts); j++ {
			if hostMatches(a, vs.Hosts[j]) {
				p.add(index("spec.hosts", j), "%q overlaps spec.hosts[%d] %q; hosts must be distinct", vs.Hosts[j], i, a)
			}
		}
	}
}

// virtualHostError checks a VirtualService host. Gateways' SNI routing may also use
// the names Istio generates for auto-passthrough, "outbound_.<port>_...".
func virtualHostError(h string, sni bool) string {
	if sni && strings.HasPrefix(h, "outbound_.") && len(h) > len("outbound_.") {
		if c := h[len("outbound_.")]; c >= '0' && c <= '8' {
			return ""
		}
	}
	return hostError(h)
}

func hasSNIHosts(vs *networking.VirtualService) bool {
	for _, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			if len(m.GetSniHosts()) > 0 {
				return true
			}
		}
	}
	return false
}

// validateGatewayNames checks gateway references: "mesh", "name", "name.namespace"
// (legacy) or "namespace/name". As Istio's validateGatewayNames, it stops at the
// first unqualified name: the names after it are not checked, and Istio accepts
// whatever they are (they simply match no Gateway).
func validateGatewayNames(p *problems, path string, names []string) {
	for i, g := range names {
		gp := index(path, i)
		ns, name, qualified := strings.Cut(g, "/")
		if !qualified {
			if reason := fqdnError(g); reason != "" {
				p.add(gp, "invalid gateway name %q: %s", g, reason)
			}
			return
		}
		switch {
		case ns == "" || name == "":
			p.add(gp, "invalid gateway %q: want namespace/name", g)
		case !dnsLabel(ns, true):
			p.add(gp, "invalid gateway %q: namespace %q is not a DNS-1123 label", g, ns)
		case !dnsLabel(name, true):
			p.add(gp, "invalid gateway %q: name %q is not a DNS-1123 label", g, name)
		}
	}
}

func validateTLSRoute(p *problems, path string, t *networking.TLSRoute, vs *networking.VirtualService, toGateway bool) {
	if t == nil {
		p.add(path, "must not be null")
		return
	}
	if len(t.Match) == 0 {
		p.add(field(path, "match"), "required: a tls route needs at least one match with sniHosts")
	}
	for j, m := range t.Match {
		mp := index(field(path, "match"), j)
		if m == nil {
			p.add(mp, "must not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			p.add(field(mp, "sniHosts"), "required: a tls match needs at least one SNI host")
		}
		for k, h := range m.SniHosts {
			validateSNIHost(p, index(field(mp, "sniHosts"), k), h, vs, toGateway)
		}
		validateL4Match(p, mp, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways)
	}
	if len(t.Route) == 0 {
		p.add(field(path, "route"), "required")
	}
	validateRouteDestinations(p, field(path, "route"), t.Route)
}

// validateSNIHost checks an SNI host of a tls match: a valid host that is one of,
// or covered by, the VirtualService's hosts.
func validateSNIHost(p *problems, path, h string, vs *networking.VirtualService, toGateway bool) {
	if reason := virtualHostError(h, toGateway); reason != "" {
		if !isIP(h) { // an IP is against the SNI spec, but Istio only warns
			p.add(path, "invalid SNI host %q: %s", h, reason)
		}
		return
	}
	for _, vh := range vs.Hosts {
		if hostSubsetOf(h, vh) {
			return
		}
	}
	p.add(path, "SNI host %q is not covered by any of the VirtualService's hosts (%s)", h, strings.Join(vs.Hosts, ", "))
}

func validateTCPRoute(p *problems, path string, t *networking.TCPRoute) {
	if t == nil {
		p.add(path, "must not be null")
		return
	}
	for j, m := range t.Match {
		mp := index(field(path, "match"), j)
		if m == nil {
			p.add(mp, "must not be null")
			continue
		}
		validateL4Match(p, mp, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways)
	}
	if len(t.Route) == 0 {
		p.add(field(path, "route"), "required")
	}
	validateRouteDestinations(p, field(path, "route"), t.Route)
}

// validateL4Match checks the fields tls and tcp matches share.
func validateL4Match(p *problems, path string, subnets []string, port uint32, sourceLabels map[string]string, gateways []string) {
	for i, s := range subnets {
		if reason := ipOrCIDRError(s); reason != "" {
			p.add(index(field(path, "destinationSubnets"), i), "%s", reason)
		}
	}
	if port != 0 {
		validatePort(p, field(path, "port"), port)
	}
	validateSpecLabels(p, field(path, "sourceLabels"), sourceLabels)
	validateGatewayNames(p, field(path, "gateways"), gateways)
}

// validateRouteDestinations checks the destinations of a tls or tcp route.
func validateRouteDestinations(p *problems, path string, ds []*networking.RouteDestination) {
	var total int64
	for i, d := range ds {
		dp := index(path, i)
		if d == nil {
			p.add(dp, "must not be null")
			continue
		}
		validateRequiredDestination(p, field(dp, "destination"), d.Destination)
		validateWeight(p, field(dp, "weight"), d.Weight)
		total += int64(d.Weight)
	}
	validateTotalWeight(p, path, len(ds), total)
}

// validateWeight checks a route weight. Weights are relative: 120 and 30 split
// traffic 80/20, so any non-negative value is valid.
func validateWeight(p *problems, path string, w int32) {
	if w < 0 {
		p.add(path, "must not be negative, got %d", w)
	}
}

func validateTotalWeight(p *problems, path string, n int, total int64) {
	if n > 1 && total == 0 {
		p.add(path, "weights must not all be zero when there is more than one destination")
	}
}

func validateRequiredDestination(p *problems, path string, d *networking.Destination) {
	if d == nil {
		p.add(path, "required")
		return
	}
	validateDestination(p, path, d)
}

// validateDestination checks a destination: a host, optionally a subset and a port.
func validateDestination(p *problems, path string, d *networking.Destination) {
	if d == nil {
		return
	}
	hp := field(path, "host")
	switch {
	case d.Host == "":
		p.add(hp, "required")
	case d.Host == "*":
		p.add(hp, "must name a service, got \"*\"")
	default:
		validateHostField(p, hp, d.Host)
	}
	if d.Subset != "" && !dnsLabel(d.Subset, true) {
		p.add(field(path, "subset"), "%q is not a valid subset name (a DNS-1123 label)", d.Subset)
	}
	if d.Port != nil {
		validatePort(p, field(field(path, "port"), "number"), d.Port.Number)
	}
}
