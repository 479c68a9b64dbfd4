package xds

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	extauthznetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// extAuthzInput is a workload (web, an HTTP and a TCP port) behind CUSTOM policies,
// and the mesh config's two external authorization services.
const extAuthzInput = `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: opa
      envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local, port: 9191, timeout: 2s, failOpen: true}
    - name: oauth2
      envoyExtAuthzHttp:
        service: authz/oauth2-proxy.authz.svc.cluster.local
        port: 4180
        pathPrefix: /check
        statusOnError: "503"
        includeRequestHeadersInCheck: [authorization, "x-auth-*"]
        headersToUpstreamOnAllow: [authorization]
        headersToDownstreamOnDeny: [set-cookie, "*-reason"]
    - name: nowhere
      envoyExtAuthzGrpc: {service: missing.authz.svc.cluster.local, port: 9191}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: opa, namespace: authz}
spec:
  hosts: [opa.authz.svc.cluster.local]
  ports: [{number: 9191, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.9.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: oauth2-proxy, namespace: authz}
spec:
  hosts: [oauth2-proxy.authz.svc.cluster.local]
  ports: [{number: 4180, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.9.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 5432, name: tcp-db, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
`

// customPolicy is a CUSTOM AuthorizationPolicy on web sending /admin requests to
// provider.
func customPolicy(name, provider string) string {
	return `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ` + name + `, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: CUSTOM
  provider: {name: ` + provider + `}
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
`
}

// inboundFilters returns the filters of web's inbound chains for port 8080 (HTTP
// filters) and 5432 (network filters before the TCP proxy), from a full build of an
// Envoy sidecar, whose every resource passed Validate.
func inboundFilters(t *testing.T, docs ...string) (http []*hcmv3.HttpFilter, tcp []*listenerv3.Filter, errs error) {
	t.Helper()
	p := grpcProxy("shop", map[string]string{"app": "web"})
	p.Generator = ""
	sets, err := sidecarProfile().build(newContext(snapshotOf(t, docs...), p, "cluster.local", "istio-system"))
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	for _, c := range l.FilterChains {
		switch c.GetFilterChainMatch().GetDestinationPort().GetValue() {
		case 8080: // the chain of plaintext HTTP (others pass TLS through)
			var hcm hcmv3.HttpConnectionManager
			if last := c.Filters[len(c.Filters)-1]; last.GetTypedConfig().UnmarshalTo(&hcm) == nil && http == nil {
				http = withoutCommon(hcm.HttpFilters)
			}
		case 5432:
			tcp = withoutCommon(c.Filters[:len(c.Filters)-1])
		}
	}
	return http, tcp, err
}

// withoutCommon leaves out of a filter list those every connection manager (or TCP
// chain) has, whatever the policies: Istio's metadata exchange and statistics,
// ALPN override, fault injection and CORS.
func withoutCommon[T interface{ GetName() string }](fs []T) []T {
	return slices.DeleteFunc(slices.Clone(fs), func(f T) bool {
		switch f.GetName() {
		case mxFilterName, statsFilterName, alpnFilterName, grpcStatsFilter, faultFilter, corsFilter:
			return true
		}
		return false
	})
}

// names lists filters by name, an RBAC filter with the action of its rules (or
// "shadow" when it has none but shadow rules).
func names[T interface {
	GetName() string
	GetTypedConfig() *anypb.Any
}](fs []T) string {
	var out []string
	for _, f := range fs {
		name := f.GetName()
		rules, shadow, _, _ := rbacOf(f.GetTypedConfig())
		switch {
		case rules != nil:
			name += "(" + rules.Action.String() + ")"
		case shadow != nil:
			name += "(shadow)"
		}
		out = append(out, name)
	}
	return strings.Join(out, ",")
}

// rbacOf unpacks an HTTP or network RBAC filter's configuration: its rules, shadow
// rules and shadow statistics prefix; ok is false for another filter.
func rbacOf(a *anypb.Any) (rules, shadow *rbacv3.RBAC, prefix string, ok bool) {
	var h rbacfilterv3.RBAC
	var n rbacnetworkv3.RBAC
	switch {
	case a.UnmarshalTo(&h) == nil:
		return h.Rules, h.ShadowRules, h.ShadowRulesStatPrefix, true
	case a.UnmarshalTo(&n) == nil:
		return n.Rules, n.ShadowRules, n.ShadowRulesStatPrefix, true
	}
	return nil, nil, "", false
}

func TestCustomAuthorizationByAGRPCProvider(t *testing.T) {
	http, tcp, err := inboundFilters(t, extAuthzInput, customPolicy("ext-authz", "opa"), `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/private]}}]}]
`)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	// CUSTOM first: the RBAC filter that marks, ext_authz that checks; then DENY.
	if got := names(http); got != "envoy.filters.http.rbac(shadow),envoy.filters.http.ext_authz,envoy.filters.http.rbac(DENY),envoy.filters.http.router" {
		t.Fatalf("HTTP filters %s", got)
	}
	var mark rbacfilterv3.RBAC
	if err := http[0].GetTypedConfig().UnmarshalTo(&mark); err != nil {
		t.Fatal(err)
	}
	const rule = "istio-ext-authz-opa-ns[shop]-policy[ext-authz]-rule[0]"
	if mark.Rules != nil || mark.ShadowRules.GetPolicies()[rule] == nil || mark.ShadowRulesStatPrefix != "istio_ext_authz_" {
		t.Errorf("the marking RBAC filter enforces or lacks the rule %s: %v", rule, &mark)
	}
	var check extauthzv3.ExtAuthz
	if err := http[1].GetTypedConfig().UnmarshalTo(&check); err != nil {
		t.Fatal(err)
	}
	g := check.GetGrpcService()
	if g.GetEnvoyGrpc().GetClusterName() != "outbound|9191||opa.authz.svc.cluster.local" || g.GetEnvoyGrpc().GetAuthority() != "opa.authz.svc.cluster.local" ||
		g.GetTimeout().AsDuration().Seconds() != 2 || !check.FailureModeAllow {
		t.Errorf("ext_authz service %v, failure mode allow %v", g, check.FailureModeAllow)
	}
	enabled := check.GetFilterEnabledMetadata()
	if enabled.GetFilter() != "envoy.filters.http.rbac" || enabled.GetPath()[0].GetKey() != "istio_ext_authz_shadow_effective_policy_id" ||
		!strings.HasPrefix(rule, enabled.GetValue().GetStringMatch().GetPrefix()) {
		t.Errorf("ext_authz enabled by %v, which does not match the rule %s", enabled, rule)
	}

	// On the TCP port: the network filters, the paths dropped (more is checked),
	// then the DENY policy's (which denies every connection, its path dropped too).
	if got := names(tcp); got != "envoy.filters.network.rbac(shadow),envoy.filters.network.ext_authz,envoy.filters.network.rbac(DENY)" {
		t.Fatalf("TCP filters %s", got)
	}
	var tcpMark rbacnetworkv3.RBAC
	if err := tcp[0].GetTypedConfig().UnmarshalTo(&tcpMark); err != nil {
		t.Fatal(err)
	}
	if p := tcpMark.GetShadowRules().GetPolicies()[rule]; p == nil || !p.Permissions[0].GetAny() {
		t.Errorf("TCP shadow rule %v, want the rule matching any connection", p)
	}
	var tcpCheck extauthznetworkv3.ExtAuthz
	if err := tcp[1].GetTypedConfig().UnmarshalTo(&tcpCheck); err != nil {
		t.Fatal(err)
	}
	if tcpCheck.GetFilterEnabledMetadata().GetFilter() != "envoy.filters.network.rbac" || !proto.Equal(tcpCheck.GetGrpcService(), g) {
		t.Errorf("network ext_authz %v", &tcpCheck)
	}
}

func TestCustomAuthorizationByAnHTTPProvider(t *testing.T) {
	http, tcp, err := inboundFilters(t, extAuthzInput, customPolicy("login", "oauth2"))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if got := names(http); got != "envoy.filters.http.rbac(shadow),envoy.filters.http.ext_authz,envoy.filters.http.router" {
		t.Fatalf("HTTP filters %s", got)
	}
	var check extauthzv3.ExtAuthz
	if err := http[1].GetTypedConfig().UnmarshalTo(&check); err != nil {
		t.Fatal(err)
	}
	s := check.GetHttpService()
	if s.GetServerUri().GetCluster() != "outbound|4180||oauth2-proxy.authz.svc.cluster.local" || s.PathPrefix != "/check" ||
		check.GetStatusOnError().GetCode() != 503 || check.FailureModeAllow {
		t.Errorf("ext_authz %v", &check)
	}
	if got := check.GetAllowedHeaders().GetPatterns(); len(got) != 2 || got[0].GetExact() != "authorization" || got[1].GetPrefix() != "x-auth-" || !got[1].IgnoreCase {
		t.Errorf("headers sent for the check %v", got)
	}
	if deny := s.GetAuthorizationResponse().GetAllowedClientHeaders().GetPatterns(); len(deny) != 2 || deny[1].GetSuffix() != "-reason" {
		t.Errorf("headers returned on deny %v", deny)
	}
	// An HTTP provider cannot check connections: the TCP port is left alone.
	if len(tcp) != 0 {
		t.Errorf("TCP filters %s, want none", names(tcp))
	}
}

// TestCustomAuthorizationThatCannotBeServedDenies: a provider whose service the
// proxy does not have, two providers for one workload, and a proxyless server each
// make the CUSTOM policies deny what they match, reported.
func TestCustomAuthorizationThatCannotBeServedDenies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		docs     []string
		reported string
	}{
		{"an unknown service", []string{customPolicy("ext-authz", "nowhere")},
			`provider "nowhere": service "missing.authz.svc.cluster.local" is not a service this proxy sees`},
		{"two providers", []string{customPolicy("a", "opa"), customPolicy("b", "oauth2")},
			"the workload's CUSTOM policies name several providers (oauth2, opa)"},
		{"a provider that is not for authorization", []string{customPolicy("ext-authz", "envoy")},
			`provider "envoy": not an external authorization provider`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			http, tcp, err := inboundFilters(t, append([]string{extAuthzInput}, tc.docs...)...)
			if err == nil || !strings.Contains(err.Error(), tc.reported) {
				t.Fatalf("reported %v, want %q", err, tc.reported)
			}
			if got := names(http); got != "envoy.filters.http.rbac(DENY),envoy.filters.http.router" {
				t.Errorf("HTTP filters %s, want the policies denying", got)
			}
			if got := names(tcp); got != "envoy.filters.network.rbac(DENY)" {
				t.Errorf("TCP filters %s, want the policies denying", got)
			}
		})
	}
	t.Run("a proxyless server", func(t *testing.T) {
		ctx := newContext(snapshotOf(t, extAuthzInput, customPolicy("ext-authz", "opa")), grpcProxy("shop", map[string]string{"app": "web"}), "cluster.local", "istio-system")
		if set := authzPolicies(ctx, "shop", map[string]string{"app": "web"}); set.custom != nil || len(set.deny) != 1 {
			t.Errorf("proxyless: custom %v, deny %v; want the policy denying", set.custom, set.deny)
		}
		if len(ctx.errs) != 1 || !strings.Contains(ctx.errs[0].Error(), "proxyless gRPC servers have no external authorization") {
			t.Errorf("reported %v", ctx.errs)
		}
	})
}

// TestCustomAuthorizationAtAGateway: an ingress gateway checks what it serves.
func TestCustomAuthorizationAtAGateway(t *testing.T) {
	gw := &Proxy{ID: "router~10.0.0.2~ingress.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
	snap := snapshotOf(t, extAuthzInput, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: login, namespace: edge}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: oauth2}
  rules: [{to: [{operation: {hosts: [app.example.com]}}]}]
`)
	sets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "extauthz.gateway.golden.yaml"), dump(t, map[string]*TypeSet{ListenerType: sets[ListenerType]}))
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_80"].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if got := names(withoutCommon(hcm.HttpFilters)); !strings.HasPrefix(got, "envoy.filters.http.rbac(shadow),envoy.filters.http.ext_authz,") {
		t.Errorf("gateway HTTP filters %s", got)
	}
}
