package xds

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// An http route of a VirtualService may delegate to another VirtualService, one
// without hosts, as in Istio: the route stands for the delegate's routes, each
// matching what both match (a delegate narrows its root's match: a longer prefix, an
// exact path under it, more headers; a pair that cannot both hold is left out) and
// taking from the root what it does not set itself (rewrite, timeout, retries, fault,
// mirror, CORS, headers). The delegate's destinations resolve in its own namespace,
// and it must be exported to the root's. Delegation is one level deep. A delegate
// that is missing, has hosts, or is not exported to the root's namespace is reported
// and the route left out.

// routeIn is an http route to translate, with the namespace its destinations resolve
// in: its VirtualService's.
type routeIn struct {
	h  *networking.HTTPRoute
	ns string
}

// expandDelegates returns the http routes of vs (in namespace ns), each route that
// delegates replaced by its delegate's routes merged with it.
func expandDelegates(ctx *Context, ns, name string, vs *networking.VirtualService) []routeIn {
	out := make([]routeIn, 0, len(vs.Http))
	for i, h := range vs.Http {
		if h.Delegate == nil {
			out = append(out, routeIn{h, ns})
			continue
		}
		dns := h.Delegate.Namespace
		if dns == "" {
			dns = ns
		}
		where := fmt.Sprintf("VirtualService %s/%s spec.http[%d].delegate", ns, name, i)
		d, err := delegateOf(ctx, ns, dns, h.Delegate.Name)
		if err != nil {
			derived(ctx, "delegate "+where, func() bool { ctx.skip(where, err); return true })
			continue
		}
		for _, dh := range d.Http {
			if merged, ok := mergeDelegated(h, dh); ok {
				out = append(out, routeIn{merged, dns})
			}
		}
	}
	return out
}

// delegateOf returns the VirtualService ns/name that a VirtualService in rootNS
// delegates to.
func delegateOf(ctx *Context, rootNS, ns, name string) (*networking.VirtualService, error) {
	for _, r := range ctx.Snapshot.Config(api.VirtualService) {
		if r.Meta.Namespace != ns || r.Meta.Name != name {
			continue
		}
		vs := r.Spec.(*networking.VirtualService)
		switch {
		case len(vs.Hosts) > 0:
			return nil, fmt.Errorf("VirtualService %s/%s has hosts, so it is no delegate; the route is left out", ns, name)
		case !exportedTo(vs.ExportTo, ns, rootNS):
			return nil, fmt.Errorf("VirtualService %s/%s is not exported to namespace %s; the route is left out", ns, name, rootNS)
		}
		return vs, nil
	}
	return nil, fmt.Errorf("no VirtualService %s/%s; the route is left out until there is", ns, name)
}

// exportedTo reports whether a resource of namespace ns with exportTo is visible in
// namespace to.
func exportedTo(exportTo []string, ns, to string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == to || (e == "." && ns == to) {
			return true
		}
	}
	return false
}

// mergeDelegated returns delegate route d under root route h; ok is false when no
// match of d can hold together with one of h.
func mergeDelegated(h, d *networking.HTTPRoute) (*networking.HTTPRoute, bool) {
	merged := proto.Clone(d).(*networking.HTTPRoute)
	switch {
	case len(h.Match) == 0:
	case len(d.Match) == 0:
		merged.Match = h.Match
	default:
		merged.Match = nil
		for _, rm := range h.Match {
			for _, dm := range d.Match {
				if m, ok := mergeMatch(rm, dm); ok {
					merged.Match = append(merged.Match, m)
				}
			}
		}
		if len(merged.Match) == 0 {
			return nil, false
		}
	}
	if merged.Name == "" {
		merged.Name = h.Name
	}
	if merged.Rewrite == nil {
		merged.Rewrite = h.Rewrite
	}
	if merged.Timeout == nil {
		merged.Timeout = h.Timeout
	}
	if merged.Retries == nil {
		merged.Retries = h.Retries
	}
	if merged.Fault == nil {
		merged.Fault = h.Fault
	}
	if merged.Mirror == nil && len(merged.Mirrors) == 0 {
		merged.Mirror, merged.MirrorPercentage, merged.Mirrors = h.Mirror, h.MirrorPercentage, h.Mirrors
	}
	if merged.CorsPolicy == nil {
		merged.CorsPolicy = h.CorsPolicy
	}
	if merged.Headers == nil {
		merged.Headers = h.Headers
	}
	return merged, true
}

// mergeMatch returns a match that holds when both root match r and delegate match d
// hold; ok is false when they cannot both hold (or navarch cannot tell that one
// narrows the other: regular expressions must be equal).
func mergeMatch(r, d *networking.HTTPMatchRequest) (*networking.HTTPMatchRequest, bool) {
	m := proto.Clone(d).(*networking.HTTPMatchRequest)
	var ok bool
	if m.Uri, ok = narrower(r.Uri, d.Uri); !ok {
		return nil, false
	}
	if m.Scheme, ok = narrower(r.Scheme, d.Scheme); !ok {
		return nil, false
	}
	if m.Method, ok = narrower(r.Method, d.Method); !ok {
		return nil, false
	}
	if m.Authority, ok = narrower(r.Authority, d.Authority); !ok {
		return nil, false
	}
	if m.Headers, ok = mergeKeyed(r.Headers, d.Headers, narrower); !ok {
		return nil, false
	}
	if m.QueryParams, ok = mergeKeyed(r.QueryParams, d.QueryParams, narrower); !ok {
		return nil, false
	}
	if m.WithoutHeaders, ok = mergeKeyed(r.WithoutHeaders, d.WithoutHeaders, same); !ok {
		return nil, false
	}
	if r.Port != 0 {
		if d.Port != 0 && d.Port != r.Port {
			return nil, false
		}
		m.Port = r.Port
	}
	if r.SourceNamespace != "" {
		if d.SourceNamespace != "" && d.SourceNamespace != r.SourceNamespace {
			return nil, false
		}
		m.SourceNamespace = r.SourceNamespace
	}
	for k, v := range r.SourceLabels {
		if dv, set := m.SourceLabels[k]; set && dv != v {
			return nil, false
		}
		if m.SourceLabels == nil {
			m.SourceLabels = map[string]string{}
		}
		m.SourceLabels[k] = v
	}
	if len(m.Gateways) == 0 {
		m.Gateways = r.Gateways
	}
	m.IgnoreUriCase = r.IgnoreUriCase || d.IgnoreUriCase
	if r.Name != "" && d.Name != "" {
		m.Name = r.Name + "." + d.Name
	} else if d.Name == "" {
		m.Name = r.Name
	}
	return m, true
}

// narrower returns the stricter of two string matches that a value must both pass: d
// when it implies r (equal, or a longer prefix or an exact value under r's prefix),
// r when d is unset; ok is false otherwise.
func narrower(r, d *networking.StringMatch) (*networking.StringMatch, bool) {
	switch {
	case r == nil:
		return d, true
	case d == nil:
		return r, true
	case proto.Equal(r, d):
		return d, true
	}
	prefix, isPrefix := r.MatchType.(*networking.StringMatch_Prefix)
	if !isPrefix {
		return nil, false
	}
	switch v := d.MatchType.(type) {
	case *networking.StringMatch_Prefix:
		return d, strings.HasPrefix(v.Prefix, prefix.Prefix)
	case *networking.StringMatch_Exact:
		return d, strings.HasPrefix(v.Exact, prefix.Prefix)
	}
	return nil, false
}

// mergeKeyed merges keyed string matches (headers, query parameters,
// withoutHeaders) that must all hold: a key only one side sets keeps its match, a key
// both set gets both's, or ok is false.
func mergeKeyed(r, d map[string]*networking.StringMatch, both func(r, d *networking.StringMatch) (*networking.StringMatch, bool)) (map[string]*networking.StringMatch, bool) {
	if len(r) == 0 {
		return d, true
	}
	out := make(map[string]*networking.StringMatch, len(r)+len(d))
	for k, v := range d {
		out[k] = v
	}
	for k, rv := range r {
		m := rv
		if dv, set := out[k]; set {
			var ok bool
			if m, ok = both(rv, dv); !ok {
				return nil, false
			}
		}
		out[k] = m
	}
	return out, true
}

// same is the merge of two negated matches (withoutHeaders): only equal ones merge.
func same(r, d *networking.StringMatch) (*networking.StringMatch, bool) {
	return d, proto.Equal(r, d)
}
