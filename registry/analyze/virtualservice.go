package analyze

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// destination is one place a VirtualService sends traffic, with what kind of place it
// is, in the words of Istio's messages ("host", "mirror host").
type destination struct {
	*networking.Destination
	mirror bool
}

func destinations(vs *networking.VirtualService) []destination {
	var out []destination
	for _, r := range vs.GetTcp() {
		for _, d := range r.GetRoute() {
			out = append(out, destination{Destination: d.GetDestination()})
		}
	}
	for _, r := range vs.GetTls() {
		for _, d := range r.GetRoute() {
			out = append(out, destination{Destination: d.GetDestination()})
		}
	}
	for _, r := range vs.GetHttp() {
		for _, d := range r.GetRoute() {
			out = append(out, destination{Destination: d.GetDestination()})
		}
	}
	for _, r := range vs.GetHttp() {
		if m := r.GetMirror(); m != nil {
			out = append(out, destination{Destination: m, mirror: true})
		}
		for _, m := range r.GetMirrors() {
			out = append(out, destination{Destination: m.GetDestination(), mirror: true})
		}
	}
	return out
}

// lookup finds the service named host (a full name) that proxies in one of the
// namespaces from see ("*": any namespace); a service of a wildcard host counts for
// the names it covers, as a proxy's traffic to such a name goes to it.
func (a *analysis) lookup(host string, from []string) *registry.Service {
	anyNS := slices.Contains(from, "*")
	visible := func(svc *registry.Service) bool {
		if anyNS {
			return true
		}
		return slices.ContainsFunc(from, svc.VisibleTo)
	}
	for _, svc := range a.byHost[host] {
		if visible(svc) {
			return svc
		}
	}
	for _, svc := range a.wild {
		if registry.HostMatches(svc.Hostname, host) && visible(svc) {
			return svc
		}
	}
	return nil
}

// viewpoints are the namespaces whose proxies use a VirtualService or DestinationRule
// of namespace ns exported to exportTo: its own and those it names ("*" for all).
func viewpoints(exportTo []string, ns string) []string {
	out := []string{ns}
	for _, e := range exportTo {
		if e != "." {
			out = append(out, e)
		}
	}
	return out
}

// virtualServiceDestinations checks that every destination of every VirtualService
// is a service the mesh knows (IST0101), on a port it has (IST0101) or, when it has
// several, names one (IST0112), and that a named subset is one the DestinationRule
// for the host defines (IST0101).
func (a *analysis) virtualServiceDestinations() {
	for _, r := range a.snap.Config(api.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		ns := r.Meta.Namespace
		from := viewpoints(vs.ExportTo, ns)
		for _, d := range destinations(vs) {
			host := d.GetHost()
			what := "host"
			if d.mirror {
				what = "mirror host"
			}
			full := a.resolve(host, ns)
			svc := a.lookup(full, from)
			svcHost, svcNS := full, ns
			switch port := d.GetPort().GetNumber(); {
			case svc == nil:
				a.report(r, "IST0101", Error, "Referenced %s not found: %q", what, host)
			case port != 0:
				if _, ok := svc.Port(port); !ok {
					a.report(r, "IST0101", Error, "Referenced %s not found: %q", "host:port", fmt.Sprintf("%s:%d", host, port))
				}
			case len(svc.Ports) > 1:
				numbers := make([]string, len(svc.Ports))
				for i, p := range svc.Ports {
					numbers[i] = fmt.Sprint(p.Number)
				}
				a.report(r, "IST0112", Error,
					"This VirtualService routes to a service %q that exposes multiple ports [%s]. Specifying a port in the destination is required to disambiguate.",
					host, strings.Join(numbers, " "))
			}
			if svc != nil {
				svcHost, svcNS = svc.Hostname, svc.Namespace
			}
			if subset := d.GetSubset(); subset != "" && !a.hasSubset(svcHost, svcNS, full, ns, subset) {
				what := "host+subset in destinationrule"
				if d.mirror {
					what = "mirror+subset in destinationrule"
				}
				a.report(r, "IST0101", Error, "Referenced %s not found: %q", what, host+"+"+subset)
			}
		}
	}
}

// hasSubset reports whether the DestinationRule a proxy in namespace ns applies to
// host (of a service of namespace svcNS) defines subset. A wildcard service's rule
// is looked up by the name the route uses, as proxies look it up.
func (a *analysis) hasSubset(svcHost, svcNS, host, ns, subset string) bool {
	rules := a.rulesFrom(ns)
	dr := rules.For(host, svcNS, nil)
	if dr == nil && svcHost != host {
		dr = rules.For(svcHost, svcNS, nil)
	}
	if dr == nil {
		return false
	}
	return slices.ContainsFunc(dr.Spec.(*networking.DestinationRule).Subsets, func(s *networking.Subset) bool {
		return s.Name == subset
	})
}

// virtualServiceGateways checks that the Gateways a VirtualService binds to exist
// (IST0101) and have a server for one of its hosts (IST0132).
func (a *analysis) virtualServiceGateways() {
	gateways := map[string]*api.Resource{}
	for _, g := range a.snap.Config(api.Gateway) {
		gateways[g.Meta.Namespace+"/"+g.Meta.Name] = g
	}
	for _, r := range a.snap.Config(api.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		ns := r.Meta.Namespace
		for _, name := range vs.Gateways {
			if name == "mesh" {
				continue
			}
			full := name
			if !strings.Contains(name, "/") {
				full = ns + "/" + name
			}
			g := gateways[full]
			if g == nil {
				a.report(r, "IST0101", Error, "Referenced %s not found: %q", "gateway", name)
				continue
			}
			if !a.gatewayServes(g, vs.Hosts, ns) {
				a.report(r, "IST0132", Warning, "one or more host [%s] defined in VirtualService %s/%s not found in Gateway %s.",
					strings.Join(vs.Hosts, " "), ns, r.Meta.Name, full)
			}
		}
	}
}

// gatewayServes reports whether one of gateway g's servers takes one of hosts of a
// VirtualService of namespace ns: a server host "namespace/host" takes only the
// VirtualServices of that namespace ("." the gateway's own, "*" any).
func (a *analysis) gatewayServes(g *api.Resource, hosts []string, ns string) bool {
	for _, s := range g.Spec.(*networking.Gateway).Servers {
		for _, sh := range s.Hosts {
			scope, h, ok := strings.Cut(sh, "/")
			if !ok {
				scope, h = "*", sh
			}
			if scope == "." {
				scope = g.Meta.Namespace
			}
			if scope != "*" && scope != ns {
				continue
			}
			for _, vh := range hosts {
				if hostsOverlap(h, a.resolve(vh, ns)) {
					return true
				}
			}
		}
	}
	return false
}

// hostsOverlap reports whether two host patterns (either may be a wildcard) can name
// the same host.
func hostsOverlap(a, b string) bool {
	return registry.HostMatches(a, b) || registry.HostMatches(b, a) ||
		(strings.HasPrefix(a, "*") && strings.HasPrefix(b, "*") &&
			(strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])))
}

// meshHostConflicts reports VirtualServices for the mesh (sidecars, proxyless
// clients) that claim the same host for overlapping sets of namespaces (IST0109):
// proxies take the oldest and ignore the others.
func (a *analysis) meshHostConflicts() {
	type claim struct {
		r      *api.Resource
		scopes []string
	}
	byHost := map[string][]claim{}
	var hosts []string
	for _, r := range a.snap.Config(api.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		if len(vs.Gateways) > 0 && !slices.Contains(vs.Gateways, "mesh") {
			continue
		}
		sc := scopes(vs.ExportTo, a.snap.MeshConfig().GetDefaultVirtualServiceExportTo(), r.Meta.Namespace)
		seen := map[string]bool{}
		for _, h := range vs.Hosts {
			h = a.resolve(h, r.Meta.Namespace)
			if seen[h] {
				continue
			}
			seen[h] = true
			if byHost[h] == nil {
				hosts = append(hosts, h)
			}
			byHost[h] = append(byHost[h], claim{r, sc})
		}
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		claims := byHost[h]
		for i, c := range claims {
			conflicting := []*api.Resource{c.r}
			for j, o := range claims {
				if i != j && overlap(c.scopes, o.scopes) {
					conflicting = append(conflicting, o.r)
				}
			}
			if len(conflicting) > 1 {
				a.report(c.r, "IST0109", Error,
					"The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
					names(conflicting), h)
			}
		}
	}
}
