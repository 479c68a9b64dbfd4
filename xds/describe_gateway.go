package xds

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
)

// describeGateways lists where gateways expose the service svc, as istioctl's
// `x describe` says "Exposed on Ingress Gateway": each server of a Gateway whose
// bound VirtualServices send requests (or connections) to the service, with the
// hosts clients ask the gateway for there, the routes that reach the service, and
// the addresses of the gateway workloads the registry has. It asks the functions
// the gateway build asks, for a gateway proxy as each registered gateway workload
// (or, with none, one with the Gateway's selector as its labels), so a server the
// build leaves out (a port shared with a server of another kind) exposes nothing.
func describeGateways(snap *registry.Snapshot, svc *registry.Service, trustDomain, rootNS string) []client.GatewayExposure {
	out := []client.GatewayExposure{}
	for _, gw := range snap.Config(api.Gateway) {
		name := gw.Meta.Namespace + "/" + gw.Meta.Name
		selector := gw.Spec.(*networking.Gateway).Selector
		proxies, addresses := gatewayProxies(snap, gw.Meta.Namespace, selector)
		seen := map[string]bool{}
		for _, p := range proxies {
			ctx := newContext(snap, p, trustDomain, rootNS)
			servers := gatewayServers(ctx)
			for _, gl := range sortedListeners(servers) {
				for _, s := range servers[gl] {
					if s.gateway != name {
						continue
					}
					for _, e := range serverExposures(ctx, s, svc) {
						key := fmt.Sprint(e.Port, "|", e.Protocol, "|", e.VirtualService, "|", strings.Join(e.Hosts, ","))
						if !seen[key] {
							seen[key] = true
							e.Addresses = addresses
							out = append(out, e)
						}
					}
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b client.GatewayExposure) int {
		return cmp.Or(strings.Compare(a.Gateway, b.Gateway), cmp.Compare(a.Port, b.Port), strings.Compare(a.VirtualService, b.VirtualService))
	})
	return out
}

// gatewayProxies are the proxies a Gateway in namespace ns with selector configures,
// one per distinct namespace and labels of the registered workloads it selects, and
// those workloads' addresses; with none registered, a proxy in ns with the
// selector as its labels.
func gatewayProxies(snap *registry.Snapshot, ns string, selector map[string]string) ([]*Proxy, []string) {
	var proxies []*Proxy
	var addresses []string
	kinds := map[string]bool{}
	for _, w := range snap.Workloads() {
		if len(selector) == 0 || !registry.LabelsMatch(w.Labels, selector) {
			continue
		}
		if !slices.Contains(addresses, w.Address) {
			addresses = append(addresses, w.Address)
		}
		key := w.Namespace + "|" + labelsKey(w.Labels)
		if !kinds[key] {
			kinds[key] = true
			proxies = append(proxies, &Proxy{Type: TypeRouter, Namespace: w.Namespace, Labels: w.Labels, IP: w.Address})
		}
	}
	if len(proxies) == 0 {
		proxies = append(proxies, &Proxy{Type: TypeRouter, Namespace: ns, Labels: selector})
	}
	slices.Sort(addresses)
	return proxies, addresses
}

// serverExposures are the VirtualServices bound to server s that reach svc: for an
// HTTP server, those with routes whose destinations include it (each such route
// described); for a TCP or TLS server, those with a tcp or tls route to it.
func serverExposures(ctx *Context, s gatewayServer, svc *registry.Service) []client.GatewayExposure {
	port := s.GetPort().GetNumber()
	kind := kindOf(s.Server)
	if s.GetTls().GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		return nil // no VirtualService takes part (autoPassthroughChains)
	}
	var out []client.GatewayExposure
	for _, vs := range boundServices(ctx, s) {
		ns := vs.Resource.Meta.Namespace
		hosts := hostIntersection(serverHosts(s, ns), vs.Hosts)
		if len(hosts) == 0 {
			continue
		}
		spec := vs.Resource.Spec.(*networking.VirtualService)
		e := client.GatewayExposure{Gateway: s.gateway, Port: port, Protocol: strings.ToUpper(s.GetPort().GetProtocol()),
			Hosts: hosts, VirtualService: ns + "/" + vs.Resource.Meta.Name}
		reaches := false
		switch kind {
		case kindHTTP, kindHTTPS:
			for _, in := range expandDelegates(ctx, ns, vs.Resource.Meta.Name, spec) {
				if !httpRouteApplies(ctx.Proxy, in.h, port, ns, s.gateway) || !httpReaches(ctx, in.ns, in.h, port, svc) {
					continue
				}
				reaches = true
				e.Routes = append(e.Routes, describeRoute(in.ns, in.h))
			}
		default:
			for _, r := range spec.Tcp {
				if l4Applies(r.Match, port, ns, s.gateway) && l4Reaches(ctx, ns, r.Route, port, svc) {
					reaches = true
				}
			}
			for _, r := range spec.Tls {
				if l4Reaches(ctx, ns, r.Route, port, svc) && slices.ContainsFunc(r.Match, func(m *networking.TLSMatchAttributes) bool {
					return tlsMatchApplies(m, port, ns, s.gateway)
				}) {
					reaches = true
				}
			}
		}
		if reaches {
			out = append(out, e)
		}
	}
	return out
}

// httpRouteApplies reports whether any match of route h applies on the gateway's
// port (a route without matches applies everywhere).
func httpRouteApplies(p *Proxy, h *networking.HTTPRoute, port uint32, ns, gateway string) bool {
	if len(h.Match) == 0 {
		return appliesTo(p, nil, port, ns, gateway)
	}
	return slices.ContainsFunc(h.Match, func(m *networking.HTTPMatchRequest) bool { return appliesTo(p, m, port, ns, gateway) })
}

// httpReaches reports whether route h (of a VirtualService in namespace ns) sends
// requests to svc: a destination whose cluster is one of its ports', the only one
// or one of weight (setDestinations).
func httpReaches(ctx *Context, ns string, h *networking.HTTPRoute, port uint32, svc *registry.Service) bool {
	return slices.ContainsFunc(h.Route, func(d *networking.HTTPRouteDestination) bool {
		return (len(h.Route) == 1 || d.Weight > 0) && clusterHost(destinationCluster(ctx, ns, d.Destination, port)) == svc.Hostname
	})
}

// l4Reaches is httpReaches for the destinations of a tcp or tls route.
func l4Reaches(ctx *Context, ns string, dests []*networking.RouteDestination, port uint32, svc *registry.Service) bool {
	return slices.ContainsFunc(dests, func(d *networking.RouteDestination) bool {
		return clusterHost(destinationCluster(ctx, ns, d.Destination, port)) == svc.Hostname
	})
}

// clusterHost is the host of an outbound cluster name (clusterName).
func clusterHost(cluster string) string {
	return cluster[strings.LastIndexByte(cluster, '|')+1:]
}

// workloadGateways lists the Gateways that select workload w (one with a
// selector: a gateway's), each server with the port and address the workload
// listens on for it, as the gateway build takes it, or why the build leaves it
// out.
func workloadGateways(snap *registry.Snapshot, w *registry.Workload, trustDomain, rootNS string) []client.WorkloadGateway {
	p := &Proxy{Type: TypeRouter, Namespace: w.Namespace, Labels: w.Labels, IP: w.Address}
	ctx := newContext(snap, p, trustDomain, rootNS)
	listening := map[string]gatewayListener{} // by gatewayServer.name
	for l, servers := range buildGatewayServers(ctx) {
		for _, s := range servers {
			listening[s.name()] = l
		}
	}
	var out []client.WorkloadGateway
	for _, r := range snap.Config(api.Gateway) {
		gw := r.Spec.(*networking.Gateway)
		if len(gw.Selector) == 0 || !registry.LabelsMatch(w.Labels, gw.Selector) {
			continue
		}
		g := client.WorkloadGateway{Gateway: r.Meta.Namespace + "/" + r.Meta.Name, Servers: []client.GatewayServer{}}
		for i, s := range gw.Servers {
			gs := gatewayServer{gateway: g.Gateway, ns: r.Meta.Namespace, index: i, Server: s}
			desc := client.GatewayServer{Port: s.GetPort().GetNumber(), Name: s.GetPort().GetName(), Protocol: strings.ToUpper(s.GetPort().GetProtocol()),
				Hosts: s.Hosts, Bind: s.Bind}
			switch t := s.GetTls(); {
			case t == nil:
			case !kindOf(s).tls(): // a plaintext server's TLS settings only redirect
				if t.GetHttpsRedirect() {
					desc.TLS = "httpsRedirect"
				}
			default:
				desc.TLS = strings.TrimSpace(t.GetMode().String() + " " + prefixed("credential ", t.GetCredentialName()))
			}
			if l, ok := listening[gs.name()]; ok {
				desc.Listen = l.port
			} else {
				desc.LeftOut = leftOutReason(ctx, gs.name())
			}
			g.Servers = append(g.Servers, desc)
		}
		out = append(out, g)
	}
	return out
}

// leftOutReason is why the build left out what it names name (its build errors).
func leftOutReason(ctx *Context, name string) string {
	for _, err := range ctx.errs {
		if strings.Contains(err.Error(), ": "+name+": ") {
			if inner := errors.Unwrap(err); inner != nil {
				return inner.Error()
			}
			return err.Error()
		}
	}
	return "not built"
}

// prefixed is prefix and s, or "" for an empty s.
func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
