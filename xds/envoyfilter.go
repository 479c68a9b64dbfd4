package xds

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
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
		// By priority, the root namespace's first, then by age and name.
		sort.SliceStable(filters, func(i, j int) bool {
			a, b := filters[i], filters[j]
			if pa, pb := a.Spec.(*networking.EnvoyFilter).Priority, b.Spec.(*networking.EnvoyFilter).Priority; pa != pb {
				return pa < pb
			}
			if ra, rb := a.Meta.Namespace == ctx.RootNamespace, b.Meta.Namespace == ctx.RootNamespace; ra != rb {
				return ra
			}
			return registry.Older(a, b)
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

// proxyMatches reports whether a proxy meets a patch's proxy match: its Istio version
// matches the regular expression (a proxy that sends none matches none), and it has
// every metadata value given.
func proxyMatches(p *Proxy, m *networking.EnvoyFilter_ProxyMatch) bool {
	if v := m.GetProxyVersion(); v != "" {
		if len(v) > api.MaxProxyVersionLength || p.IstioVersion == "" {
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
