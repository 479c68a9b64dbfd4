package xds

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	security "istio.io/api/security/v1beta1"
)

// token is a validated token as Envoy's jwt_authn leaves it in a request's metadata:
// the payload under the issuer's key.
type token map[string]map[string]any

// matches evaluates the principals navarch builds (the subset of Envoy's RBAC
// principal that JWT matching uses) against a request's validated tokens.
func matches(t *testing.T, p *rbacv3.Principal, md token) bool {
	t.Helper()
	switch id := p.Identifier.(type) {
	case *rbacv3.Principal_Any:
		return true
	case *rbacv3.Principal_NotId:
		return !matches(t, id.NotId, md)
	case *rbacv3.Principal_OrIds:
		for _, q := range id.OrIds.Ids {
			if matches(t, q, md) {
				return true
			}
		}
		return false
	case *rbacv3.Principal_AndIds:
		for _, q := range id.AndIds.Ids {
			if !matches(t, q, md) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_SourcedMetadata:
		m := id.SourcedMetadata.GetMetadataMatcher()
		if m.Filter != jwtFilter || len(m.Path) < 2 {
			t.Fatalf("unexpected metadata matcher %v", m)
		}
		payload, ok := md[m.Path[0].GetKey()]
		if !ok {
			return false
		}
		var v any = payload
		for _, seg := range m.Path[1:] {
			obj, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = obj[seg.GetKey()]; !ok {
				return false
			}
		}
		return valueMatches(t, m.Value, v)
	}
	t.Fatalf("unexpected principal %v", p)
	return false
}

func valueMatches(t *testing.T, vm *matcherv3.ValueMatcher, v any) bool {
	switch p := vm.MatchPattern.(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		_, isObj := v.(map[string]any)
		return !isObj
	case *matcherv3.ValueMatcher_StringMatch:
		s, ok := v.(string)
		return ok && stringMatches(t, p.StringMatch, s)
	case *matcherv3.ValueMatcher_ListMatch:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if valueMatches(t, p.ListMatch.GetOneOf(), e) {
				return true
			}
		}
		return false
	}
	t.Fatalf("unexpected value matcher %v", vm)
	return false
}

func stringMatches(t *testing.T, m *matcherv3.StringMatcher, s string) bool {
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, p.Suffix)
	case *matcherv3.StringMatcher_SafeRegex:
		if p.SafeRegex.Regex == ".*" {
			return true
		}
	}
	t.Fatalf("unexpected string matcher %v", m)
	return false
}

// istioMatch is Istio's string match of a request principal.
func istioMatch(pattern, s string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(s, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(s, strings.TrimPrefix(pattern, "*"))
	}
	return s == pattern
}

// TestRequestPrincipalForms checks that requestPrincipals, which Istio matches on the
// string "<iss>/<sub>", select exactly the same tokens when matched on the issuer and
// sub claims apart, for every form and for issuers with slashes in them.
func TestRequestPrincipalForms(t *testing.T) {
	ra := &requestAuth{issuers: []string{"https://accounts.example.com", "https://idp.example.com/tenant/a", "issuer"}}
	tokens := [][2]string{
		{"https://accounts.example.com", "alice"},
		{"https://accounts.example.com", "bob@example.com"},
		{"https://idp.example.com/tenant/a", "alice"},
		{"https://idp.example.com/tenant/a", "a/alice"},
		{"issuer", "svc/batch"},
		{"issuer", "alice"},
	}
	patterns := []string{
		"*", "https://accounts.example.com/alice", "https://accounts.example.com/*", "https://*",
		"https://idp.example.com/tenant/a/alice", "https://idp.example.com/*", "https://idp.example.com/tenant/a/a/*",
		"*/alice", "*a/alice", "*alice", "*@example.com", "*com/bob@example.com", "*tenant/a/a/alice",
		"issuer/svc/batch", "issuer/*", "iss*", "other/alice", "*nobody", "https://accounts.example.com/ali*",
	}
	for _, pattern := range patterns {
		p := ra.requestPrincipal(pattern)
		if err := p.ValidateAll(); err != nil {
			t.Fatalf("%s: %v", pattern, err)
		}
		for _, tok := range tokens {
			md := token{tok[0]: {"iss": tok[0], "sub": tok[1]}}
			want := istioMatch(pattern, tok[0]+"/"+tok[1])
			if got := matches(t, p, md); got != want {
				t.Errorf("requestPrincipals %q on token iss=%q sub=%q: matched %v, Istio matches %v", pattern, tok[0], tok[1], got, want)
			}
		}
		if matches(t, p, token{}) {
			t.Errorf("requestPrincipals %q matched a request without a token", pattern)
		}
	}
	if p := (&requestAuth{}).requestPrincipal("*"); p != never {
		t.Errorf("with no issuer, a request principal must match nothing, got %v", p)
	}
}

// TestClaimConditions checks request.auth.* when-conditions against tokens whose
// claims are strings or lists, nested or not.
func TestClaimConditions(t *testing.T) {
	ra := &requestAuth{issuers: []string{"https://accounts.example.com"}}
	md := token{"https://accounts.example.com": {
		"iss": "https://accounts.example.com", "sub": "alice", "azp": "web",
		"aud":    []any{"shop", "billing"},
		"groups": []any{"admins", "dev"},
		"scope":  []any{"read", "write"},
		"org":    map[string]any{"team": "payments"},
	}}
	tests := []struct {
		key    string
		values []string
		not    []string
		want   bool
	}{
		{"request.auth.principal", []string{"https://accounts.example.com/alice"}, nil, true},
		{"request.auth.principal", []string{"https://accounts.example.com/bob"}, nil, false},
		{"request.auth.audiences", []string{"billing"}, nil, true},
		{"request.auth.audiences", []string{"ads"}, nil, false},
		{"request.auth.presenter", []string{"web"}, nil, true},
		{"request.auth.claims[groups]", []string{"admins"}, nil, true},
		{"request.auth.claims[groups]", []string{"ops", "dev"}, nil, true},
		{"request.auth.claims[groups]", nil, []string{"dev"}, false},
		{"request.auth.claims[scope]", []string{"write"}, nil, true},
		{"request.auth.claims[org][team]", []string{"pay*"}, nil, true},
		{"request.auth.claims[org][team]", []string{"search"}, nil, false},
		{"request.auth.claims[missing]", []string{"*"}, nil, false},
	}
	for _, tt := range tests {
		c := &security.Condition{Key: tt.key, Values: tt.values, NotValues: tt.not}
		p, ok := ra.claimCondition(c)
		if !ok {
			t.Fatalf("%s: not translated", tt.key)
		}
		if got := matches(t, p, md); got != tt.want {
			t.Errorf("%s values %v notValues %v: matched %v, want %v", tt.key, tt.values, tt.not, got, tt.want)
		}
		if len(tt.values) > 0 && matches(t, p, token{}) {
			t.Errorf("%s matched a request without a token", tt.key)
		}
	}
}

// TestUnusableJWKS checks that the key set given to rules whose keys cannot be had is
// one Envoy accepts: a P-256 point on the curve.
func TestUnusableJWKS(t *testing.T) {
	if err := checkJWKS(unusableJWKS); err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ X, Y string }
	}
	if err := json.Unmarshal([]byte(unusableJWKS), &set); err != nil {
		t.Fatal(err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	y, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].Y)
	if _, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, x...), y...)); err != nil {
		t.Fatalf("not a P-256 public key: %v", err)
	}
}

// TestTranslateJWT translates RequestAuthentication and JWT-based AuthorizationPolicy
// for an Envoy sidecar and a gateway (golden files) and checks what each kind of proxy
// gets: Envoy a jwt_authn filter ahead of RBAC whose rules match request principals,
// proxyless gRPC no JWT filter and an ALLOW rule on request principals that matches
// nothing.
func TestTranslateJWT(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "jwt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))

	sidecar := grpcProxy("shop", map[string]string{"app": "orders"})
	sidecar.Generator = ""
	ctx := newContext(snap, sidecar, "cluster.local", "istio-system")
	sets, err := sidecarProfile().build(ctx)
	if err == nil || !strings.Contains(err.Error(), "idp.unknown.example:443 is not a service port this proxy sees") {
		t.Fatalf("want the unresolvable jwksUri reported, got %v", err)
	}
	checkGolden(t, filepath.Join("testdata", "jwt.sidecar.golden.yaml"), dump(t, sets))

	filters := rbacFilters(ctx, "shop", sidecar.Labels)
	if got := names(filters); got != jwtFilter+","+rbacFilter+"(DENY),"+rbacFilter+"(ALLOW)" {
		t.Fatalf("want jwt_authn, then RBAC DENY and ALLOW, got %v", filters)
	}
	var jwt jwtv3.JwtAuthentication
	if err := filters[0].GetTypedConfig().UnmarshalTo(&jwt); err != nil {
		t.Fatal(err)
	}
	if got := jwt.Providers["https://accounts.example.com"].GetLocalJwks().GetInlineString(); !strings.Contains(got, `"kid":"shop-1"`) {
		t.Errorf("inline jwks: got %q", got)
	}
	if got := jwt.Providers["https://idp.example.com"].GetRemoteJwks().GetHttpUri().GetCluster(); got != "outbound|443||idp.example.com" {
		t.Errorf("jwksUri of a mesh service: cluster %q", got)
	}
	if got := jwt.Providers["https://idp.unknown.example"].GetLocalJwks().GetInlineString(); got != unusableJWKS {
		t.Errorf("unresolvable jwksUri: want the unusable key set, got %q", got)
	}
	var rbac rbacfilterv3.RBAC
	if err := filters[2].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
		t.Fatal(err)
	}
	rule := rbac.Rules.Policies["ns[shop]-policy[require-jwt]-rule[0]"]
	if rule == nil {
		t.Fatalf("the ALLOW rule on request principals is missing: %v", rbac.Rules.Policies)
	}
	if _, ok := rbac.Rules.Policies["ns[shop]-policy[gateway-api-only]-rule[0]"]; ok {
		t.Error("a policy bound by targetRefs applied to a sidecar")
	}
	alice := token{"https://accounts.example.com": {"iss": "https://accounts.example.com", "sub": "alice", "groups": []any{"buyers"}}}
	mallory := token{"https://accounts.example.com": {"iss": "https://accounts.example.com", "sub": "mallory", "groups": []any{"buyers"}}}
	if !matches(t, rule.Principals[0], alice) || matches(t, rule.Principals[0], mallory) || matches(t, rule.Principals[0], token{}) {
		t.Error("the ALLOW rule must admit alice's token only")
	}

	// The gateway gets the root namespace's policy for its labels.
	gw := &Proxy{ID: "router~10.0.0.2~ingress.istio-system~istio-system.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err = gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "jwt.gateway.golden.yaml"), dump(t, sets))
	var hcm hcmv3.HttpConnectionManager
	l := sets[ListenerType].ByName["0.0.0.0_8080"]
	if l == nil {
		t.Fatalf("no gateway listener: %v", sets[ListenerType].Names())
	}
	var lis listenerv3.Listener
	if err := l.Body.UnmarshalTo(&lis); err != nil {
		t.Fatal(err)
	}
	if err := lis.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if got := withoutCommon(hcm.HttpFilters); got[0].Name != jwtFilter {
		t.Errorf("gateway: want jwt_authn first of the policies' filters, got %s", got[0].Name)
	}

	// Proxyless gRPC: no JWT filter; the ALLOW rule cannot match and the DENY rule,
	// without its request principals, denies /admin to everyone.
	grpc := grpcProxy("shop", map[string]string{"app": "orders"})
	gctx := newContext(snap, grpc, "cluster.local", "istio-system")
	gf := rbacFilters(gctx, "shop", grpc.Labels)
	if got := names(gf); got != rbacFilter+".DENY(DENY),"+rbacFilter+"(ALLOW)" {
		t.Fatalf("gRPC: want RBAC DENY and ALLOW only, got %v", gf)
	}
	if err := gf[1].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
		t.Fatal(err)
	}
	if len(rbac.Rules.Policies) != 0 {
		t.Errorf("gRPC: an ALLOW rule on request principals must match nothing, got %v", rbac.Rules.Policies)
	}
	if err := gf[0].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
		t.Fatal(err)
	}
	if p := rbac.Rules.Policies["ns[shop]-policy[no-anonymous-admin]-rule[0]"]; p == nil || !p.Principals[0].GetAny() {
		t.Errorf("gRPC: the DENY rule must lose its request principals and deny everyone, got %v", p)
	}
}

func TestSpaceDelimitedClaims(t *testing.T) {
	if got := spaceDelimited([]string{"roles", "scope"}); strings.Join(got, ",") != "scope,permission,roles" {
		t.Errorf("got %v, want Istio's two and the rule's own", got)
	}
}

// TestJWTRulesIstioAcceptsAsTheyAre: a rule with a jwksUri and no issuer (tokens
// of any issuer its keys verify) gets a provider of its own, named after the key
// set; a payload header Envoy would refuse is left out, not sent to the proxy.
func TestJWTRulesIstioAcceptsAsTheyAre(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: any-issuer, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  jwtRules:
  - jwks: '`+unusableJWKS+`'
    issuer: https://a.example.com
    outputPayloadToHeader: "x-payload\nx-injected: 1"
  - jwksUri: https://keys.example.com/jwks.json
`)
	sidecar := grpcProxy("shop", map[string]string{"app": "orders"})
	sidecar.Generator = ""
	ctx := newContext(snap, sidecar, "cluster.local", "istio-system")
	f, ra := jwtFor(ctx, "shop", sidecar.Labels)
	if f == nil {
		t.Fatal("no jwt_authn filter")
	}
	var jwt jwtv3.JwtAuthentication
	if err := f.GetTypedConfig().UnmarshalTo(&jwt); err != nil {
		t.Fatal(err)
	}
	if err := jwt.Validate(); err != nil {
		t.Fatalf("Envoy would refuse the filter: %v", err)
	}
	p := jwt.Providers["jwks:https://keys.example.com/jwks.json"]
	if p == nil || p.Issuer != "" || p.PayloadInMetadata != "" {
		t.Fatalf("the issuer-less rule's provider: %v (providers %v)", p, jwt.Providers)
	}
	if got := jwt.Providers["https://a.example.com"].GetForwardPayloadHeader(); got != "" {
		t.Errorf("a payload header with a line break reached the proxy: %q", got)
	}
	if strings.Join(ra.issuers, ",") != "https://a.example.com" {
		t.Errorf("issuers %v, want the one named", ra.issuers)
	}
}
