package xds

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"
)

// The listener patches of EnvoyFilters (envoyfilter.go): listeners, their listener
// filters, filter chains, network filters and HTTP filters.

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
	// Only inbound connection managers have route configurations of their own;
	// the others take theirs by RDS, patched as such.
	hasRoutes := pc == networking.EnvoyFilter_SIDECAR_INBOUND &&
		pt.has(networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE)
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
