package xds

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	extauthznetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// CUSTOM AuthorizationPolicies delegate the decision to an external authorization
// service, an envoyExtAuthzGrpc or envoyExtAuthzHttp provider of the mesh config, as
// in Istio: an RBAC filter whose shadow rules are the policies' rules marks a request
// that matches one (dynamic metadata istio_ext_authz_shadow_effective_policy_id, the
// matched policy's name, prefixed istio-ext-authz-<provider>), and an ext_authz filter
// enabled by that mark asks the provider. Requests that match no CUSTOM rule are not
// sent. CUSTOM filters come before the other RBAC filters (rbacStages), all named
// envoy.filters.http.rbac, as istiod names them. On TCP chains a gRPC
// provider checks connections (the network ext_authz filter); an HTTP provider
// cannot, and its policies leave TCP traffic alone, as in Istio.
//
// The policies of a provider navarch cannot send to (not in the mesh config, not an
// ext_authz provider, its service unknown to the proxy or without that port), of
// workloads whose CUSTOM policies name several providers, and of proxyless gRPC
// servers (grpc-go has no usable ext_authz filter) deny what they match instead, and
// are reported: a policy meant to guard a workload never lets through what it would
// have checked.

const (
	extAuthzFilter        = "envoy.filters.http.ext_authz"
	extAuthzNetworkFilter = "envoy.filters.network.ext_authz"
	// extAuthzShadowPrefix is the stat prefix of the shadow rules, which prefixes
	// the dynamic metadata key the RBAC filter writes.
	extAuthzShadowPrefix = "istio_ext_authz_"
	// extAuthzPolicyPrefix prefixes the names of the CUSTOM policies' rules.
	extAuthzPolicyPrefix = "istio-ext-authz"
	// extAuthzDefaultTimeout is how long Envoy waits for a provider that sets no
	// timeout (Istio's 600s).
	extAuthzDefaultTimeout = 600
)

// customAuthz is what a workload's CUSTOM policies become: the policies its proxy
// sends to their provider, and the provider's filters.
type customAuthz struct {
	provider string
	policies []*api.Resource
	http     *extauthzv3.ExtAuthz
	tcp      *extauthznetworkv3.ExtAuthz // nil for an HTTP provider
}

// customFor sorts a workload's CUSTOM policies into those its proxy can send to
// their provider (nil for none) and those that must deny what they match instead,
// reporting each of the latter once per build.
func customFor(ctx *Context, custom []*api.Resource) (*customAuthz, []*api.Resource) {
	if len(custom) == 0 {
		return nil, nil
	}
	fail := func(why string) (*customAuthz, []*api.Resource) {
		for _, r := range custom {
			where := "AuthorizationPolicy " + r.Meta.Namespace + "/" + r.Meta.Name
			derived(ctx, "custom-authz "+where, func() bool {
				ctx.skip(where, fmt.Errorf("action CUSTOM: %s; the requests it matches are denied", why))
				return true
			})
		}
		return nil, custom
	}
	if ctx.Proxy.Generator == GeneratorGRPC {
		return fail("proxyless gRPC servers have no external authorization")
	}
	var providers []string
	for _, r := range custom {
		if name := r.Spec.(*security.AuthorizationPolicy).GetProvider().GetName(); !slices.Contains(providers, name) {
			providers = append(providers, name)
		}
	}
	if len(providers) > 1 {
		sort.Strings(providers)
		return fail(fmt.Sprintf("the workload's CUSTOM policies name several providers (%s); a workload takes one", strings.Join(providers, ", ")))
	}
	built := derived(ctx, "ext-authz "+providers[0], func() result[*customAuthz] {
		ca, err := buildExtAuthz(ctx, providers[0])
		return result[*customAuthz]{ca, err}
	})
	ca, err := built.v, built.err
	if err != nil {
		return fail(fmt.Sprintf("provider %q: %v", providers[0], err))
	}
	out := *ca
	out.policies = custom
	return &out, nil
}

// result is a value built with its error, as derived keeps both for a build.
type result[T any] struct {
	v   T
	err error
}

// buildExtAuthz builds the ext_authz filters of a provider.
func buildExtAuthz(ctx *Context, name string) (*customAuthz, error) {
	ep, ok := extensionProvider(ctx.Mesh, name)
	if !ok {
		return nil, errors.New("the mesh config has no extension provider of that name")
	}
	switch p := ep.Provider.(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
		g := p.EnvoyExtAuthzGrpc
		host, cluster, err := providerCluster(ctx, g.Service, g.Port)
		if err != nil {
			return nil, err
		}
		svc := &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}},
			Timeout:         extAuthzTimeout(g.Timeout),
		}
		return &customAuthz{provider: name,
			http: &extauthzv3.ExtAuthz{
				Services:              &extauthzv3.ExtAuthz_GrpcService{GrpcService: svc},
				TransportApiVersion:   corev3.ApiVersion_V3,
				FailureModeAllow:      g.FailOpen,
				StatusOnError:         statusOnError(g.StatusOnError),
				WithRequestBody:       requestBody(g.IncludeRequestBodyInCheck),
				FilterEnabledMetadata: extAuthzEnabled(rbacFilter, name),
			},
			tcp: &extauthznetworkv3.ExtAuthz{
				StatPrefix:            "tcp.", // istiod's
				GrpcService:           svc,
				TransportApiVersion:   corev3.ApiVersion_V3,
				FailureModeAllow:      g.FailOpen,
				FilterEnabledMetadata: extAuthzEnabled(rbacNetworkFilter, name),
			}}, nil
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
		h := p.EnvoyExtAuthzHttp
		host, cluster, err := providerCluster(ctx, h.Service, h.Port)
		if err != nil {
			return nil, err
		}
		svc := &extauthzv3.HttpService{
			PathPrefix: h.PathPrefix,
			// Envoy requires the URI but sends to the cluster.
			ServerUri: &corev3.HttpUri{Uri: "http://" + host, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
				Timeout: extAuthzTimeout(h.Timeout)},
		}
		if len(h.IncludeAdditionalHeadersInCheck) > 0 {
			req := &extauthzv3.AuthorizationRequest{}
			for _, k := range registry.SortedKeys(h.IncludeAdditionalHeadersInCheck) {
				req.HeadersToAdd = append(req.HeadersToAdd, &corev3.HeaderValue{Key: k, Value: h.IncludeAdditionalHeadersInCheck[k]})
			}
			svc.AuthorizationRequest = req
		}
		if len(h.HeadersToUpstreamOnAllow)+len(h.HeadersToDownstreamOnDeny)+len(h.HeadersToDownstreamOnAllow) > 0 {
			svc.AuthorizationResponse = &extauthzv3.AuthorizationResponse{
				AllowedUpstreamHeaders:        headerList(h.HeadersToUpstreamOnAllow),
				AllowedClientHeaders:          headerList(h.HeadersToDownstreamOnDeny),
				AllowedClientHeadersOnSuccess: headerList(h.HeadersToDownstreamOnAllow),
			}
		}
		allowed := h.IncludeRequestHeadersInCheck
		if len(allowed) == 0 {
			//lint:ignore SA1019 deprecated, used when its successor is not set, as in Istio
			allowed = h.IncludeHeadersInCheck
		}
		return &customAuthz{provider: name, http: &extauthzv3.ExtAuthz{
			Services:              &extauthzv3.ExtAuthz_HttpService{HttpService: svc},
			TransportApiVersion:   corev3.ApiVersion_V3,
			FailureModeAllow:      h.FailOpen,
			StatusOnError:         statusOnError(h.StatusOnError),
			WithRequestBody:       requestBody(h.IncludeRequestBodyInCheck),
			ClearRouteCache:       h.ClearRouteCache,
			AllowedHeaders:        headerList(allowed),
			FilterEnabledMetadata: extAuthzEnabled(rbacFilter, name),
		}}, nil
	}
	return nil, errors.New("not an external authorization provider (envoyExtAuthzGrpc or envoyExtAuthzHttp)")
}

// providerCluster finds the cluster of a provider's service ("host" or
// "namespace/host") and port among the services the proxy sees: Envoy refuses an
// ext_authz filter whose cluster it does not have.
func providerCluster(ctx *Context, service string, port uint32) (host, cluster string, err error) {
	ns, h, scoped := strings.Cut(service, "/")
	if !scoped {
		h = service
	}
	for _, svc := range ctx.Services {
		if svc.Hostname != h || (scoped && ns != "*" && ns != "." && svc.Namespace != ns) {
			continue
		}
		if _, ok := svc.Port(port); !ok {
			return "", "", fmt.Errorf("service %s has no port %d", svc.Hostname, port)
		}
		return svc.Hostname, clusterName(svc.Hostname, port, ""), nil
	}
	return "", "", fmt.Errorf("service %q is not a service this proxy sees", service)
}

func extAuthzTimeout(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return &durationpb.Duration{Seconds: extAuthzDefaultTimeout}
	}
	return d
}

// statusOnError is the HTTP status of a failed check; nil for Envoy's 403.
func statusOnError(s string) *typev3.HttpStatus {
	code, err := strconv.ParseInt(s, 10, 32)
	if s == "" || err != nil { // checked by api
		return nil
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(code)}
}

func requestBody(b *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) *extauthzv3.BufferSettings {
	if b == nil {
		return nil
	}
	return &extauthzv3.BufferSettings{MaxRequestBytes: b.MaxRequestBytes, AllowPartialMessage: b.AllowPartialMessage, PackAsBytes: b.PackAsBytes}
}

// headerList matches header names case-insensitively: "x-*" by prefix, "*-id" by
// suffix, others exactly. nil for none.
func headerList(names []string) *matcherv3.ListStringMatcher {
	if len(names) == 0 {
		return nil
	}
	l := &matcherv3.ListStringMatcher{}
	for _, n := range names {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		switch {
		case strings.HasPrefix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: n[1:]}
		case strings.HasSuffix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: n[:len(n)-1]}
		default:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: n}
		}
		l.Patterns = append(l.Patterns, m)
	}
	return l
}

// extAuthzEnabled enables an ext_authz filter for requests whose CUSTOM rules of
// provider the RBAC filter rbac matched.
func extAuthzEnabled(rbac, provider string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: rbac,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: extAuthzShadowPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzPolicyPrefix + "-" + provider}}}},
	}
}

// customRules are the CUSTOM policies' rules, matched as DENY rules are (a condition
// the proxy cannot check is dropped, so that more requests are checked, never fewer),
// named for their provider.
func (ca *customAuthz) rules(ctx *Context, tcp bool, ra *requestAuth) *rbacv3.RBAC {
	return namedRBACRules(ctx, rbacv3.RBAC_DENY, ca.policies, tcp, ra, extAuthzPolicyPrefix+"-"+ca.provider+"-")
}

// httpFilters are the RBAC filter that marks requests to check and the ext_authz
// filter that checks them.
func (ca *customAuthz) httpFilters(ctx *Context, ra *requestAuth) []*hcmv3.HttpFilter {
	rbac := &rbacfilterv3.RBAC{ShadowRules: ca.rules(ctx, false, ra), ShadowRulesStatPrefix: extAuthzShadowPrefix}
	return []*hcmv3.HttpFilter{
		{Name: rbacFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(rbac)}},
		{Name: extAuthzFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(ca.http)}},
	}
}

// networkFilters are the same for a TCP chain; none for an HTTP provider.
func (ca *customAuthz) networkFilters(ctx *Context) []*listenerv3.Filter {
	if ca.tcp == nil {
		return nil
	}
	rbac := &rbacnetworkv3.RBAC{StatPrefix: rbacTCPStatPrefix, ShadowRules: ca.rules(ctx, true, nil), ShadowRulesStatPrefix: extAuthzShadowPrefix}
	return []*listenerv3.Filter{
		{Name: rbacNetworkFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(rbac)}},
		{Name: extAuthzNetworkFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(ca.tcp)}},
	}
}
