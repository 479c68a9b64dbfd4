package xds

import (
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// The route patches of EnvoyFilters (envoyfilter.go): route configurations, their
// virtual hosts and routes.

// routes applies the route patches to an RDS route configuration.
func (pt envoyPatches) routes(ctx *Context, rc *routev3.RouteConfiguration) *routev3.RouteConfiguration {
	pt.patchRoutes(ctx, ctx.patchContext(false), rc)
	return rc
}

// patchRoutes applies the ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches of
// context pc to rc.
func (pt envoyPatches) patchRoutes(ctx *Context, pc networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration) {
	applies := func(p *envoyPatch) bool {
		return inContext(p, pc) && ctx.routeConfigMatches(pc, rc, p.match.GetRouteConfiguration())
	}
	for _, p := range pt[networking.EnvoyFilter_ROUTE_CONFIGURATION] {
		if isMerge(p.op) && applies(p) {
			mergeValue(p, rc)
		}
	}
	vhosts := rc.VirtualHosts[:0]
	for _, vh := range rc.VirtualHosts {
		removed := false
		for _, p := range pt[networking.EnvoyFilter_VIRTUAL_HOST] {
			if !applies(p) || !virtualHostMatches(vh, p.match.GetRouteConfiguration().GetVhost()) {
				continue
			}
			switch {
			case p.op == networking.EnvoyFilter_Patch_REMOVE:
				removed = true
			case isMerge(p.op):
				mergeValue(p, vh)
			case p.op == networking.EnvoyFilter_Patch_REPLACE:
				vh = proto.Clone(p.value).(*routev3.VirtualHost)
			}
			if removed {
				break
			}
		}
		if removed {
			continue
		}
		pt.patchHTTPRoutes(applies, vh)
		vhosts = append(vhosts, vh)
	}
	rc.VirtualHosts = vhosts
	for _, p := range pt[networking.EnvoyFilter_VIRTUAL_HOST] {
		if p.op == networking.EnvoyFilter_Patch_ADD && applies(p) {
			rc.VirtualHosts = append(rc.VirtualHosts, proto.Clone(p.value).(*routev3.VirtualHost))
		}
	}
}

// patchHTTPRoutes applies the HTTP_ROUTE patches to a virtual host's routes: first
// those that change or remove routes, then those that add or insert.
func (pt envoyPatches) patchHTTPRoutes(applies func(*envoyPatch) bool, vh *routev3.VirtualHost) {
	var patches []*envoyPatch
	for _, p := range pt[networking.EnvoyFilter_HTTP_ROUTE] {
		if applies(p) && virtualHostMatches(vh, p.match.GetRouteConfiguration().GetVhost()) {
			patches = append(patches, p)
		}
	}
	if len(patches) == 0 {
		return
	}
	routeMatch := func(p *envoyPatch) *networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch {
		return p.match.GetRouteConfiguration().GetVhost().GetRoute()
	}
	routes := vh.Routes[:0]
	for _, r := range vh.Routes {
		removed := false
		for _, p := range patches {
			if !routeMatches(r, routeMatch(p)) {
				continue
			}
			if p.op == networking.EnvoyFilter_Patch_REMOVE {
				removed = true
				break
			}
			if isMerge(p.op) {
				mergeValue(p, r)
			}
		}
		if !removed {
			routes = append(routes, r)
		}
	}
	vh.Routes = routes
	for _, p := range patches {
		value := func() *routev3.Route { return proto.Clone(p.value).(*routev3.Route) }
		matches := func(r *routev3.Route) bool { return routeMatches(r, routeMatch(p)) }
		named := routeMatch(p) != nil
		switch p.op {
		case networking.EnvoyFilter_Patch_ADD:
			vh.Routes = append(vh.Routes, value())
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			if !named || slices.ContainsFunc(vh.Routes, matches) {
				vh.Routes = slices.Insert(vh.Routes, 0, value())
			}
		case networking.EnvoyFilter_Patch_INSERT_BEFORE, networking.EnvoyFilter_Patch_INSERT_AFTER:
			vh.Routes = insertAt(vh.Routes, named, matches, p.op == networking.EnvoyFilter_Patch_INSERT_AFTER, value)
		}
	}
}

// insertAt inserts value() before (or after) the first element that matches, or,
// when the patch names no element (named false), first (or last); nothing when it
// names one and none matches.
func insertAt[E any](s []E, named bool, matches func(E) bool, after bool, value func() E) []E {
	if !named {
		if after {
			return append(s, value())
		}
		return slices.Insert(s, 0, value())
	}
	i := slices.IndexFunc(s, matches)
	if i < 0 {
		return s
	}
	if after {
		i++
	}
	return slices.Insert(s, i, value())
}

// routeConfigMatches reports whether rc is the route configuration a match names.
// Outside gateways a route configuration is named by its port ("9080"; an inbound
// one "inbound|http|9080"). A gateway's are "http.<port>" and
// "https.<port>.<port name>.<gateway>.<namespace>": the gateway and port name match
// only the latter, as in Istio.
func (ctx *Context) routeConfigMatches(pc networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, m *networking.EnvoyFilter_RouteConfigurationMatch) bool {
	if m == nil {
		return true
	}
	if m.Name != "" && m.Name != rc.Name {
		return false
	}
	if pc != networking.EnvoyFilter_GATEWAY {
		return m.PortNumber == 0 || int(m.PortNumber) == routeConfigPort(rc.Name)
	}
	port, portName, gateway := ctx.gatewayRouteOf(rc.Name)
	return (m.PortName == "" || m.PortName == portName) &&
		(m.Gateway == "" || m.Gateway == gateway) &&
		(m.PortNumber == 0 || m.PortNumber == port)
}

// routeConfigPort is the port a sidecar's route configuration is for: its name, or
// the number in an inbound one's.
func routeConfigPort(name string) int {
	if rest, ok := strings.CutPrefix(name, "inbound|"); ok {
		for f := range strings.SplitSeq(rest, "|") {
			if n, err := strconv.Atoi(f); err == nil {
				return n
			}
		}
		return 0
	}
	n, _ := strconv.Atoi(name)
	return n
}

// gatewayRouteOf reads a gateway route configuration's name (gateway.go): its port,
// and for an HTTPS server's the server's port name and its gateway (namespace/name).
func (ctx *Context) gatewayRouteOf(name string) (port uint32, portName, gateway string) {
	scheme, rest, _ := strings.Cut(name, ".")
	num, _, _ := strings.Cut(rest, ".")
	n, _ := strconv.ParseUint(num, 10, 32)
	if scheme != "https" {
		return uint32(n), "", ""
	}
	for _, servers := range gatewayServers(ctx) {
		for _, s := range servers {
			if s.routeName() == name {
				return uint32(n), s.GetPort().GetName(), s.gateway
			}
		}
	}
	return uint32(n), "", ""
}

func virtualHostMatches(vh *routev3.VirtualHost, m *networking.EnvoyFilter_RouteConfigurationMatch_VirtualHostMatch) bool {
	return m == nil || (m.Name == "" || m.Name == vh.Name) && (m.DomainName == "" || slices.Contains(vh.Domains, m.DomainName))
}

func routeMatches(r *routev3.Route, m *networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch) bool {
	if m == nil {
		return true
	}
	if m.Name != "" && m.Name != r.Name {
		return false
	}
	switch r.Action.(type) {
	case *routev3.Route_Route:
		return m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ANY || m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ROUTE
	case *routev3.Route_Redirect:
		return m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ANY || m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_REDIRECT
	case *routev3.Route_DirectResponse:
		return m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ANY || m.Action == networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_DIRECT_RESPONSE
	}
	return true
}
