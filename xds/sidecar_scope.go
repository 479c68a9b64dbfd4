package xds

import (
	"errors"
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// A Sidecar resource scopes a proxy's outbound side, as in Istio:
//
//   - the Sidecar that applies to a proxy is the oldest in its namespace whose
//     workloadSelector matches its labels, else the one in its namespace without a
//     selector, else the one in the root namespace without a selector (the mesh's
//     default). Gateways are not scoped by Sidecars.
//   - its egress listeners' hosts ("namespace/host") say which services the proxy
//     sees, Envoy sidecars and proxyless gRPC alike: on a port an egress listener
//     names, that listener's; on the others, the listener without a port's. A
//     Sidecar without egress listeners imports everything the namespace sees.
//   - its outboundTrafficPolicy says where an Envoy sidecar sends traffic for
//     destinations it does not know: ALLOW_ANY (the default) out as it came
//     (PassthroughCluster) or, with an egressProxy, to that service's cluster;
//     REGISTRY_ONLY nowhere: TCP to BlackHoleCluster, HTTP answered 502 by the route
//     configurations' last virtual host (Istio's block_all).
//
// Its ingress listeners replace the ports of the services that select the workload,
// and its inboundConnectionPool limits the inbound clusters (sidecar_inbound.go). An
// egress listener's captureMode NONE gives its port's outbound listeners a port of
// their own on its bind address (127.0.0.1 by default), and a bind alone moves them
// to that address (egressBindings in sidecar.go); an ingress listener's captureMode
// NONE makes its port's inbound chains a listener of their own, on its bind address
// or the wildcard (inboundListeners in sidecar_inbound.go). An egress listener's
// port protocol is the protocol of that port's outbound listener and routes
// (outboundPort). Not translated (accepted, without effect): a unix domain socket
// bind (reported); an egress listener's port that a service it imports does not
// have (Istio listens on it for such a service too; navarch only for services that
// have the port).

// sidecarFor returns the Sidecar that scopes proxy p, nil for none.
func sidecarFor(snap *registry.Snapshot, p *Proxy, rootNS string) *api.Resource {
	if p.Type == TypeRouter {
		return nil // as in Istio, Sidecar resources scope sidecars, not gateways
	}
	var namespaceDefault, meshDefault *api.Resource
	for _, r := range snap.Config(api.Sidecar) {
		sc := r.Spec.(*networking.Sidecar)
		switch {
		case r.Meta.Namespace != p.Namespace:
			if r.Meta.Namespace == rootNS && sc.WorkloadSelector == nil && meshDefault == nil {
				meshDefault = r
			}
		case sc.WorkloadSelector == nil:
			if namespaceDefault == nil {
				namespaceDefault = r
			}
		case registry.LabelsMatch(p.Labels, sc.WorkloadSelector.Labels):
			return r
		}
	}
	if namespaceDefault != nil {
		return namespaceDefault
	}
	return meshDefault
}

// visibleServices returns the services a proxy sees: exported to its namespace and,
// when a Sidecar sc scopes it, imported by the Sidecar's egress hosts.
func visibleServices(snap *registry.Snapshot, p *Proxy, sc *api.Resource) []*registry.Service {
	var out []*registry.Service
	var last string
	for _, svc := range snap.Services() {
		if svc.Hostname == last {
			continue // same host from several resources: Service picks the one to use
		}
		chosen := snap.Service(svc.Hostname, p.Namespace)
		if chosen == nil || (sc != nil && !sidecarImports(sc.Spec.(*networking.Sidecar), chosen, p.Namespace)) {
			continue
		}
		last = svc.Hostname
		out = append(out, chosen)
	}
	return out
}

// sidecarImports reports whether any of a Sidecar's egress listeners imports svc for a
// proxy in namespace ns.
func sidecarImports(sc *networking.Sidecar, svc *registry.Service, ns string) bool {
	for _, eg := range egressListeners(sc) {
		if hostsImport(eg.Hosts, svc, ns) {
			return true
		}
	}
	return false
}

// defaultEgress is the egress of a Sidecar that lists none, as in Istio: every
// service the proxy's namespace sees.
var defaultEgress = []*networking.IstioEgressListener{{Hosts: []string{"*/*"}}}

func egressListeners(sc *networking.Sidecar) []*networking.IstioEgressListener {
	if len(sc.Egress) == 0 {
		return defaultEgress
	}
	return sc.Egress
}

// importedOn reports whether the proxy reaches svc on port: without a Sidecar it does;
// with one, the egress listener for that port decides, else the one without a port
// (none: the port is not proxied to any service).
func (ctx *Context) importedOn(svc *registry.Service, port uint32) bool {
	if ctx.sidecar == nil {
		return true
	}
	var catchAll *networking.IstioEgressListener
	for _, eg := range egressListeners(ctx.sidecar.Spec.(*networking.Sidecar)) {
		switch {
		case eg.Port == nil:
			catchAll = eg
		case eg.Port.Number == port:
			return hostsImport(eg.Hosts, svc, ctx.Proxy.Namespace)
		}
	}
	return catchAll != nil && hostsImport(catchAll.Hosts, svc, ctx.Proxy.Namespace)
}

// outboundPort returns a service port as the proxy's outbound listeners and routes
// treat it: with the protocol of the Sidecar egress listener on its number when that
// listener names one (as in Istio, the listener's protocol for every service on it:
// HTTP routes an opaque TCP port by HTTP, TCP proxies an HTTP port as bytes), else
// as the service declares it. Clusters keep the service's protocol.
func (ctx *Context) outboundPort(port registry.Port) registry.Port {
	if ctx.sidecar == nil {
		return port
	}
	for _, eg := range egressListeners(ctx.sidecar.Spec.(*networking.Sidecar)) {
		if eg.Port != nil && eg.Port.Number == port.Number {
			if eg.Port.Protocol != "" {
				port.Protocol = eg.Port.Protocol
			}
			break
		}
	}
	return port
}

// hostsImport reports whether egress hosts ("namespace/host") import svc for a proxy
// in namespace ns.
func hostsImport(hosts []string, svc *registry.Service, ns string) bool {
	for _, h := range hosts {
		hns, host, ok := cutNamespace(h)
		if !ok {
			continue
		}
		switch hns {
		case "*":
		case ".":
			if svc.Namespace != ns {
				continue
			}
		case "~":
			continue
		default:
			if svc.Namespace != hns {
				continue
			}
		}
		if registry.HostMatches(host, svc.Hostname) || host == "*" {
			return true
		}
	}
	return false
}

func cutNamespace(h string) (ns, host string, ok bool) {
	for i := 0; i < len(h); i++ {
		if h[i] == '/' {
			return h[:i], h[i+1:], true
		}
	}
	return "", "", false
}

// unknownDestinations returns the cluster an Envoy sidecar sends traffic for
// destinations it does not know to; "" for none (REGISTRY_ONLY). An egressProxy that
// is no service port the proxy sees is reported, and nothing goes out.
func unknownDestinations(ctx *Context) string {
	return derived(ctx, "unknown-destinations", func() string {
		var policy *networking.OutboundTrafficPolicy
		if ctx.sidecar != nil {
			policy = ctx.sidecar.Spec.(*networking.Sidecar).OutboundTrafficPolicy
		}
		switch {
		case policy == nil && meshAllowsAny(ctx):
			return passthroughCluster
		case policy == nil:
			return ""
		case policy.Mode == networking.OutboundTrafficPolicy_REGISTRY_ONLY:
			return ""
		case policy.EgressProxy == nil:
			return passthroughCluster
		}
		ep := policy.EgressProxy
		host := registry.ResolveHost(ep.Host, ctx.sidecar.Meta.Namespace, ctx.Snapshot.Domain)
		port := ep.GetPort().GetNumber()
		for _, svc := range ctx.Services {
			if _, ok := svc.Port(port); ok && svc.Hostname == host {
				return clusterName(host, port, ep.Subset)
			}
		}
		where := fmt.Sprintf("Sidecar %s/%s spec.outboundTrafficPolicy.egressProxy", ctx.sidecar.Meta.Namespace, ctx.sidecar.Meta.Name)
		ctx.skip(where, errors.New(host+":"+fmt.Sprint(port)+" is not a service port this proxy sees; traffic to unknown destinations is dropped"))
		return ""
	})
}
