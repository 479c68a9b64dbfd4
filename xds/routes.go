package xds

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// meshGateway is the gateway name that stands for every sidecar and proxyless client.
const meshGateway = "mesh"

// grpcRoutes builds a route configuration per service port, outbound|<port>||<host>,
// with one virtual host for the service. Its routes come from the VirtualService that
// covers the host, or, without one, a single route to the service's own cluster.
type grpcRoutes struct{}

func (grpcRoutes) Name() string    { return "routes" }
func (grpcRoutes) TypeURL() string { return RouteType }

func (grpcRoutes) Generate(ctx *Context) []named {
	var out []named
	for _, svc := range ctx.Services {
		vs := virtualServiceFor(ctx, svc.Hostname)
		// Routes depend on the proxy's namespace (which VirtualService and
		// DestinationRule it sees) and, when the VirtualService matches on source
		// labels, on its labels.
		key := ctx.shareKey()
		if vs != nil && usesSourceLabels(vs.Resource.Spec.(*networking.VirtualService)) {
			key = ctx.shareKey(labelsKey(ctx.Proxy.Labels))
		}
		for _, port := range svc.Ports {
			if isUDP(port) || !ctx.importedOn(svc, port.Number) {
				continue
			}
			name := clusterName(svc.Hostname, port.Number, "")
			out = append(out, shared(name, key, func() proto.Message {
				var routes []*routev3.Route
				if vs != nil {
					routes = httpRoutes(ctx, vs.Resource, port.Number, "", false)
				}
				if len(routes) == 0 {
					routes = []*routev3.Route{defaultRoute(ctx, svc, port.Number)}
				}
				return &routev3.RouteConfiguration{
					Name: name,
					VirtualHosts: []*routev3.VirtualHost{{
						Name:    listenerName(svc.Hostname, port.Number),
						Domains: domainsFor(ctx, svc, port.Number, true),
						Routes:  routes,
					}},
				}
			}))
		}
	}
	return out
}

// virtualServiceFor returns the VirtualService that routes host for the proxy: among
// those bound to the mesh gateway, one naming host exactly, else the one with the
// longest matching wildcard; the oldest wins a tie, as in Istio.
func virtualServiceFor(ctx *Context, host string) *registry.HostRoutes {
	return derived(ctx, "mesh-routes", func() *meshRoutes { return newMeshRoutes(ctx) }).For(host)
}

// meshRoutes is the VirtualServices bound to the mesh that a proxy's namespace sees,
// indexed by host, so that a build finding the VirtualService of every service does
// not scan all of them for each.
type meshRoutes struct {
	exact map[string]*registry.HostRoutes // the oldest naming the host
	wild  []wildRoute                     // wildcard hosts, oldest first
}

type wildRoute struct {
	host string
	vs   *registry.HostRoutes
}

func newMeshRoutes(ctx *Context) *meshRoutes {
	m := &meshRoutes{exact: map[string]*registry.HostRoutes{}}
	for _, vs := range ctx.Snapshot.VirtualServices(ctx.Proxy.Namespace) {
		if !boundToMesh(vs.Resource.Spec.(*networking.VirtualService).Gateways) {
			continue
		}
		for _, h := range vs.Hosts {
			if strings.HasPrefix(h, "*") {
				m.wild = append(m.wild, wildRoute{h, vs})
			} else if _, taken := m.exact[h]; !taken {
				m.exact[h] = vs
			}
		}
	}
	return m
}

// For returns the VirtualService for host, nil for none.
func (m *meshRoutes) For(host string) *registry.HostRoutes {
	if vs := m.exact[host]; vs != nil {
		return vs
	}
	var best *registry.HostRoutes
	bestLen := -1
	for _, w := range m.wild {
		if registry.HostMatches(w.host, host) && len(w.host) > bestLen {
			best, bestLen = w.vs, len(w.host)
		}
	}
	return best
}

// boundToMesh reports whether a gateways list applies to sidecars and proxyless
// clients: an empty list means the mesh.
func boundToMesh(gateways []string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if g == meshGateway {
			return true
		}
	}
	return false
}

// boundTo reports whether a gateways field of a VirtualService in namespace ns names
// gateway ("ns/name"), or the mesh when gateway is "". Short names are in ns, as in
// Istio.
func boundTo(gateways []string, ns, gateway string) bool {
	if gateway == "" {
		return boundToMesh(gateways)
	}
	for _, g := range gateways {
		if !strings.Contains(g, "/") {
			g = ns + "/" + g
		}
		if g == gateway {
			return true
		}
	}
	return false
}

// defaultRoute is the route of a service port no VirtualService routes: everything
// to its cluster, with Istio's default retries, the DestinationRule's consistent hash
// and no timeout, as in Istio.
func defaultRoute(ctx *Context, svc *registry.Service, port uint32) *routev3.Route {
	return &routev3.Route{
		Name:      "default",
		Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Decorator: &routev3.Decorator{Operation: traceOperation(svc.Hostname, port)},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:  &routev3.RouteAction_Cluster{Cluster: clusterName(svc.Hostname, port, "")},
			RetryPolicy:       retryPolicy(ctx, nil),
			HashPolicy:        hashPolicy(ctx, svc.Namespace, &networking.Destination{Host: svc.Hostname}, port),
			Timeout:           noTimeout(),
			MaxStreamDuration: grpcDeadlines(ctx),
		}},
	}
}

// usesSourceLabels reports whether any match of a VirtualService depends on the
// client's labels.
func usesSourceLabels(vs *networking.VirtualService) bool {
	for _, h := range vs.Http {
		for _, m := range h.Match {
			if len(m.SourceLabels) > 0 {
				return true
			}
		}
	}
	return false
}

func labelsKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range registry.SortedKeys(labels) {
		b.WriteString(k + "=" + labels[k] + ",")
	}
	return b.String()
}
