package analyze

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// gatewayConflicts reports servers of Gateways with the same selector that listen on
// the same port for the same host and bind address (IST0145): the gateway proxies
// they select get one of them for that host and drop the other.
func (a *analysis) gatewayConflicts() {
	type server struct {
		gw       *api.Resource
		selector string
		port     uint32
		bind     string
		hosts    []string
	}
	var servers []server
	for _, r := range a.snap.Config(api.Gateway) {
		g := r.Spec.(*networking.Gateway)
		for _, s := range g.Servers {
			servers = append(servers, server{r, selectorString(g.Selector), s.GetPort().GetNumber(), s.Bind, s.Hosts})
		}
	}
	for i, s := range servers {
		var others []*api.Resource
		for j, o := range servers {
			if i == j || o.gw == s.gw || o.selector != s.selector || o.port != s.port || o.bind != s.bind {
				continue
			}
			if slices.ContainsFunc(s.hosts, func(h string) bool { return slices.Contains(o.hosts, h) }) {
				others = append(others, o.gw)
			}
		}
		if len(others) > 0 {
			a.report(s.gw, "IST0145", Error, "Conflict with gateways %s (workload selector %s, port %d, hosts %s).",
				names(others), s.selector, s.port, strings.Join(s.hosts, ","))
		}
	}
}

// selectorString writes a label selector as Kubernetes does: "key=value,…", sorted.
func selectorString(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range registry.SortedKeys(labels) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, labels[k]))
	}
	return strings.Join(parts, ",")
}

// serviceEntries checks ServiceEntries: a TCP port (or one of no protocol) of an
// entry without addresses (IST0134) captures all traffic to that port, and two
// entries that give one host and port different protocols (IST0177) leave proxies
// with one of them.
func (a *analysis) serviceEntries() {
	type claim struct {
		r        *api.Resource
		scopes   []string
		protocol string
	}
	type hostPort struct {
		host string
		port uint32
	}
	claims := map[hostPort][]claim{}
	var keys []hostPort
	for _, r := range a.snap.Config(api.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		if len(se.Addresses) == 0 {
			for _, p := range se.Ports {
				if p.Protocol == "" || strings.EqualFold(p.Protocol, "TCP") {
					a.report(r, "IST0134", Warning, "ServiceEntry addresses are required for this protocol.")
				}
			}
		}
		sc := scopes(se.ExportTo, a.snap.MeshConfig().GetDefaultServiceExportTo(), r.Meta.Namespace)
		for _, h := range se.Hosts {
			for _, p := range se.Ports {
				k := hostPort{a.resolve(h, r.Meta.Namespace), p.Number}
				if claims[k] == nil {
					keys = append(keys, k)
				}
				claims[k] = append(claims[k], claim{r, sc, strings.ToUpper(p.Protocol)})
			}
		}
	}
	for _, k := range keys {
		cs := claims[k]
		for i, c := range cs {
			conflicting := []*api.Resource{c.r}
			protocols := []string{c.protocol}
			for j, o := range cs {
				if i != j && overlap(c.scopes, o.scopes) {
					conflicting = append(conflicting, o.r)
					protocols = append(protocols, o.protocol)
				}
			}
			slices.Sort(protocols)
			if protocols = slices.Compact(protocols); len(protocols) > 1 {
				a.report(c.r, "IST0177", Warning,
					"Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols (%s).",
					strings.ReplaceAll(names(conflicting), ",", ", "), k.host, k.port, strings.Join(protocols, ", "))
			}
		}
	}
}
