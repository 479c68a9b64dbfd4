package xds

import (
	"cmp"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// httpRoutes translates a VirtualService's http section into routes for the proxy's
// view of one service port: one route per match condition (conditions of one HTTPRoute
// are ORed), in order, leaving out conditions bound to another port, gateway, source
// namespace or source labels. gateway is the gateway ("ns/name") the routes serve, or
// "" for the mesh (sidecars and proxyless clients); tls says that gateway's server
// has TLS settings, so a redirect's scheme is https unless it says otherwise. Routes
// that delegate stand for their delegate's routes (delegate.go).
func httpRoutes(ctx *Context, vs *api.Resource, port uint32, gateway string, tls bool) []*routev3.Route {
	var out []*routev3.Route
	ns := vs.Meta.Namespace
	for _, in := range expandDelegates(ctx, ns, vs.Meta.Name, vs.Spec.(*networking.VirtualService)) {
		h := in.h
		matches := h.Match
		if len(matches) == 0 {
			matches = []*networking.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			if !appliesTo(ctx.Proxy, m, port, ns, gateway) {
				continue
			}
			r := &routev3.Route{Name: routeName(h, m), Match: routeMatch(m), Metadata: configMetadata(vs), StatPrefix: m.GetStatPrefix()}
			authority := setHeaders(r, h.Headers)
			setAction(ctx, r, in.ns, h, port, tls, authority)
			r.Decorator = &routev3.Decorator{Operation: routeOperation(r, vs.Meta.Name, port)}
			if h.Fault != nil {
				r.TypedPerFilterConfig = map[string]*anypb.Any{faultFilter: mustAny(fault(h.Fault))}
			}
			if h.CorsPolicy != nil && ctx.Proxy.Generator != GeneratorGRPC { // grpc-go has no CORS filter
				if r.TypedPerFilterConfig == nil {
					r.TypedPerFilterConfig = map[string]*anypb.Any{}
				}
				r.TypedPerFilterConfig[corsFilter] = mustAny(corsPolicy(h.CorsPolicy))
			}
			out = append(out, r)
		}
	}
	return out
}

// routeOperation names the tracing spans of a route's requests (its decorator), as
// istiod names them: "<host>:<port><path>" of the one cluster it sends to, else
// "<VirtualService>:<port><path>" (weighted destinations, redirects, direct
// responses), where path is the route's match: an exact path as it is, a prefix
// followed by "*", a regex as written, "/*" for none.
func routeOperation(r *routev3.Route, vsName string, port uint32) string {
	path := "/*"
	switch m := r.GetMatch(); m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		path = m.GetPrefix() + "*"
	case *routev3.RouteMatch_Path:
		path = m.GetPath()
	case *routev3.RouteMatch_SafeRegex:
		path = m.GetSafeRegex().GetRegex()
	}
	if c := r.GetRoute().GetCluster(); strings.Count(c, "|") == 3 {
		parts := strings.SplitN(c, "|", 4) // direction|port|subset|host
		n, _ := strconv.Atoi(parts[1])
		return parts[3] + ":" + strconv.Itoa(n) + path
	}
	return vsName + ":" + strconv.FormatUint(uint64(port), 10) + path
}

// traceOperation names the spans of a service port's requests where no
// VirtualService routes them, as istiod names them: "<host>:<port>/*".
func traceOperation(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)) + "/*"
}

// corsPolicy translates a route's CORS policy for Envoy's CORS filter, as Istio does:
// allowed origins (string matches, and the deprecated exact allowOrigin), methods,
// headers and exposed headers joined by commas, max age in seconds; preflight
// requests that match no origin are forwarded to the application unless the policy
// says IGNORE.
func corsPolicy(in *networking.CorsPolicy) *corsv3.CorsPolicy {
	out := &corsv3.CorsPolicy{
		AllowMethods:                 strings.Join(in.AllowMethods, ","),
		AllowHeaders:                 strings.Join(in.AllowHeaders, ","),
		ExposeHeaders:                strings.Join(in.ExposeHeaders, ","),
		AllowCredentials:             in.AllowCredentials,
		FilterEnabled:                &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}},
		ForwardNotMatchingPreflights: wrapperspb.Bool(in.UnmatchedPreflights != networking.CorsPolicy_IGNORE),
	}
	if in.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(in.MaxAge.GetSeconds(), 10)
	}
	for _, o := range in.AllowOrigins {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(o))
	}
	//lint:ignore SA1019 deprecated in favour of allowOrigins, still accepted, as by Istio
	for _, o := range in.AllowOrigin {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
	}
	return out
}

// appliesTo reports whether a match condition of a VirtualService in namespace ns can
// apply to proxy p on port, for gateway (or the mesh, "").
func appliesTo(p *Proxy, m *networking.HTTPMatchRequest, port uint32, ns, gateway string) bool {
	if m == nil {
		return true
	}
	if m.Port != 0 && m.Port != port {
		return false
	}
	if len(m.Gateways) > 0 && !boundTo(m.Gateways, ns, gateway) {
		return false
	}
	if m.SourceNamespace != "" && m.SourceNamespace != p.Namespace {
		return false
	}
	return registry.LabelsMatch(p.Labels, m.SourceLabels)
}

func routeName(h *networking.HTTPRoute, m *networking.HTTPMatchRequest) string {
	switch {
	case h.Name != "" && m != nil && m.Name != "":
		return h.Name + "." + m.Name
	case h.Name != "":
		return h.Name
	case m != nil:
		return m.Name
	}
	return ""
}

// routeMatch translates one match condition; nil matches everything.
func routeMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.Uri.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
	}
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, name := range registry.SortedKeys(m.Headers) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.Headers[name], false))
	}
	for _, name := range registry.SortedKeys(m.WithoutHeaders) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.WithoutHeaders[name], true))
	}
	sort.SliceStable(rm.Headers, func(i, j int) bool { return rm.Headers[i].Name < rm.Headers[j].Name })
	// Then the pseudo-headers, in istiod's order.
	for _, ph := range []struct {
		name string
		sm   *networking.StringMatch
	}{{":method", m.Method}, {":authority", m.Authority}, {":scheme", m.Scheme}} {
		if ph.sm != nil {
			rm.Headers = append(rm.Headers, headerMatcher(ph.name, ph.sm, false))
		}
	}
	for _, name := range registry.SortedKeys(m.QueryParams) {
		qm := &routev3.QueryParameterMatcher{Name: name}
		if sm := stringMatcher(m.QueryParams[name]); sm != nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

func headerMatcher(name string, sm *networking.StringMatch, invert bool) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if s := stringMatcher(sm); s != nil {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

// stringMatcher translates an Istio StringMatch; nil for an empty one (which Istio
// treats as "present").
func stringMatcher(sm *networking.StringMatch) *matcherv3.StringMatcher {
	switch t := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: t.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: t.Regex}}}
	}
	return nil
}

// setAction sets what a route does: redirect, direct response, or forward to the
// destinations by weight. authority is the route's headers' (setHeaders): the
// route's rewrite's takes its place, and either is the request's new authority.
func setAction(ctx *Context, r *routev3.Route, ns string, h *networking.HTTPRoute, port uint32, tls bool, authority string) {
	switch {
	case h.Redirect != nil:
		r.Action = &routev3.Route_Redirect{Redirect: redirect(h.Redirect, port, tls)}
		return
	case h.DirectResponse != nil:
		dr := &routev3.DirectResponseAction{Status: h.DirectResponse.Status}
		if b := h.DirectResponse.Body; b != nil {
			body := &corev3.DataSource{}
			switch s := b.Specifier.(type) {
			case *networking.HTTPBody_String_:
				body.Specifier = &corev3.DataSource_InlineString{InlineString: s.String_}
			case *networking.HTTPBody_Bytes:
				body.Specifier = &corev3.DataSource_InlineBytes{InlineBytes: s.Bytes}
			}
			dr.Body = body
		}
		r.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
		return
	}
	// No timeout unless the route sets one, as in Istio (Envoy's own default is 15 s).
	action := &routev3.RouteAction{RetryPolicy: retryPolicy(ctx, h.Retries), Timeout: noTimeout(), MaxStreamDuration: grpcDeadlines(ctx)}
	if h.Timeout != nil {
		action.Timeout = h.Timeout
		// grpc-go takes a route's timeout from its maximum stream duration; Envoy from
		// its timeout, a gRPC client's shorter deadline within it, as istiod has it.
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: h.Timeout}
		if ctx.Proxy.Generator == GeneratorGRPC {
			action.MaxStreamDuration.MaxStreamDuration = h.Timeout
		}
	}
	if rw := h.Rewrite; rw != nil {
		if rw.Uri != "" {
			action.PrefixRewrite = rw.Uri
		}
		if re := rw.UriRegexRewrite; re != nil {
			action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: re.Match}, Substitution: re.Rewrite}
		}
		authority = cmp.Or(rw.Authority, authority)
		if ctx.Proxy.Generator != GeneratorGRPC {
			// The authority the client asked for, in x-forwarded-host, where the
			// ProxyConfig's proxyHeaders say so (on any rewrite, as istiod).
			action.AppendXForwardedHost = headersFor(ctx, classOutbound).xForwardedHost
		}
	}
	if authority != "" {
		action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
	}
	// Mirrors, each with its share of the requests: all when it names none, none
	// when it names 0%, as in Istio.
	if m := h.Mirror; m != nil {
		//lint:ignore SA1019 mirrorPercent is deprecated in favour of mirrorPercentage, still accepted, as by Istio
		legacy := h.MirrorPercent
		share := allRequests()
		if p := h.MirrorPercentage; p != nil {
			share = fractionalPercent(p.Value)
		} else if legacy != nil {
			share = &typev3.FractionalPercent{Numerator: legacy.Value, Denominator: typev3.FractionalPercent_HUNDRED}
		}
		if share.Numerator > 0 {
			action.RequestMirrorPolicies = append(action.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
				Cluster: destinationCluster(ctx, ns, m, port), RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: share}})
		}
	}
	for _, m := range h.Mirrors {
		share := allRequests()
		if p := m.Percentage; p != nil {
			share = fractionalPercent(p.Value)
		}
		if share.Numerator > 0 {
			action.RequestMirrorPolicies = append(action.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
				Cluster: destinationCluster(ctx, ns, m.Destination, port), RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: share}})
		}
	}
	if ctx.Proxy.Generator != GeneratorGRPC {
		for _, mp := range action.RequestMirrorPolicies {
			// The mirrored request keeps its Host (Envoy's default adds "-shadow") and
			// is not traced, as istiod has it.
			mp.DisableShadowHostSuffixAppend, mp.TraceSampled = true, wrapperspb.Bool(false)
		}
	}
	setDestinations(ctx, r, action, ns, h.Route, port)
	r.Action = &routev3.Route_Route{Route: action}
}

// allRequests is a share of 100%, as istiod writes it.
func allRequests() *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
}

// noTimeout disables Envoy's route timeout (15 s when unset).
func noTimeout() *durationpb.Duration { return durationpb.New(0) }

// grpcDeadlines makes an Envoy route without a timeout of its own hold a gRPC request
// to the deadline its client sent (grpc-timeout), as Istio does; nil for proxyless
// clients, which keep their deadlines themselves.
func grpcDeadlines(ctx *Context) *routev3.RouteAction_MaxStreamDuration {
	if ctx.Proxy.Generator == GeneratorGRPC {
		return nil
	}
	return &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: noTimeout()}
}

// setDestinations points route r's action at one cluster, or at several weighted
// ones. Weights are relative; destinations of weight 0 get no traffic and are left
// out. A destination's header changes go after the route's, or on its weighted
// cluster; its authority (a host header it sets) is the request's where nothing
// else rewrites it, or its weighted cluster's.
func setDestinations(ctx *Context, r *routev3.Route, action *routev3.RouteAction, ns string, dests []*networking.HTTPRouteDestination, port uint32) {
	if len(dests) == 1 {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: destinationCluster(ctx, ns, dests[0].Destination, port)}
		action.HashPolicy = hashPolicy(ctx, ns, dests[0].Destination, port)
		if h := dests[0].Headers; h != nil {
			ops := translateHeaders(h)
			r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, ops.reqAdd...)
			r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, ops.reqRemove...)
			r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, ops.respAdd...)
			r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, ops.respRemove...)
			if ops.authority != "" && action.HostRewriteSpecifier == nil {
				action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: ops.authority}
			}
		}
		return
	}
	wc := &routev3.WeightedCluster{}
	for _, d := range dests {
		if d.Weight <= 0 {
			continue
		}
		cw := &routev3.WeightedCluster_ClusterWeight{
			Name:   destinationCluster(ctx, ns, d.Destination, port),
			Weight: wrapperspb.UInt32(uint32(min(int64(d.Weight), math.MaxUint32))),
		}
		if h := d.Headers; h != nil {
			ops := translateHeaders(h)
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = ops.reqAdd, ops.reqRemove
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = ops.respAdd, ops.respRemove
			if ops.authority != "" {
				cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: ops.authority}
			}
		}
		wc.Clusters = append(wc.Clusters, cw)
		if action.HashPolicy == nil {
			action.HashPolicy = hashPolicy(ctx, ns, d.Destination, port)
		}
	}
	action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
}

// destinationCluster names the cluster of a destination: its host resolved in the
// VirtualService's namespace, its port (or the only port of the destination service,
// or the port being routed), and its subset.
func destinationCluster(ctx *Context, ns string, d *networking.Destination, port uint32) string {
	host := registry.ResolveHost(d.Host, ns, ctx.Snapshot.Domain)
	return clusterName(host, destinationPort(ctx, host, d, port), d.Subset)
}

func destinationPort(ctx *Context, host string, d *networking.Destination, port uint32) uint32 {
	if n := d.GetPort().GetNumber(); n != 0 {
		return n
	}
	if svc := ctx.Snapshot.Service(host, ctx.Proxy.Namespace); svc != nil && len(svc.Ports) == 1 {
		return svc.Ports[0].Number
	}
	return port
}

// hashPolicy returns the route hash policy for a destination whose traffic policy asks
// for consistent hashing.
func hashPolicy(ctx *Context, ns string, d *networking.Destination, port uint32) []*routev3.RouteAction_HashPolicy {
	host := registry.ResolveHost(d.Host, ns, ctx.Snapshot.Domain)
	svc := ctx.Snapshot.Service(host, ctx.Proxy.Namespace)
	if svc == nil {
		return nil
	}
	tp := trafficPolicy(ctx.Mesh, ctx.destinationRule(svc), destinationPort(ctx, host, d, port), d.Subset)
	ch := tp.GetLoadBalancer().GetConsistentHash()
	if ch == nil {
		return nil
	}
	hp := &routev3.RouteAction_HashPolicy{}
	switch k := ch.HashKey.(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(k.HttpHeaderName)}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: k.HttpCookie.Name, Path: k.HttpCookie.Path, Ttl: k.HttpCookie.Ttl}
		if c.Ttl != nil && c.Ttl.AsDuration() < 0 { // accepted, as Istio accepts it: a session cookie
			c.Ttl = nil
		}
		for _, a := range k.HttpCookie.Attributes { // on the cookie Envoy sets (SameSite, say)
			c.Attributes = append(c.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.Name, Value: a.Value})
		}
		hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: k.HttpQueryParameterName}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{hp}
}

// redirect translates an HTTP redirect on port (the listener's) as Istio does: a
// derived port is the request's, which is the listener's, or left out for the
// scheme's default; a port that is its scheme's default (80 for http, 443 for https,
// the scheme being the listener's unless given) is left out of the Location.
func redirect(r *networking.HTTPRedirect, port uint32, tls bool) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{}
	switch {
	case r.PrefixRewrite != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixRewrite}
	case r.Uri != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Uri}
	}
	if r.Authority != "" {
		ra.HostRedirect = r.Authority
	}
	if r.Scheme != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	if r.RedirectPort != nil {
		switch p := r.RedirectPort.(type) {
		case *networking.HTTPRedirect_Port:
			ra.PortRedirect = p.Port
		case *networking.HTTPRedirect_DerivePort:
			if p.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
				ra.PortRedirect = port
			}
		}
		scheme := r.Scheme
		if scheme == "" {
			scheme = "http"
			if tls {
				scheme = "https"
			}
		}
		if (ra.PortRedirect == 80 && scheme == "http") || (ra.PortRedirect == 443 && scheme == "https") {
			ra.PortRedirect = 0
		}
	}
	switch r.RedirectCode {
	case 0, 301:
		ra.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case 302:
		ra.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	}
	return ra
}

// setHeaders applies a route's header operations (translateHeaders) and returns
// the authority they set.
func setHeaders(r *routev3.Route, h *networking.Headers) string {
	if h == nil {
		return ""
	}
	ops := translateHeaders(h)
	r.RequestHeadersToAdd, r.RequestHeadersToRemove = ops.reqAdd, ops.reqRemove
	r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = ops.respAdd, ops.respRemove
	return ops.authority
}

// headerOps are header operations as Envoy takes them.
type headerOps struct {
	reqAdd, respAdd       []*corev3.HeaderValueOption
	reqRemove, respRemove []string
	authority             string // the request's new authority, if any
}

// translateHeaders translates a Headers as istiod does: set overwrites, add
// appends, each in order of name; Envoy may not change pseudo-headers or Host, so
// a request's host (or :authority) to set or add becomes its new authority (set's
// over add's), and those headers are neither added nor removed.
func translateHeaders(h *networking.Headers) headerOps {
	var ops headerOps
	var setAuthority, addAuthority string
	ops.reqAdd = append(headerOptions(h.GetRequest().GetSet(), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, &setAuthority),
		headerOptions(h.GetRequest().GetAdd(), corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, &addAuthority)...)
	ops.authority = cmp.Or(setAuthority, addAuthority)
	ops.respAdd = append(headerOptions(h.GetResponse().GetSet(), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, nil),
		headerOptions(h.GetResponse().GetAdd(), corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, nil)...)
	ops.reqRemove = changeable(h.GetRequest().GetRemove())
	ops.respRemove = changeable(h.GetResponse().GetRemove())
	return ops
}

// headerOptions are the headers of m to change, in order of name; authority, if
// given, is set to the value of a host or :authority header among them.
func headerOptions(m map[string]string, action corev3.HeaderValueOption_HeaderAppendAction, authority *string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range registry.SortedKeys(m) {
		if authority != nil && (strings.EqualFold(k, ":authority") || strings.EqualFold(k, "host")) {
			*authority = m[k]
		}
		if internalHeader(k) {
			continue
		}
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: m[k]}, AppendAction: action})
	}
	return out
}

// internalHeader reports whether Envoy refuses to change header k: a pseudo-header
// or Host.
func internalHeader(k string) bool {
	return strings.HasPrefix(k, ":") || strings.EqualFold(k, "host")
}

// changeable are the headers of keys Envoy may remove.
func changeable(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !internalHeader(k) {
			out = append(out, k)
		}
	}
	return out
}

// defaultRetryOn is what Istio retries on unless a VirtualService says otherwise; of
// these grpc-go honours the gRPC status codes (unavailable, cancelled).
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// defaultRetryPolicy is Istio's: 2 retries on defaultRetryOn, each to a host not
// tried yet (grpc-go reads the number and the gRPC codes only). Since Istio 1.24 an
// HTTP 503 is not among them (a POST that reached the application is not sent
// again); the status codes a request's x-envoy-retriable-status-codes header names
// are.
func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    wrapperspb.UInt32(2),
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{retryPreviousHosts},
		HostSelectionRetryMaxAttempts: 5,
	}
}

var (
	retryPreviousHosts = &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})}}
	retryOtherLocalities = &routev3.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities",
		ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: mustAny(&previousprioritiesv3.PreviousPrioritiesConfig{UpdateFrequency: 2})}}
)

// retryPolicy translates a VirtualService's retries: absent means the mesh config's
// defaultHttpRetryPolicy, else Istio's default (2 retries); attempts 0 means none.
func retryPolicy(ctx *Context, r *networking.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		r = ctx.Mesh.GetDefaultHttpRetryPolicy()
	}
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.Attempts <= 0 {
		return nil
	}
	rp := defaultRetryPolicy()
	rp.NumRetries = wrapperspb.UInt32(uint32(r.Attempts))
	if r.RetryOn != "" {
		rp.RetriableStatusCodes = nil // the VirtualService says which
		var on []string
		for _, s := range strings.Split(r.RetryOn, ",") {
			s = strings.TrimSpace(s)
			if code, err := strconv.ParseUint(s, 10, 32); err == nil {
				rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(code))
				continue
			}
			on = append(on, s)
		}
		if len(rp.RetriableStatusCodes) > 0 {
			on = append(on, "retriable-status-codes")
		}
		rp.RetryOn = strings.Join(on, ",")
	}
	if r.PerTryTimeout != nil {
		rp.PerTryTimeout = r.PerTryTimeout
	}
	if r.Backoff != nil {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: r.Backoff, MaxInterval: durationpb.New(10 * r.Backoff.AsDuration())}
	}
	if ignore := r.RetryIgnorePreviousHosts; ignore != nil && !ignore.Value {
		rp.RetryHostPredicate = nil
	}
	if r.RetryRemoteLocalities.GetValue() {
		rp.RetryPriority = retryOtherLocalities
	}
	return rp
}
