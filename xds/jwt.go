package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
)

// RequestAuthentication becomes Envoy's jwt_authn HTTP filter, ahead of RBAC, on the
// inbound HTTP ports of Envoy sidecars and on gateways, as in Istio:
//
//   - every JWT rule that applies to the workload is a provider; a request carrying a
//     token none of them validates is refused (401), a request with no token passes
//     (requires_any of the providers or allow_missing). Requiring a token is an
//     AuthorizationPolicy's job (requestPrincipals: ["*"]).
//   - a validated token's payload is kept in the request's dynamic metadata under the
//     filter's name and the token's issuer, where RBAC finds it: requestPrincipals
//     ("<iss>/<sub>", with Istio's * forms) and the request.auth.* when-conditions
//     match on it.
//   - jwks is given to Envoy inline. A jwksUri is fetched by Envoy itself through the
//     mesh: its host must be a service the proxy sees (a ServiceEntry, with a
//     DestinationRule tls mode SIMPLE for an https URI, as for any TLS origination). A
//     rule with neither uses the jwks_uri of the issuer's OpenID discovery document,
//     which the node reads (oidc.go), the same way. A rule whose key set Envoy cannot
//     get is reported and gets a key set nothing can be signed with, so its tokens are
//     refused and no request is let through that Istio would refuse.
//
// Proxyless gRPC has no JWT filter (nor does Istio give it one): there, request
// principals never match (see rbac.go).

const (
	jwtFilter = "envoy.filters.http.jwt_authn"
	// jwksRefresh is how long Envoy keeps a fetched key set, Istio's default.
	jwksRefresh = 20 * time.Minute
	// jwksTimeout bounds a key set fetch unless the rule says otherwise.
	jwksTimeout = 5 * time.Second
)

// unusableJWKS is a key set with one P-256 public key whose private key was discarded
// when it was made: no token verifies against it.
const unusableJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"navarch-unusable",` +
	`"x":"3QOYrMpYRocov2oH8XTirLhA7dST7LNhNcTA4OMyG94","y":"luwkRb1khLV5QSyGewSyuO62HynGXm6cOfeDRzevtCw"}]}`

// requestAuth is what a workload's jwt_authn filter establishes: the issuers whose
// validated tokens appear in the request's metadata. A nil *requestAuth is a proxy
// without the filter (proxyless gRPC).
type requestAuth struct {
	issuers []string // sorted, unique
}

// jwtFor returns a workload's jwt_authn filter (nil when no RequestAuthentication
// applies) and what it establishes; both nil for proxyless gRPC.
func jwtFor(ctx *Context, ns string, labels map[string]string) (*hcmv3.HttpFilter, *requestAuth) {
	if ctx.Proxy.Generator == GeneratorGRPC {
		return nil, nil
	}
	type result struct {
		filter *hcmv3.HttpFilter
		ra     *requestAuth
	}
	r := derived(ctx, "jwt|"+ns+"|"+labelsKey(labels), func() result {
		f, ra := buildJWT(ctx, ns, labels)
		return result{f, ra}
	})
	return r.filter, r.ra
}

func buildJWT(ctx *Context, ns string, labels map[string]string) (*hcmv3.HttpFilter, *requestAuth) {
	ra := &requestAuth{}
	providers := map[string]*jwtv3.JwtProvider{}
	var names []string
	for _, r := range selectedPolicies(ctx, api.RequestAuthentication, ns, labels) {
		for i, rule := range r.Spec.(*security.RequestAuthentication).JwtRules {
			base := rule.Issuer
			if base == "" { // a rule with only jwksUri: tokens of any issuer its keys verify
				base = "jwks:" + rule.JwksUri
			}
			name := base
			for n := 1; providers[name] != nil; n++ {
				name = base + "#" + strconv.Itoa(n)
			}
			providers[name] = jwtProvider(ctx, fmt.Sprintf("RequestAuthentication %s/%s spec.jwtRules[%d]", r.Meta.Namespace, r.Meta.Name, i), rule)
			names = append(names, name)
			if rule.Issuer != "" {
				ra.issuers = append(ra.issuers, rule.Issuer)
			}
		}
	}
	slices.Sort(ra.issuers)
	ra.issuers = slices.Compact(ra.issuers)
	if len(providers) == 0 {
		return nil, ra
	}
	var any []*jwtv3.JwtRequirement
	for _, n := range names {
		any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}})
	}
	any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg := &jwtv3.JwtAuthentication{
		Providers: providers,
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: any}}}},
		}},
		BypassCorsPreflight: true,
	}
	return &hcmv3.HttpFilter{Name: jwtFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}, ra
}

// jwtProvider translates one JWT rule; what the rule's key set cannot be is reported
// under name.
func jwtProvider(ctx *Context, name string, rule *security.JWTRule) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:            rule.Issuer,
		Audiences:         rule.Audiences,
		Forward:           rule.ForwardOriginalToken,
		FromParams:        rule.FromParams,
		FromCookies:       rule.FromCookies,
		PayloadInMetadata: rule.Issuer, // empty (no issuer): not kept, no policy can name it
		// Scopes and permissions are space-separated strings in tokens; as lists in the
		// metadata, a when-condition can match one of them.
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: spaceDelimited(rule.SpaceDelimitedClaims)},
	}
	// Istio accepts any outputPayloadToHeader; one Envoy would refuse is left out.
	if h := rule.OutputPayloadToHeader; h != "" {
		if envoyHeaderName(h) {
			p.ForwardPayloadHeader = h
		} else {
			ctx.skip(name, fmt.Errorf("outputPayloadToHeader %q is not a header name; the payload is not forwarded", h))
		}
	}
	for _, h := range rule.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
	}
	for _, c := range rule.OutputClaimToHeaders {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.Header, ClaimName: c.Claim})
		p.ClearRouteCache = true // routes may match on the new headers
	}
	local := func(jwks string) {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: jwks}}}
	}
	uri := rule.JwksUri
	if rule.Jwks == "" && uri == "" {
		found, ok := ctx.Snapshot.Issuer(rule.Issuer)
		switch {
		case !ok: // not discovered yet (oidc.go): refused until it is
			local(unusableJWKS)
			return p
		case found.JWKSURI == "":
			ctx.skip(name, fmt.Errorf("neither jwks nor jwksUri is set and the issuer's key set is not known: %s; tokens of issuer %q are refused", found.Err, rule.Issuer))
			local(unusableJWKS)
			return p
		}
		uri = found.JWKSURI
	}
	if rule.Jwks != "" {
		if err := checkJWKS(rule.Jwks); err != nil {
			ctx.skip(name, fmt.Errorf("jwks: %w; tokens of issuer %q are refused", err, rule.Issuer))
			local(unusableJWKS)
		} else {
			local(rule.Jwks)
		}
		return p
	}
	cluster, err := jwksCluster(ctx, uri)
	if err != nil {
		ctx.skip(name, fmt.Errorf("jwksUri %s: %w; tokens of issuer %q are refused", uri, err, rule.Issuer))
		local(unusableJWKS)
		return p
	}
	timeout := jwksTimeout
	if d := rule.Timeout.AsDuration(); rule.Timeout != nil && d > 0 {
		timeout = d
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri:       &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: durationpb.New(timeout)},
		CacheDuration: durationpb.New(jwksRefresh),
		AsyncFetch:    &jwtv3.JwksAsyncFetch{},
	}}
	return p
}

// spaceDelimited is the claims whose strings are lists separated by spaces: scope and
// permission, as in Istio, and those the rule adds.
func spaceDelimited(extra []string) []string {
	out := []string{"scope", "permission"}
	for _, c := range extra {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// checkJWKS checks what Envoy needs of an inline key set: at least one key, each of a
// type it knows.
func checkJWKS(jwks string) error {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		return fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("the key set has no keys")
	}
	for i, k := range set.Keys {
		switch k.Kty {
		case "RSA", "EC", "oct", "OKP":
		default:
			return fmt.Errorf("keys[%d]: unsupported key type %q", i, k.Kty)
		}
	}
	return nil
}

// jwksCluster returns the outbound cluster through which Envoy fetches a key set: the
// one of the service port the URI names.
func jwksCluster(ctx *Context, uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	host, portText := u.Hostname(), u.Port()
	if portText == "" {
		portText = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	port, err := strconv.ParseUint(portText, 10, 32)
	if err != nil {
		return "", fmt.Errorf("port %q: %v", portText, err)
	}
	if net.ParseIP(host) == nil {
		for _, svc := range ctx.Services {
			if svc.Hostname != host {
				continue
			}
			if _, ok := svc.Port(uint32(port)); ok {
				return clusterName(host, uint32(port), ""), nil
			}
		}
	}
	return "", fmt.Errorf("%s:%d is not a service port this proxy sees; add a ServiceEntry for it (with a DestinationRule tls mode SIMPLE for https)", host, port)
}

// jwtMetadata matches a value at path in the payload of a token issuer validated
// (sourced_metadata, Envoy 1.32 and newer, from the dynamic metadata).
func jwtMetadata(issuer string, v *matcherv3.ValueMatcher, path ...string) *rbacv3.Principal {
	segs := []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: issuer}}}
	for _, k := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
		MetadataMatcher: &matcherv3.MetadataMatcher{Filter: jwtFilter, Path: segs, Value: v}}}}
}

func stringValue(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

// stringOrListValue matches a claim that is the string, or a list holding it.
func stringOrListValue(m *matcherv3.StringMatcher) []*matcherv3.ValueMatcher {
	return []*matcherv3.ValueMatcher{stringValue(m), {MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringValue(m)}}}}}
}

var present = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}

// never is a principal nothing matches.
var never = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}

// requestPrincipal matches Istio's request principal "<iss>/<sub>" of a validated
// token against v, in Istio's forms: exact, "*", "prefix*" and "*suffix". The
// principal is not in the metadata as one string, so v is matched, issuer by issuer,
// on the token's sub: an issuer may itself hold slashes, which is why the split is
// made against the known issuers rather than at a slash of v.
func (ra *requestAuth) requestPrincipal(v string) *rbacv3.Principal {
	var or []*rbacv3.Principal
	sub := func(iss string, m *matcherv3.StringMatcher) {
		or = append(or, jwtMetadata(iss, stringValue(m), "sub"))
	}
	for _, iss := range ra.issuers {
		head := iss + "/"
		switch {
		case v == "*":
			or = append(or, jwtMetadata(iss, present, "sub"))
		case strings.HasSuffix(v, "*"):
			prefix := strings.TrimSuffix(v, "*")
			if strings.HasPrefix(head, prefix) {
				or = append(or, jwtMetadata(iss, present, "sub"))
			} else if rest, ok := strings.CutPrefix(prefix, head); ok {
				sub(iss, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: rest}})
			}
		case strings.HasPrefix(v, "*"):
			suffix := strings.TrimPrefix(v, "*")
			// Either the suffix lies within sub, or it reaches into the issuer
			// across the slash that joins them and sub is the rest of it.
			sub(iss, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: suffix}})
			for j := range len(suffix) {
				if suffix[j] == '/' && strings.HasSuffix(iss, suffix[:j]) {
					sub(iss, exact(suffix[j+1:]))
				}
			}
		default:
			if rest, ok := strings.CutPrefix(v, head); ok {
				sub(iss, exact(rest))
			}
		}
	}
	if len(or) == 0 {
		return never
	}
	return orPrincipals(or)
}

// claimCondition translates a when-condition on a validated token (request.auth.*)
// into a principal; ok is false for keys it does not know.
func (ra *requestAuth) claimCondition(c *security.Condition) (*rbacv3.Principal, bool) {
	key := c.GetKey()
	var f func(string) *rbacv3.Principal
	claim := func(path ...string) func(string) *rbacv3.Principal {
		return func(v string) *rbacv3.Principal {
			var or []*rbacv3.Principal
			for _, iss := range ra.issuers {
				for _, vm := range stringOrListValue(wildcardMatcher(v)) {
					or = append(or, jwtMetadata(iss, vm, path...))
				}
			}
			if len(or) == 0 {
				return never
			}
			return orPrincipals(or)
		}
	}
	switch {
	case key == "request.auth.principal":
		f = ra.requestPrincipal
	case key == "request.auth.audiences":
		f = claim("aud")
	case key == "request.auth.presenter":
		f = claim("azp")
	case strings.HasPrefix(key, "request.auth.claims[") && strings.HasSuffix(key, "]"):
		inner := strings.TrimSuffix(strings.TrimPrefix(key, "request.auth.claims["), "]")
		f = claim(strings.Split(inner, "][")...)
	default:
		return nil, false
	}
	return valuesPrincipal(c, f), true
}

// envoyHeaderName reports whether Envoy's validation takes h as a header name to
// write (it refuses NUL, CR and LF only).
func envoyHeaderName(h string) bool { return !strings.ContainsAny(h, "\x00\r\n") }
