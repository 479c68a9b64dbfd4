package xds

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
)

// Describe explains what proxy p does with the service host (fully qualified) in
// snap, as istioctl's `x describe` explains a pod's: which DestinationRule and
// VirtualService it takes, whether it talks mTLS to each port and why, and the
// PeerAuthentication and AuthorizationPolicies the service's endpoints serve under,
// and the gateways that expose it (describeGateways).
// It reads the same functions the build does, and the clusters the proxy would be
// sent, so it says what the proxy gets. It returns the service, whose listing (the
// registry's view) the caller puts in; an error says why there is none for p.
func (s *Server) Describe(snap *registry.Snapshot, p *Proxy, host string) (*client.ServiceDescription, *registry.Service, error) {
	if p.Type != TypeSidecar {
		return nil, nil, fmt.Errorf("proxy type %q: describe explains what sidecars and proxyless clients get", p.Type)
	}
	svc := snap.Service(host, p.Namespace)
	if svc == nil {
		return nil, nil, notVisible(snap, host, p.Namespace)
	}
	ctx := newContext(snap, p, s.cfg.TrustDomain, s.cfg.RootNamespace)
	d := &client.ServiceDescription{Revision: snap.Revision, Proxy: proxyDescription(p), Ports: []client.PortDescription{}, Inbound: []client.InboundDescription{}}
	if !slices.ContainsFunc(ctx.Services, func(v *registry.Service) bool { return v.Hostname == svc.Hostname }) && ctx.sidecar != nil {
		d.Errors = append(d.Errors, fmt.Sprintf("Sidecar %s/%s does not import the service: the proxy gets no configuration for it",
			ctx.sidecar.Meta.Namespace, ctx.sidecar.Meta.Name))
	}
	dr := ctx.destinationRuleResource(svc)
	if dr != nil {
		d.DestinationRule = describeRule(ctx, svc, dr)
	}
	if hr := virtualServiceFor(ctx, svc.Hostname); hr != nil {
		d.VirtualService = describeVirtualService(hr)
	}
	sets, err := profileFor(p).build(ctx)
	for _, port := range svc.Ports {
		var c *clusterv3.Cluster
		if set := sets[ClusterType]; set != nil {
			if r := set.ByName[clusterName(svc.Hostname, port.Number, "")]; r != nil {
				c, _ = unmarshalCluster(r)
			}
		}
		tls, reason := portSecurity(ctx, svc, dr, port, c)
		d.Ports = append(d.Ports, client.PortDescription{Number: port.Number, Name: port.Name, Protocol: port.Protocol, TLS: tls, Reason: reason})
	}
	d.Inbound = describeInbound(ctx, svc)
	d.Gateways = describeGateways(snap, svc, s.cfg.TrustDomain, s.cfg.RootNamespace)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.Contains(line, svc.Hostname) {
				d.Errors = append(d.Errors, line)
			}
		}
	}
	return d, svc, nil
}

// notVisible says why no service host is there for a proxy in namespace ns.
func notVisible(snap *registry.Snapshot, host, ns string) error {
	for _, svc := range snap.Services() {
		if svc.Hostname == host {
			return fmt.Errorf("service %s (namespace %s) is not exported to namespace %s (exportTo %s)",
				host, svc.Namespace, ns, strings.Join(svc.ExportTo, ","))
		}
	}
	return fmt.Errorf("no service %s in the registry", host)
}

// proxyDescription names a proxy's kind, type, namespace and labels.
func proxyDescription(p *Proxy) string {
	kind := "envoy"
	if p.Generator == GeneratorGRPC {
		kind = "grpc"
	}
	out := kind + " " + p.Type + " in " + p.Namespace
	if len(p.Labels) > 0 {
		out += " (" + strings.Join(sortedLabels(p.Labels), ",") + ")"
	}
	return out
}

func unmarshalCluster(r *Resource) (*clusterv3.Cluster, error) {
	c := &clusterv3.Cluster{}
	return c, r.Body.UnmarshalTo(c)
}

// describeRule summarizes DestinationRule r as it applies to svc.
func describeRule(ctx *Context, svc *registry.Service, r *api.Resource) *client.RuleDescription {
	dr := r.Spec.(*networking.DestinationRule)
	out := &client.RuleDescription{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Host: dr.Host}
	eps := ctx.Snapshot.Endpoints(svc)
	for _, s := range dr.Subsets {
		n := 0
		for _, w := range eps {
			if w.Matches(s.Labels) {
				n++
			}
		}
		out.Subsets = append(out.Subsets, client.SubsetDescription{Name: s.Name, Labels: s.Labels, Endpoints: n})
	}
	tp := dr.GetTrafficPolicy()
	out.LoadBalancer = loadBalancerOf(tp.GetLoadBalancer())
	out.ConnectionPool = tp.GetConnectionPool() != nil
	out.OutlierDetection = tp.GetOutlierDetection() != nil
	if tls := tp.GetTls(); tls != nil {
		out.TLS = tls.GetMode().String()
	}
	return out
}

// loadBalancerOf names a load balancer setting: its simple policy or its hash.
func loadBalancerOf(lb *networking.LoadBalancerSettings) string {
	ch := lb.GetConsistentHash()
	switch {
	case lb == nil:
		return ""
	case ch == nil:
		return lb.GetSimple().String()
	case ch.GetHttpHeaderName() != "":
		return "consistent hash (header " + ch.GetHttpHeaderName() + ")"
	case ch.GetHttpCookie() != nil:
		return "consistent hash (cookie " + ch.GetHttpCookie().GetName() + ")"
	case ch.GetUseSourceIp():
		return "consistent hash (source IP)"
	case ch.GetHttpQueryParameterName() != "":
		return "consistent hash (query parameter " + ch.GetHttpQueryParameterName() + ")"
	}
	return "consistent hash"
}

// describeVirtualService summarizes a VirtualService's routes.
func describeVirtualService(hr *registry.HostRoutes) *client.VirtualServiceDescription {
	vs := hr.Resource.Spec.(*networking.VirtualService)
	out := &client.VirtualServiceDescription{Namespace: hr.Resource.Meta.Namespace, Name: hr.Resource.Meta.Name,
		Hosts: hr.Hosts, TCP: len(vs.Tcp), TLS: len(vs.Tls)}
	for _, h := range vs.Http {
		out.HTTP = append(out.HTTP, describeRoute(hr.Resource.Meta.Namespace, h))
	}
	return out
}

// describeRoute summarizes one HTTP route of a VirtualService in namespace ns.
func describeRoute(ns string, h *networking.HTTPRoute) client.RouteDescription {
	out := client.RouteDescription{Name: h.Name}
	for _, m := range h.Match {
		out.Match = append(out.Match, matchOf(m))
	}
	var total int32
	for _, d := range h.Route {
		total += d.Weight
	}
	for _, d := range h.Route {
		pct := 100.0
		if total > 0 {
			pct = float64(d.Weight) * 100 / float64(total)
		}
		out.Destinations = append(out.Destinations, client.DestinationDescription{Host: d.GetDestination().GetHost(),
			Subset: d.GetDestination().GetSubset(), Port: d.GetDestination().GetPort().GetNumber(), Weight: d.Weight, Percent: pct})
	}
	if dl := h.Delegate; dl != nil {
		out.Also = append(out.Also, "delegate "+orNamespace(dl.Namespace, ns)+"/"+dl.Name)
	}
	if h.Redirect != nil {
		out.Also = append(out.Also, "redirect")
	}
	if h.DirectResponse != nil {
		out.Also = append(out.Also, "direct response "+strconv.Itoa(int(h.DirectResponse.Status)))
	}
	if rw := h.Rewrite; rw != nil {
		out.Also = append(out.Also, "rewrite")
	}
	if f := h.Fault.GetAbort(); f != nil {
		status := "grpc status " + f.GetGrpcStatus()
		if f.GetHttpStatus() != 0 {
			status = "status " + strconv.Itoa(int(f.GetHttpStatus()))
		}
		out.Also = append(out.Also, fmt.Sprintf("fault abort %s%% %s", percentOf(f.Percentage), status))
	}
	if f := h.Fault.GetDelay(); f != nil {
		out.Also = append(out.Also, fmt.Sprintf("fault delay %s%% %s", percentOf(f.Percentage), f.GetFixedDelay().AsDuration()))
	}
	if h.Timeout != nil {
		out.Also = append(out.Also, "timeout "+h.Timeout.AsDuration().String())
	}
	if r := h.Retries; r != nil {
		out.Also = append(out.Also, "retries "+strconv.Itoa(int(r.Attempts)))
	}
	if h.Mirror != nil || len(h.Mirrors) > 0 {
		out.Also = append(out.Also, "mirror")
	}
	if h.Headers != nil {
		out.Also = append(out.Also, "headers")
	}
	if h.CorsPolicy != nil {
		out.Also = append(out.Also, "cors")
	}
	return out
}

func orNamespace(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

// percentOf is a fault's percentage as Istio reads it: all when unset.
func percentOf(p *networking.Percent) string {
	if p == nil {
		return "100"
	}
	return strconv.FormatFloat(p.Value, 'f', -1, 64)
}

// matchOf summarizes one match of a route: its conditions, ANDed.
func matchOf(m *networking.HTTPMatchRequest) string {
	var parts []string
	str := func(what string, s *networking.StringMatch) {
		switch {
		case s.GetExact() != "":
			parts = append(parts, what+" exact "+s.GetExact())
		case s.GetPrefix() != "":
			parts = append(parts, what+" prefix "+s.GetPrefix())
		case s.GetRegex() != "":
			parts = append(parts, what+" regex "+s.GetRegex())
		case s != nil:
			parts = append(parts, what+" present")
		}
	}
	str("uri", m.Uri)
	str("method", m.Method)
	str("authority", m.Authority)
	str("scheme", m.Scheme)
	for _, k := range registry.SortedKeys(m.Headers) {
		str("header "+k, m.Headers[k])
	}
	for _, k := range registry.SortedKeys(m.WithoutHeaders) {
		str("without header "+k, m.WithoutHeaders[k])
	}
	for _, k := range registry.SortedKeys(m.QueryParams) {
		str("query "+k, m.QueryParams[k])
	}
	if m.Port != 0 {
		parts = append(parts, "port "+strconv.Itoa(int(m.Port)))
	}
	if len(m.SourceLabels) > 0 {
		parts = append(parts, "source labels "+strings.Join(sortedLabels(m.SourceLabels), ","))
	}
	if m.SourceNamespace != "" {
		parts = append(parts, "source namespace "+m.SourceNamespace)
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, ", ")
}

// portSecurity says whether the proxy talks mTLS, TLS or plaintext to a service
// port, from the cluster it is sent for the port (nil when it gets none), and why.
func portSecurity(ctx *Context, svc *registry.Service, dr *api.Resource, port registry.Port, c *clusterv3.Cluster) (tls, reason string) {
	var spec *networking.DestinationRule
	ruleName := ""
	if dr != nil {
		spec, ruleName = dr.Spec.(*networking.DestinationRule), "DestinationRule "+dr.Meta.Namespace+"/"+dr.Meta.Name
	}
	tp := trafficPolicy(ctx.Mesh, spec, port.Number, "")
	mode, byRule := tp.GetTls().GetMode(), tp.GetTls() != nil
	grpc := ctx.Proxy.Generator == GeneratorGRPC
	switch {
	case c == nil:
		return "none", "the proxy gets no cluster for the port"
	case len(c.TransportSocketMatches) > 0:
		eps := ctx.Snapshot.EndpointsOn(svc, port.Number)
		n := 0
		for _, w := range eps {
			if takesAutoMTLS(ctx, w, port) {
				n++
			}
		}
		reason := "automatic mTLS, by endpoint: mTLS to those with a sidecar (Istio's tlsMode label, or a WorkloadEntry's service account) that do not refuse it, plaintext to the others"
		switch n {
		case len(eps):
			return "mTLS", reason
		case 0:
			return "plaintext", reason
		}
		return fmt.Sprintf("mTLS to %d of %d endpoints, plaintext to the others", n, len(eps)), reason
	case c.TransportSocket != nil && byRule && mode == networking.ClientTLSSettings_ISTIO_MUTUAL:
		return "mTLS", ruleName + ": tls mode ISTIO_MUTUAL"
	case c.TransportSocket != nil && byRule:
		return "TLS", ruleName + ": tls mode " + mode.String()
	case c.TransportSocket != nil:
		return "mTLS", "automatic mTLS: every endpoint requires it (PeerAuthentication STRICT)"
	case byRule && grpc && mode != networking.ClientTLSSettings_DISABLE && mode != networking.ClientTLSSettings_ISTIO_MUTUAL:
		return "plaintext", ruleName + ": tls mode " + mode.String() + ", which proxyless gRPC does not originate (only ISTIO_MUTUAL)"
	case byRule:
		return "plaintext", ruleName + ": tls mode " + mode.String()
	case !autoMTLS(ctx):
		return "plaintext", "the mesh config turns automatic mTLS off (enableAutoMtls false)"
	case grpc:
		return "plaintext", "automatic mTLS: not every endpoint requires mTLS (a proxyless server serves PERMISSIVE as plaintext)"
	}
	return "plaintext", "automatic mTLS: the service is outside the mesh, or its endpoints do not take mTLS"
}

// describeInbound groups the endpoints of svc by the policies they serve under:
// the effective mTLS mode of each service port, the PeerAuthentications that
// decided it, and the AuthorizationPolicies that apply.
func describeInbound(ctx *Context, svc *registry.Service) []client.InboundDescription {
	out := []client.InboundDescription{}
	at := map[string]int{}
	for _, w := range ctx.Snapshot.Endpoints(svc) {
		in := client.InboundDescription{MTLS: map[uint32]string{}}
		for _, port := range svc.Ports {
			mode, r := peerAuthModeOf(ctx.Snapshot, ctx.RootNamespace, w.Namespace, w.Labels, w.PortFor(port))
			in.MTLS[port.Number] = mtlsModeName(mode)
			if r != nil && !slices.Contains(in.PeerAuthentications, r.Meta.Namespace+"/"+r.Meta.Name) {
				in.PeerAuthentications = append(in.PeerAuthentications, r.Meta.Namespace+"/"+r.Meta.Name)
			}
		}
		for _, r := range selectedPolicies(ctx, api.AuthorizationPolicy, w.Namespace, w.Labels) {
			in.Authorization = append(in.Authorization, client.PolicyReference{Namespace: r.Meta.Namespace, Name: r.Meta.Name,
				Action: r.Spec.(*security.AuthorizationPolicy).Action.String()})
		}
		key := inboundKey(in)
		i, ok := at[key]
		if !ok {
			i, at[key] = len(out), len(out)
			out = append(out, in)
		}
		out[i].Endpoints = append(out[i].Endpoints, endpointName(w))
	}
	return out
}

// endpointName is a workload's name and address: "reviews-v1 (10.0.0.1)".
func endpointName(w *registry.Workload) string {
	if w.Name == "" {
		return w.Address
	}
	return w.Name + " (" + w.Address + ")"
}

func inboundKey(in client.InboundDescription) string {
	var b strings.Builder
	for _, port := range slices.Sorted(maps.Keys(in.MTLS)) {
		fmt.Fprintf(&b, "%d=%s,", port, in.MTLS[port])
	}
	b.WriteString("|" + strings.Join(in.PeerAuthentications, ",") + "|")
	for _, p := range in.Authorization {
		b.WriteString(p.Namespace + "/" + p.Name + ",")
	}
	return b.String()
}

func mtlsModeName(m mtlsMode) string {
	return [...]string{"PERMISSIVE", "STRICT", "DISABLE"}[m]
}

// DescribeWorkload explains workload w of snap, as istioctl's `x describe pod`
// explains a pod: the services it is an endpoint of and how it serves their ports,
// the PeerAuthentications and AuthorizationPolicies that apply to it, and the
// Sidecar that scopes its proxy; for a gateway's, the Gateways that select it and
// how it listens with their servers. The workload's own listing is left to the
// caller.
func (s *Server) DescribeWorkload(snap *registry.Snapshot, w *registry.Workload) *client.WorkloadDescription {
	p := &Proxy{Type: TypeSidecar, Namespace: w.Namespace, Labels: w.Labels, IP: w.Address}
	ctx := newContext(snap, p, s.cfg.TrustDomain, s.cfg.RootNamespace)
	d := &client.WorkloadDescription{Revision: snap.Revision, Origin: w.Origin.String(), Services: []client.WorkloadServiceInfo{}}
	named := func(r *api.Resource) string {
		if r == nil {
			return ""
		}
		return r.Meta.Namespace + "/" + r.Meta.Name
	}
	mode, r := peerAuthModeOf(snap, ctx.RootNamespace, w.Namespace, w.Labels, 0)
	d.MTLS, d.MTLSFrom = mtlsModeName(mode), named(r)
	if r != nil {
		d.PeerAuthentications = append(d.PeerAuthentications, named(r))
	}
	for _, svc := range snap.Services() {
		if !slices.Contains(snap.Endpoints(svc), w) {
			continue
		}
		info := client.WorkloadServiceInfo{Host: svc.Hostname, Namespace: svc.Namespace, Ports: []client.WorkloadPortServing{}}
		for _, port := range svc.Ports {
			mode, r := peerAuthModeOf(snap, ctx.RootNamespace, w.Namespace, w.Labels, w.PortFor(port))
			info.Ports = append(info.Ports, client.WorkloadPortServing{Name: port.Name, Number: port.Number, Protocol: port.Protocol,
				Target: w.PortFor(port), MTLS: mtlsModeName(mode), MTLSFrom: named(r)})
			if r != nil && !slices.Contains(d.PeerAuthentications, named(r)) {
				d.PeerAuthentications = append(d.PeerAuthentications, named(r))
			}
		}
		if snap.Service(svc.Hostname, w.Namespace) != nil { // what a client beside it takes
			info.DestinationRule = named(ctx.destinationRuleResource(svc))
			if hr := virtualServiceFor(ctx, svc.Hostname); hr != nil {
				info.VirtualService = named(hr.Resource)
			}
		}
		d.Services = append(d.Services, info)
	}
	for _, r := range selectedPolicies(ctx, api.AuthorizationPolicy, w.Namespace, w.Labels) {
		d.Authorization = append(d.Authorization, client.PolicyReference{Namespace: r.Meta.Namespace, Name: r.Meta.Name,
			Action: r.Spec.(*security.AuthorizationPolicy).Action.String()})
	}
	d.Sidecar = named(ctx.sidecar)
	d.Gateways = workloadGateways(snap, w, s.cfg.TrustDomain, s.cfg.RootNamespace)
	return d
}
