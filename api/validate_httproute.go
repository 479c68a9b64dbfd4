package api

import (
	"net/http"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// MaxDirectResponseBody is the largest direct response body Istio accepts, and the
// largest an Envoy route configuration is told to send (Envoy's default is 4 KiB).
const MaxDirectResponseBody = 1024 * 1024

func validateHTTPRoute(p *problems, path string, h *networking.HTTPRoute, delegateVS, toGateway bool) {
	if h == nil {
		p.add(path, "must not be null")
		return
	}
	validateHTTPRouteConflicts(p, path, h, delegateVS)
	for j, m := range h.Match {
		validateHTTPMatch(p, index(field(path, "match"), j), m, toGateway)
	}
	validateHeaderOperations(p, field(path, "headers"), h.Headers)
	validateCORSPolicy(p, field(path, "corsPolicy"), h.CorsPolicy)
	validateFault(p, field(path, "fault"), h.Fault)
	validateMirrors(p, path, h)
	validateRedirect(p, field(path, "redirect"), h.Redirect)
	if h.Redirect.GetPrefixRewrite() != "" {
		for i, m := range h.Match {
			if _, prefix := m.GetUri().GetMatchType().(*networking.StringMatch_Prefix); m.GetUri() != nil && !prefix {
				p.add(field(index(field(path, "match"), i), "uri"), "must be a prefix match: redirect.prefixRewrite replaces the prefix a request matched")
			}
		}
	}
	if d := h.DirectResponse; d != nil {
		dp := field(path, "directResponse")
		validateHTTPStatus(p, field(dp, "status"), int64(d.Status))
		if n := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes()); n > MaxDirectResponseBody {
			p.add(field(dp, "body"), "must be at most 1MB, got %d bytes", n)
		}
	}
	validateRetries(p, field(path, "retries"), h.Retries)
	validateRewrite(p, field(path, "rewrite"), h.Rewrite)
	validateAuthorityRewrite(p, path, h)
	validateHTTPRouteDestinations(p, field(path, "route"), h.Route)
	validateDuration(p, field(path, "timeout"), h.Timeout)
}

// validateHTTPRouteConflicts checks that a route does exactly one thing: forward
// (route), redirect, respond directly, or delegate.
func validateHTTPRouteConflicts(p *problems, path string, h *networking.HTTPRoute, delegateVS bool) {
	switch {
	case h.Delegate != nil:
		if delegateVS {
			p.add(field(path, "delegate"), "must not be set in a delegate VirtualService (delegation is one level deep)")
		}
		// An empty delegate.name is accepted, as Istio accepts it: it names no
		// VirtualService, and the route is left out.
		if h.Redirect != nil || len(h.Route) > 0 {
			p.add(path, "a route that delegates must not set route or redirect")
		}
	case h.Redirect != nil:
		conflicts(p, path, "redirect", []named[bool]{{"route", len(h.Route) > 0}, {"fault", h.Fault != nil},
			{"rewrite", h.Rewrite != nil}, {"directResponse", h.DirectResponse != nil}})
	case h.DirectResponse != nil:
		conflicts(p, path, "directResponse", []named[bool]{{"route", len(h.Route) > 0}, {"fault", h.Fault != nil},
			{"rewrite", h.Rewrite != nil}})
	case len(h.Route) == 0:
		p.add(path, "one of route, redirect or directResponse is required")
	}
	if h.Mirror != nil && len(h.Mirrors) > 0 {
		p.add(path, "must not set both mirror and mirrors")
	}
}

// conflicts records that what is set must not be combined with any of others that are set.
func conflicts(p *problems, path, what string, others []named[bool]) {
	for _, o := range others {
		if o.value {
			p.add(path, "must not set both %s and %s", what, o.name)
		}
	}
}

func validateHTTPMatch(p *problems, path string, m *networking.HTTPMatchRequest, toGateway bool) {
	if m == nil {
		p.add(path, "must not be null")
		return
	}
	for _, name := range sortedKeys(m.Headers) {
		hp := mapKey(field(path, "headers"), name)
		validateMatchHeaderName(p, hp, name, toGateway)
		validateStringMatch(p, hp, m.Headers[name], false)
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		hp := mapKey(field(path, "withoutHeaders"), name)
		validateMatchHeaderName(p, hp, name, toGateway)
		if sm := m.WithoutHeaders[name]; sm.GetRegex() != "*" { // "*" means "present", not a regex
			validateStringMatch(p, hp, sm, false)
		}
	}
	if m.Uri != nil {
		validateStringMatch(p, field(path, "uri"), m.Uri, true) // Envoy allows an empty path prefix
	}
	for _, sm := range []named[*networking.StringMatch]{{"scheme", m.Scheme}, {"method", m.Method}, {"authority", m.Authority}} {
		if sm.value != nil {
			validateStringMatch(p, field(path, sm.name), sm.value, false)
		}
	}
	for _, name := range sortedKeys(m.QueryParams) {
		validateStringMatch(p, mapKey(field(path, "queryParams"), name), m.QueryParams[name], false)
	}
	if m.Port != 0 {
		validatePort(p, field(path, "port"), m.Port)
	}
	validateSpecLabels(p, field(path, "sourceLabels"), m.SourceLabels)
	validateGatewayNames(p, field(path, "gateways"), m.Gateways)
	if m.SourceNamespace != "" && !dnsLabel(m.SourceNamespace, true) {
		p.add(field(path, "sourceNamespace"), "%q is not a namespace name (a DNS-1123 label)", m.SourceNamespace)
	}
}

// validateStringMatch checks a StringMatch: a non-empty prefix (unless allowed
// empty, as for paths), a regex that compiles as RE2.
func validateStringMatch(p *problems, path string, sm *networking.StringMatch, emptyPrefix bool) {
	if sm == nil {
		p.add(path, "must not be null")
		return
	}
	switch x := sm.MatchType.(type) {
	case *networking.StringMatch_Prefix:
		if x.Prefix == "" && !emptyPrefix {
			p.add(field(path, "prefix"), "must not be empty")
		}
	case *networking.StringMatch_Regex:
		validateRegex(p, field(path, "regex"), x.Regex)
	}
}

// jwtClaimHeader is the pseudo header name of JWT claim based routing.
const jwtClaimHeader = "@request.auth.claims"

// validateMatchHeaderName checks the name of a header match: a header token, or
// JWT claim routing ("@request.auth.claims.sub", "@request.auth.claims[sub]"),
// which only gateways support.
func validateMatchHeaderName(p *problems, path, name string, toGateway bool) {
	if IsJWTClaimHeader(name) {
		if !toGateway {
			p.add(path, "JWT claim based routing (%q) is only supported in VirtualServices bound to gateways", name)
		}
		return
	}
	if !headerToken(name) && !pseudoHeaders[name] {
		p.add(path, "invalid header name %q: must be a token (alphanumerics and !#$%%&'*+-.^_`|~) or a pseudo-header", name)
	}
}

// IsJWTClaimHeader reports whether a header match's name is a JWT claim
// ("@request.auth.claims.sub", "@request.auth.claims[sub]"), which a gateway
// matches in the token its RequestAuthentication validated.
func IsJWTClaimHeader(name string) bool {
	rest, ok := cutPrefixFold(name, jwtClaimHeader)
	return ok && (len(rest) > 1 && rest[0] == '.' || len(rest) > 2 && rest[0] == '[' && strings.HasSuffix(rest, "]"))
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// headerToken reports whether name is a header name Istio accepts: an RFC 7230
// token (alphanumerics and !#$%&'*+-.^_`|~).
func headerToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isAlnum(name[i], true) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(name[i])) {
			return false
		}
	}
	return true
}

// pseudoHeaders are the HTTP/2 pseudo-headers a match may name.
var pseudoHeaders = map[string]bool{":method": true, ":scheme": true, ":authority": true, ":path": true, ":status": true}

func validateCORSPolicy(p *problems, path string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		op := index(field(path, "allowOrigins"), i)
		switch x := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			if x.Exact == "" {
				p.add(field(op, "exact"), "must not be empty")
			}
		case *networking.StringMatch_Prefix:
			if x.Prefix == "" {
				p.add(field(op, "prefix"), "must not be empty")
			}
		case *networking.StringMatch_Regex:
			validateRegex(p, field(op, "regex"), x.Regex)
		default:
			p.add(op, "one of exact, prefix or regex is required")
		}
	}
	for i, m := range c.AllowMethods {
		if !httpMethod(m) && m != "*" {
			p.add(index(field(path, "allowMethods"), i), "%q is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE) or \"*\"", m)
		}
	}
	for _, list := range []named[[]string]{{"allowHeaders", c.AllowHeaders}, {"exposeHeaders", c.ExposeHeaders}} {
		for i, h := range list.value {
			if h != "*" && !headerToken(h) {
				p.add(index(field(path, list.name), i), "invalid header name %q: must be \"*\" or a token (alphanumerics and !#$%%&'*+-.^_`|~)", h)
			}
		}
	}
	if c.MaxAge != nil {
		validateDuration(p, field(path, "maxAge"), c.MaxAge)
		if c.MaxAge.Nanos != 0 {
			p.add(field(path, "maxAge"), "must be a whole number of seconds, got %s", c.MaxAge.AsDuration())
		}
	}
}

func httpMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func validateFault(p *problems, path string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		p.add(path, "at least one of abort and delay is required")
	}
	if a := f.Abort; a != nil {
		ap := field(path, "abort")
		validatePercentage(p, field(ap, "percentage"), a.Percentage)
		switch x := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			validateHTTPStatus(p, field(ap, "httpStatus"), int64(x.HttpStatus))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatusName(x.GrpcStatus) {
				p.add(field(ap, "grpcStatus"), "unknown gRPC status %q, want a code name such as NOT_FOUND or UNAVAILABLE", x.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			p.add(field(ap, "http2Error"), "HTTP/2 error aborts are not supported")
		}
	}
	if d := f.Delay; d != nil {
		dp := field(path, "delay")
		validatePercentage(p, field(dp, "percentage"), d.Percentage)
		// percent (deprecated in favour of percentage) is not checked, as Istio does
		// not check it; the translation holds it to 0-100.
		switch x := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			validateDuration(p, field(dp, "fixedDelay"), x.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			p.add(field(dp, "exponentialDelay"), "is not supported, use fixedDelay")
		}
	}
}

func validateHTTPStatus(p *problems, path string, status int64) {
	if status < 200 || status > 599 {
		p.add(path, "must be an HTTP status 200-599, got %d", status)
	}
}

// grpcStatusName reports whether s names a gRPC status code.
func grpcStatusName(s string) bool {
	switch s {
	case "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED":
		return true
	}
	return false
}

func validateMirrors(p *problems, path string, h *networking.HTTPRoute) {
	//lint:ignore SA1019 deprecated in favour of mirrorPercentage, but still accepted
	if pct := h.MirrorPercent; pct != nil && pct.Value > 100 {
		p.add(field(path, "mirrorPercent"), "must be 0-100, got %d", pct.Value)
	}
	validateMirrorPercentage(p, field(path, "mirrorPercentage"), h.MirrorPercentage)
	validateDestination(p, field(path, "mirror"), h.Mirror)
	for i, m := range h.Mirrors {
		mp := index(field(path, "mirrors"), i)
		if m == nil {
			p.add(mp, "must not be null")
			continue
		}
		validateRequiredDestination(p, field(mp, "destination"), m.Destination)
		validateMirrorPercentage(p, field(mp, "percentage"), m.Percentage)
	}
}

func validateMirrorPercentage(p *problems, path string, pct *networking.Percent) {
	if pct != nil && (pct.Value < 0 || pct.Value > 100) {
		p.add(field(path, "value"), "must be 0-100, got %g", pct.Value)
	}
}

func validateRedirect(p *problems, path string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.Uri == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" && r.PrefixRewrite == "" {
		p.add(path, "must set at least one of uri, prefixRewrite, authority, scheme, port or derivePort")
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		p.add(path, "must not set both uri and prefixRewrite")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		p.add(field(path, "redirectCode"), "must be a 3xx status, got %d", r.RedirectCode)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		p.add(field(path, "scheme"), "must be \"http\" or \"https\", got %q", r.Scheme)
	}
	if port, ok := r.RedirectPort.(*networking.HTTPRedirect_Port); ok && port.Port != 0 { // 0: the request's port
		validatePort(p, field(path, "port"), port.Port)
	}
}

// retryOnPolicy reports whether s is a retry condition Envoy knows, for HTTP
// (x-envoy-retry-on) or gRPC (x-envoy-retry-grpc-on), or an HTTP status code.
func retryOnPolicy(s string) bool {
	switch s {
	case "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
		"refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
		"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
		return true
	}
	code, err := strconv.Atoi(s)
	return err == nil && http.StatusText(code) != ""
}

func validateRetries(p *problems, path string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		p.add(field(path, "attempts"), "must not be negative, got %d", r.Attempts)
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		p.add(path, "perTryTimeout, retryOn and retryRemoteLocalities have no effect when attempts is 0 (retries disabled)")
	}
	validateDuration(p, field(path, "perTryTimeout"), r.PerTryTimeout)
	validateDuration(p, field(path, "backoff"), r.Backoff)
	if r.RetryOn != "" {
		for _, policy := range strings.Split(r.RetryOn, ",") {
			if !retryOnPolicy(policy) {
				p.add(field(path, "retryOn"), "%q is not a retry condition (such as 5xx, gateway-error, connect-failure, reset or a status code)", policy)
			}
		}
	}
}

func validateRewrite(p *problems, path string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.UriRegexRewrite != nil {
		p.add(path, "must not set both uri and uriRegexRewrite")
	}
	if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
		p.add(path, "must set at least one of uri, uriRegexRewrite and authority")
	}
	if rr := r.UriRegexRewrite; rr != nil {
		rp := field(path, "uriRegexRewrite")
		if rr.Rewrite == "" {
			p.add(field(rp, "rewrite"), "required")
		}
		validateRegex(p, field(rp, "match"), rr.Match)
	}
}

// validateAuthorityRewrite checks that the authority is rewritten in one place only.
func validateAuthorityRewrite(p *problems, path string, h *networking.HTTPRoute) {
	set := 0
	if h.GetRewrite().GetAuthority() != "" {
		set++
	}
	for _, ops := range []map[string]string{h.GetHeaders().GetRequest().GetSet(), h.GetHeaders().GetRequest().GetAdd()} {
		for name := range ops {
			if authorityHeader(name) {
				set++
			}
		}
	}
	if set > 1 {
		p.add(path, "the authority is rewritten more than once (rewrite.authority, headers.request set or add of :authority or host)")
	}
}

func validateHTTPRouteDestinations(p *problems, path string, ds []*networking.HTTPRouteDestination) {
	var total int64
	for i, d := range ds {
		dp := index(path, i)
		if d == nil {
			p.add(dp, "must not be null")
			continue
		}
		validateRequiredDestination(p, field(dp, "destination"), d.Destination)
		validateHeaderOperations(p, field(dp, "headers"), d.Headers)
		validateWeight(p, field(dp, "weight"), d.Weight)
		total += int64(d.Weight)
	}
	validateTotalWeight(p, path, len(ds), total)
}
