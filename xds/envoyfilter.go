package xds

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// EnvoyFilters patch what a build makes for Envoy sidecars and gateways, as istiod
// patches its own (pilot/pkg/networking/core/envoyfilter): after a generator has
// built a class's listeners, route configurations or clusters, the patches that
// apply to the class change, add or remove them, in order. A proxy gets the
// EnvoyFilters of the root namespace and of its own whose workloadSelector selects
// it and whose proxy match (Istio version, metadata) it meets; they apply by
// priority, then the root namespace's first, then by age and name. Proxyless gRPC
// clients get none (istiod's gRPC generator applies none either). A resource a patch
// touched is validated with every message packed in it (a patch's typed configs are
// not navarch's to trust), and one that fails is left out and reported, as any
// resource the build cannot make valid.
//
// Not applied: EXTENSION_CONFIG (navarch serves no ECDS), BOOTSTRAP (the bootstrap
// is istio-agent's), the WAYPOINT context, and EnvoyFilters bound by targetRefs
// (Gateway API resources, which navarch does not serve).

// envoyPatch is one config patch of an EnvoyFilter that applies to a class.
type envoyPatch struct {
	applyTo networking.EnvoyFilter_ApplyTo
	op      networking.EnvoyFilter_Patch_Operation
	match   *networking.EnvoyFilter_EnvoyConfigObjectMatch // never nil
	value   proto.Message                                  // nil for REMOVE
}

// envoyPatches are a class's patches by what they apply to, in the order they apply.
type envoyPatches map[networking.EnvoyFilter_ApplyTo][]*envoyPatch

// envoyPatches returns the patches that apply to the class, nil for none (always for
// proxyless gRPC).
func (ctx *Context) envoyPatches() envoyPatches {
	if ctx.Proxy.Generator == GeneratorGRPC || len(ctx.Snapshot.Config(api.EnvoyFilter)) == 0 {
		return nil
	}
	return derived(ctx, "envoy-filters", func() envoyPatches {
		var filters []*api.Resource
		for _, r := range ctx.Snapshot.Config(api.EnvoyFilter) {
			ef := r.Spec.(*networking.EnvoyFilter)
			switch {
			case r.Meta.Namespace != ctx.RootNamespace && r.Meta.Namespace != ctx.Proxy.Namespace:
			case len(ef.TargetRefs) > 0:
			case ef.WorkloadSelector != nil && !registry.LabelsMatch(ctx.Proxy.Labels, ef.WorkloadSelector.Labels):
			default:
				filters = append(filters, r)
			}
		}
		slices.SortStableFunc(filters, func(a, b *api.Resource) int {
			pa, pb := a.Spec.(*networking.EnvoyFilter).Priority, b.Spec.(*networking.EnvoyFilter).Priority
			return cmp.Or(cmp.Compare(pa, pb),
				-cmp.Compare(boolInt(a.Meta.Namespace == ctx.RootNamespace), boolInt(b.Meta.Namespace == ctx.RootNamespace)),
				creationOf(a).Compare(creationOf(b)),
				cmp.Compare(a.Meta.Name+"."+a.Meta.Namespace, b.Meta.Name+"."+b.Meta.Namespace))
		})
		out := envoyPatches{}
		for _, r := range filters {
			for i, cp := range r.Spec.(*networking.EnvoyFilter).ConfigPatches {
				if cp.GetPatch() == nil || !proxyMatches(ctx.Proxy, cp.GetMatch().GetProxy()) {
					continue
				}
				value, err := api.EnvoyFilterValue(cp.ApplyTo, cp.Patch.Value)
				if err != nil { // validated when written; a value of an older navarch
					ctx.skip("EnvoyFilter "+r.Meta.Namespace+"/"+r.Meta.Name+" configPatches["+strconv.Itoa(i)+"]", err)
					continue
				}
				p := &envoyPatch{applyTo: cp.ApplyTo, op: cp.Patch.Operation, match: cp.Match, value: value}
				if p.match == nil {
					p.match = &networking.EnvoyFilter_EnvoyConfigObjectMatch{}
				}
				if p.op == networking.EnvoyFilter_Patch_INSERT_BEFORE || p.op == networking.EnvoyFilter_Patch_INSERT_AFTER ||
					p.op == networking.EnvoyFilter_Patch_INSERT_FIRST {
					switch p.applyTo { // inserting is positional only among these; elsewhere it adds
					case networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_NETWORK_FILTER,
						networking.EnvoyFilter_HTTP_ROUTE, networking.EnvoyFilter_LISTENER_FILTER:
					default:
						p.op = networking.EnvoyFilter_Patch_ADD
					}
				}
				out[p.applyTo] = append(out[p.applyTo], p)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func creationOf(r *api.Resource) time.Time {
	if t := r.Meta.CreationTimestamp; t != nil {
		return *t
	}
	return time.Time{}
}

// proxyMatches reports whether a proxy meets a patch's proxy match: its Istio version
// matches the regular expression (a proxy that sends none matches none), and it has
// every metadata value given.
func proxyMatches(p *Proxy, m *networking.EnvoyFilter_ProxyMatch) bool {
	if v := m.GetProxyVersion(); v != "" {
		if len(v) > maxProxyVersionMatch || p.IstioVersion == "" {
			return false
		}
		re, err := regexp.Compile(v)
		if err != nil || !re.MatchString(p.IstioVersion) {
			return false
		}
	}
	for k, v := range m.GetMetadata() {
		if got, ok := p.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// maxProxyVersionMatch is the longest proxyVersion istiod compiles; a longer one
// matches no proxy.
const maxProxyVersionMatch = 1024

// has reports whether any patch applies to one of kinds.
func (pt envoyPatches) has(kinds ...networking.EnvoyFilter_ApplyTo) bool {
	for _, k := range kinds {
		if len(pt[k]) > 0 {
			return true
		}
	}
	return false
}

// apply patches what generator g built for ctx's class.
func (pt envoyPatches) apply(ctx *Context, typeURL string, ns []named) []named {
	switch {
	case typeURL == ListenerType && pt.has(networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_LISTENER_FILTER,
		networking.EnvoyFilter_FILTER_CHAIN, networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER,
		networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE):
		return patchResources(ctx, ns, pt.listeners, networking.EnvoyFilter_LISTENER)
	case typeURL == RouteType && pt.has(networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST,
		networking.EnvoyFilter_HTTP_ROUTE):
		return patchResources(ctx, ns, pt.routes, -1)
	case typeURL == ClusterType && pt.has(networking.EnvoyFilter_CLUSTER):
		return patchResources(ctx, ns, pt.cluster, networking.EnvoyFilter_CLUSTER)
	}
	return ns
}

// resourceMessage is an Envoy resource message that has a name.
type resourceMessage interface {
	proto.Message
	GetName() string
}

// patchResources applies patch to a copy of each resource (nil: the patch removed
// it), then adds the resources the class's ADD patches of adds make (none for -1).
// A resource no patch changed stays as built, shared with other classes.
func patchResources[M resourceMessage](ctx *Context, ns []named, patch func(*Context, M) M, adds networking.EnvoyFilter_ApplyTo) []named {
	out := make([]named, 0, len(ns))
	for _, n := range ns {
		msg := n.msg
		if n.lazy != nil {
			msg = n.lazy()
		}
		m := patch(ctx, proto.Clone(msg).(M))
		switch {
		case !m.ProtoReflect().IsValid(): // removed
		case proto.Equal(m, msg):
			if n.lazy != nil { // built now: what the memo keeps for other classes
				n.lazy = func() proto.Message { return msg }
			}
			out = append(out, n)
		default:
			out = append(out, named{name: m.GetName(), msg: m, patched: true})
		}
	}
	if adds < 0 {
		return out
	}
	pt := ctx.envoyPatches()
	for _, pc := range ctx.patchContexts() {
		for _, p := range pt[adds] {
			if p.op == networking.EnvoyFilter_Patch_ADD && addsIn(p, pc) {
				m := proto.Clone(p.value).(M)
				out = append(out, named{name: m.GetName(), msg: m, patched: true})
			}
		}
	}
	return out
}

// patchContexts are the contexts a class's resources are built in: a gateway's, or a
// sidecar's inbound and outbound.
func (ctx *Context) patchContexts() []networking.EnvoyFilter_PatchContext {
	if ctx.Proxy.Type == TypeRouter {
		return []networking.EnvoyFilter_PatchContext{networking.EnvoyFilter_GATEWAY}
	}
	return []networking.EnvoyFilter_PatchContext{networking.EnvoyFilter_SIDECAR_INBOUND, networking.EnvoyFilter_SIDECAR_OUTBOUND}
}

// patchContext is the context of a resource of the class: GATEWAY for a gateway's,
// SIDECAR_INBOUND or SIDECAR_OUTBOUND for a sidecar's.
func (ctx *Context) patchContext(inbound bool) networking.EnvoyFilter_PatchContext {
	switch {
	case ctx.Proxy.Type == TypeRouter:
		return networking.EnvoyFilter_GATEWAY
	case inbound:
		return networking.EnvoyFilter_SIDECAR_INBOUND
	}
	return networking.EnvoyFilter_SIDECAR_OUTBOUND
}

// inContext reports whether a patch applies in context pc.
func inContext(p *envoyPatch, pc networking.EnvoyFilter_PatchContext) bool {
	return p.match.Context == pc || p.match.Context == networking.EnvoyFilter_ANY
}

// addsIn reports whether an ADD patch adds its resource in context pc: a patch for
// any context adds to a sidecar's outbound and to a gateway, as in Istio.
func addsIn(p *envoyPatch, pc networking.EnvoyFilter_PatchContext) bool {
	if p.match.Context == networking.EnvoyFilter_ANY {
		return pc == networking.EnvoyFilter_SIDECAR_OUTBOUND || pc == networking.EnvoyFilter_GATEWAY
	}
	return p.match.Context == pc
}

// isMerge reports whether an operation merges the value into what it matches.
func isMerge(op networking.EnvoyFilter_Patch_Operation) bool {
	return op == networking.EnvoyFilter_Patch_MERGE || op == networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST
}

// mergeValue merges a patch's value into dst: Istio's merge (patchmerge.go).
func mergeValue(p *envoyPatch, dst proto.Message) {
	mergeMessage(dst.ProtoReflect(), p.value.ProtoReflect(), p.op == networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST)
}

// mergeAny merges the message packed in src into the one packed in dst, returning the
// result packed; dst when either cannot be unpacked or their types differ, as Istio
// keeps the filter's own config then.
func mergeAny(dst, src *anypb.Any) *anypb.Any {
	d, err := dst.UnmarshalNew()
	if err != nil {
		return dst
	}
	s, err := src.UnmarshalNew()
	if err != nil || d.ProtoReflect().Descriptor() != s.ProtoReflect().Descriptor() {
		return dst
	}
	mergeMessage(d.ProtoReflect(), s.ProtoReflect(), false)
	out, err := anypb.New(d)
	if err != nil {
		return dst
	}
	return out
}

// Clusters.

// cluster applies the CLUSTER patches to c: nil when one removes it.
func (pt envoyPatches) cluster(ctx *Context, c *clusterv3.Cluster) *clusterv3.Cluster {
	pc := ctx.patchContext(strings.HasPrefix(c.Name, "inbound|"))
	for _, p := range pt[networking.EnvoyFilter_CLUSTER] {
		if !inContext(p, pc) || !clusterMatches(ctx, c, p.match.GetCluster()) {
			continue
		}
		switch {
		case p.op == networking.EnvoyFilter_Patch_REMOVE:
			return nil
		case isMerge(p.op):
			mergeCluster(p, c)
		}
	}
	return c
}

// mergeCluster merges a patch into a cluster. A transport socket of the same name as
// the cluster's has its typed config merged into the cluster's; of another name, it
// replaces the cluster's (or is left out where the cluster has transport socket
// matches, with which Envoy refuses a transport socket), as in Istio.
func mergeCluster(p *envoyPatch, c *clusterv3.Cluster) {
	ts := p.value.(*clusterv3.Cluster).GetTransportSocket()
	if ts == nil {
		mergeValue(p, c)
		return
	}
	var own *corev3.TransportSocket
	if len(c.TransportSocketMatches) > 0 {
		for _, m := range c.TransportSocketMatches {
			if m.GetTransportSocket().GetName() == ts.Name {
				own = m.TransportSocket
				break
			}
		}
		if own == nil {
			return
		}
	} else if c.TransportSocket.GetName() == ts.Name {
		own = c.TransportSocket
	}
	if own == nil {
		c.TransportSocket = proto.Clone(ts).(*corev3.TransportSocket)
		return
	}
	if own.GetTypedConfig() != nil && ts.GetTypedConfig() != nil {
		own.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mergeAny(own.GetTypedConfig(), ts.GetTypedConfig())}
	}
}

// clusterMatches reports whether a cluster is the one a cluster match names: by name,
// or by the port, subset and service of its Istio name (direction|port|subset|host);
// an inbound cluster (inbound|port||) is of the services of the proxy's workload
// that it serves on that port, as in Istio.
func clusterMatches(ctx *Context, c *clusterv3.Cluster, m *networking.EnvoyFilter_ClusterMatch) bool {
	if m == nil {
		return true
	}
	if m.Name != "" {
		return m.Name == c.Name
	}
	parts := strings.SplitN(c.Name, "|", 4)
	var port, subset, host string
	if len(parts) == 4 {
		port, subset, host = parts[1], parts[2], parts[3]
	}
	n, _ := strconv.Atoi(port)
	service := m.Service == "" || m.Service == host
	if !service && parts[0] == "inbound" && n > 0 {
		service = slices.Contains(inboundHosts(ctx, uint32(n)), m.Service)
	}
	return service && (m.Subset == "" || m.Subset == subset) && (m.PortNumber == 0 || int(m.PortNumber) == n)
}

// inboundHosts are the host names of the services that select the proxy's workload
// and send it their traffic on port.
func inboundHosts(ctx *Context, port uint32) []string {
	var out []string
	for _, svc := range ctx.Snapshot.Services() {
		if !selectsWorkload(svc, ctx.Proxy) {
			continue
		}
		for _, p := range svc.Ports {
			if workloadPort(ctx, svc, p) == port {
				out = append(out, svc.Hostname)
				break
			}
		}
	}
	return out
}

// Route configurations.

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
// "https.<port>.<namespace>/<gateway>.<server>": the gateway and port name match
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
	num, server, _ := strings.Cut(rest, ".")
	n, _ := strconv.ParseUint(num, 10, 32)
	if scheme != "https" {
		return uint32(n), "", ""
	}
	for _, servers := range gatewayServers(ctx) {
		for _, s := range servers {
			if s.name() == server {
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

// Listeners.

// listeners applies the listener patches to l: nil when one removes it.
func (pt envoyPatches) listeners(ctx *Context, l *listenerv3.Listener) *listenerv3.Listener {
	pc := ctx.patchContext(l.TrafficDirection == corev3.TrafficDirection_INBOUND)
	applies := func(p *envoyPatch) bool { return inContext(p, pc) && listenerMatches(l, p) }
	for _, p := range pt[networking.EnvoyFilter_LISTENER] {
		if !applies(p) {
			continue
		}
		if p.op == networking.EnvoyFilter_Patch_REMOVE {
			return nil
		}
		if isMerge(p.op) {
			mergeValue(p, l)
		}
	}
	l.ListenerFilters = patchFilters(pt[networking.EnvoyFilter_LISTENER_FILTER], applies, l.ListenerFilters,
		func(p *envoyPatch) string { return p.match.GetListener().GetListenerFilter() },
		func(f *listenerv3.ListenerFilter) *anypb.Any { return f.GetTypedConfig() },
		func(f *listenerv3.ListenerFilter, a *anypb.Any) {
			f.ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}
		})
	chains := l.FilterChains[:0]
	for _, fc := range l.FilterChains {
		if fc = pt.filterChain(ctx, pc, l, fc); fc != nil {
			chains = append(chains, fc)
		}
	}
	l.FilterChains = chains
	if l.DefaultFilterChain != nil {
		l.DefaultFilterChain = pt.filterChain(ctx, pc, l, l.DefaultFilterChain)
	}
	for _, p := range pt[networking.EnvoyFilter_FILTER_CHAIN] {
		if p.op == networking.EnvoyFilter_Patch_ADD && applies(p) {
			l.FilterChains = append(l.FilterChains, proto.Clone(p.value).(*listenerv3.FilterChain))
		}
	}
	return l
}

// filterChain applies the FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches (and
// the route patches to connection managers' own route configurations) to fc: nil
// when one removes it.
func (pt envoyPatches) filterChain(ctx *Context, pc networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain) *listenerv3.FilterChain {
	applies := func(p *envoyPatch) bool {
		return inContext(p, pc) && listenerMatches(l, p) && filterChainMatches(l, fc, p.match.GetListener())
	}
	for _, p := range pt[networking.EnvoyFilter_FILTER_CHAIN] {
		if !applies(p) {
			continue
		}
		if p.op == networking.EnvoyFilter_Patch_REMOVE {
			return nil
		}
		if isMerge(p.op) {
			mergeFilterChain(p, fc)
		}
	}
	filterName := func(p *envoyPatch) string { return p.match.GetListener().GetFilterChain().GetFilter().GetName() }
	fc.Filters = patchFilters(pt[networking.EnvoyFilter_NETWORK_FILTER], applies, fc.Filters, filterName,
		func(f *listenerv3.Filter) *anypb.Any { return f.GetTypedConfig() },
		func(f *listenerv3.Filter, a *anypb.Any) {
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		})
	for _, f := range fc.Filters {
		if f.Name != hcmFilterName || f.GetTypedConfig() == nil {
			continue
		}
		inFilter := func(p *envoyPatch) bool {
			return applies(p) && (filterName(p) == "" || filterName(p) == f.Name)
		}
		pt.connectionManager(ctx, pc, f, inFilter)
	}
	return fc
}

// connectionManager applies the HTTP_FILTER patches to an HTTP connection manager's
// filters, and the route patches to its own route configuration (an inbound one's).
func (pt envoyPatches) connectionManager(ctx *Context, pc networking.EnvoyFilter_PatchContext, f *listenerv3.Filter, applies func(*envoyPatch) bool) {
	hasHTTP := slices.ContainsFunc(pt[networking.EnvoyFilter_HTTP_FILTER], applies)
	hasRoutes := pc != networking.EnvoyFilter_GATEWAY && pt.has(networking.EnvoyFilter_ROUTE_CONFIGURATION,
		networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE)
	if !hasHTTP && !hasRoutes {
		return
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return
	}
	if hasHTTP {
		hcm.HttpFilters = patchFilters(pt[networking.EnvoyFilter_HTTP_FILTER], applies, hcm.HttpFilters,
			func(p *envoyPatch) string {
				return p.match.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName()
			},
			func(h *hcmv3.HttpFilter) *anypb.Any { return h.GetTypedConfig() },
			func(h *hcmv3.HttpFilter, a *anypb.Any) { h.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a} })
	}
	if rc := hcm.GetRouteConfig(); rc != nil && hasRoutes {
		pt.patchRoutes(ctx, pc, rc)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}
}

// filterMessage is a named filter: a listener filter, network filter or HTTP filter.
type filterMessage interface {
	proto.Message
	GetName() string
}

// patchFilters applies the patches of one kind of filter to a list of them, as Istio
// does: ADD appends, INSERT_FIRST prepends, INSERT_BEFORE and INSERT_AFTER insert
// next to the first filter of the name the match gives (or first and last when it
// gives none), REPLACE and REMOVE act on the filters of that name (and need one),
// and MERGE then merges into every filter of that name: its name, and its typed
// config into the filter's. name is the filter name a patch matches ("" for any).
func patchFilters[F filterMessage](patches []*envoyPatch, applies func(*envoyPatch) bool, filters []F,
	name func(*envoyPatch) string, config func(F) *anypb.Any, setConfig func(F, *anypb.Any),
) []F {
	for _, p := range patches {
		if !applies(p) {
			continue
		}
		want := name(p)
		matches := func(f F) bool { return want == "" || f.GetName() == want }
		value := func() F { return proto.Clone(p.value).(F) }
		switch p.op {
		case networking.EnvoyFilter_Patch_ADD:
			filters = append(filters, value())
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			filters = slices.Insert(filters, 0, value())
		case networking.EnvoyFilter_Patch_INSERT_BEFORE, networking.EnvoyFilter_Patch_INSERT_AFTER:
			filters = insertAt(filters, want != "", matches, p.op == networking.EnvoyFilter_Patch_INSERT_AFTER, value)
		case networking.EnvoyFilter_Patch_REPLACE:
			if i := slices.IndexFunc(filters, matches); want != "" && i >= 0 {
				filters[i] = value()
			}
		case networking.EnvoyFilter_Patch_REMOVE:
			if want != "" {
				filters = slices.DeleteFunc(filters, matches)
			}
		}
	}
	for _, f := range filters {
		for _, p := range patches {
			if p.op != networking.EnvoyFilter_Patch_MERGE || !applies(p) || (name(p) != "" && name(p) != f.GetName()) {
				continue
			}
			own := config(f)
			if own == nil {
				continue
			}
			v := p.value.(F)
			if v.GetName() != "" {
				setName(f, v.GetName())
			}
			if vc := config(v); vc != nil {
				setConfig(f, mergeAny(own, vc))
			}
		}
	}
	return filters
}

// setName renames a filter.
func setName(f proto.Message, name string) {
	m := f.ProtoReflect()
	m.Set(m.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString(name))
}

// mergeFilterChain merges a patch into a filter chain; a transport socket of the
// chain's transport socket's name has its typed config merged into the chain's, as
// in Istio.
func mergeFilterChain(p *envoyPatch, fc *listenerv3.FilterChain) {
	ts := p.value.(*listenerv3.FilterChain).GetTransportSocket()
	if ts == nil || fc.TransportSocket == nil {
		mergeValue(p, fc)
		return
	}
	if ts.Name != fc.TransportSocket.Name {
		return
	}
	if own, vc := fc.TransportSocket.GetTypedConfig(), ts.GetTypedConfig(); own != nil && vc != nil {
		fc.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mergeAny(own, vc)}
	}
}

// listenerMatches reports whether a listener is the one a patch's listener match
// names: by name and port; the virtual listeners, which hand connections to chains
// by their destination port, match any port unless the patch is for the listener
// itself.
func listenerMatches(l *listenerv3.Listener, p *envoyPatch) bool {
	m := p.match.GetListener()
	if m == nil {
		return true
	}
	if m.Name != "" && m.Name != l.Name {
		return false
	}
	if p.applyTo != networking.EnvoyFilter_LISTENER && (l.Name == virtualInbound || l.Name == virtualOutbound) {
		return true
	}
	return m.PortNumber == 0 || l.GetAddress().GetSocketAddress().GetPortValue() == m.PortNumber
}

// filterChainMatches reports whether a filter chain is one a listener match names.
func filterChainMatches(l *listenerv3.Listener, fc *listenerv3.FilterChain, m *networking.EnvoyFilter_ListenerMatch) bool {
	if m == nil {
		return true
	}
	fcm := fc.GetFilterChainMatch()
	if (l.Name == virtualInbound || l.Name == virtualOutbound) && m.PortNumber > 0 && fcm.GetDestinationPort().GetValue() != m.PortNumber {
		return false
	}
	c := m.FilterChain
	if c == nil {
		return true
	}
	switch {
	case c.Name != "" && c.Name != fc.Name:
		return false
	case c.Sni != "" && !slices.Contains(fcm.GetServerNames(), c.Sni):
		return false
	case c.TransportProtocol != "" && fcm.GetTransportProtocol() != c.TransportProtocol:
		return false
	case c.DestinationPort > 0 && fcm.GetDestinationPort().GetValue() != c.DestinationPort:
		return false
	}
	if c.ApplicationProtocols != "" {
		for p := range strings.SplitSeq(c.ApplicationProtocols, ",") {
			if !slices.Contains(fcm.GetApplicationProtocols(), p) {
				return false
			}
		}
	}
	return true
}
