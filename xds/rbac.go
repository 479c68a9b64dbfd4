package xds

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

const (
	rbacFilter        = "envoy.filters.http.rbac"
	rbacNetworkFilter = "envoy.filters.network.rbac"
)

// AuthorizationPolicy becomes Envoy RBAC, the HTTP filter grpc-go enforces on xDS
// servers. As in Istio: DENY policies are checked first, then, if any ALLOW policy
// applies to the workload, a request must match one of them. A rule becomes a policy
// whose principals are its from clauses (ORed; each ANDs its fields) and whose
// permissions are its to clauses, with when conditions ANDed to one or the other by
// what they test. Principals are peer certificate URI SANs: cluster.local/ns/a/sa/b
// matches spiffe://cluster.local/ns/a/sa/b; namespaces match .../ns/<ns>/....
//
// Request principals and request.auth.* conditions match the tokens Envoy's jwt_authn
// filter validated (jwt.go). What a proxy cannot check (JWTs in proxyless gRPC, most
// when keys) makes an ALLOW rule match nothing and is dropped from a DENY rule, so
// that an unsupported condition never allows more than the policy says.

// authzPolicies returns the policies that apply to a workload, by action: those in
// its namespace and in the root namespace whose selector matches its labels or that
// have none. CUSTOM policies go to their extension provider (extauthz.go); those
// whose provider the proxy cannot use deny what they match, as Istio fails them
// closed, and are returned with the DENY policies. AUDIT policies mark what they
// match for the access log (Envoy's RBAC LOG action), as in Istio.
func authzPolicies(ctx *Context, ns string, labels map[string]string) authzSet {
	var set authzSet
	var customs []*api.Resource
	for _, r := range selectedPolicies(ctx, api.AuthorizationPolicy, ns, labels) {
		ap := r.Spec.(*security.AuthorizationPolicy)
		switch ap.Action {
		case security.AuthorizationPolicy_ALLOW:
			set.allow = append(set.allow, r)
		case security.AuthorizationPolicy_DENY:
			set.deny = append(set.deny, r)
		case security.AuthorizationPolicy_AUDIT:
			set.audit = append(set.audit, r)
		case security.AuthorizationPolicy_CUSTOM:
			customs = append(customs, r)
		}
	}
	custom, failed := customFor(ctx, customs)
	set.deny = append(set.deny, failed...)
	set.custom = custom
	return set
}

// authzSet is the AuthorizationPolicies of a workload, by action.
type authzSet struct {
	allow, deny, audit []*api.Resource
	custom             *customAuthz
}

// rbacStages are the RBAC filters of a workload's policies, in the order Envoy
// runs them, with the names istiod gives them: AUDIT (Envoy only: grpc-go ignores
// the LOG action), DENY, ALLOW, each only if it has policies. grpc-go requires a
// connection manager's filter names to be unique, so its DENY filter is named apart,
// as istiod names it.
func (set authzSet) rbacStages(ctx *Context, base string) []rbacStage {
	grpc := ctx.Proxy.Generator == GeneratorGRPC
	var out []rbacStage
	if !grpc && len(set.audit) > 0 {
		out = append(out, rbacStage{base, rbacv3.RBAC_LOG, set.audit})
	}
	if len(set.deny) > 0 {
		name := base
		if grpc {
			name += ".DENY"
		}
		out = append(out, rbacStage{name, rbacv3.RBAC_DENY, set.deny})
	}
	if len(set.allow) > 0 {
		out = append(out, rbacStage{base, rbacv3.RBAC_ALLOW, set.allow})
	}
	return out
}

// rbacStage is one RBAC filter: its name, action and policies.
type rbacStage struct {
	name     string
	action   rbacv3.RBAC_Action
	policies []*api.Resource
}

// rules are the stage's enforced rules and its shadow rules: the policies marked
// dry-run (api.DryRun) are evaluated, and their result recorded in the filter's
// metadata and statistics under the shadow prefix, but not enforced, as in Istio
// (grpc-go does not evaluate shadow rules). Either is nil when no policy goes there:
// an RBAC filter without rules enforces nothing. prefix is the shadow rules'
// statistics prefix, istiod's (which names the ALLOW prefix where there are none).
func (st rbacStage) rules(ctx *Context, tcp bool, ra *requestAuth) (rules, shadow *rbacv3.RBAC, prefix string) {
	var enforced, dryRun []*api.Resource
	for _, r := range st.policies {
		if api.DryRun(r) {
			dryRun = append(dryRun, r)
		} else {
			enforced = append(enforced, r)
		}
	}
	prefix = "istio_dry_run_allow_"
	if len(enforced) > 0 {
		rules = rbacRules(ctx, st.action, enforced, tcp, ra)
	}
	if len(dryRun) > 0 && ctx.Proxy.Generator != GeneratorGRPC {
		shadow = rbacRules(ctx, st.action, dryRun, tcp, ra)
		if st.action == rbacv3.RBAC_DENY {
			prefix = "istio_dry_run_deny_"
		}
	}
	return rules, shadow, prefix
}

// workloadPolicy is a policy that selects workloads: AuthorizationPolicy,
// RequestAuthentication, Telemetry.
type workloadPolicy interface {
	GetSelector() *typev1beta1.WorkloadSelector
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

// selectedPolicies returns the policies of kind that apply to a workload: those in its
// namespace and in the root namespace whose selector matches its labels or that have
// none. Policies bound by targetRef(s) apply to Kubernetes Gateway API resources,
// which navarch does not run, so to no proxy.
func selectedPolicies(ctx *Context, kind *api.Kind, ns string, labels map[string]string) []*api.Resource {
	var out []*api.Resource
	for _, r := range ctx.Snapshot.Config(kind) {
		if r.Meta.Namespace != ns && r.Meta.Namespace != ctx.RootNamespace {
			continue
		}
		p := r.Spec.(workloadPolicy)
		if p.GetTargetRef() != nil || len(p.GetTargetRefs()) > 0 {
			continue
		}
		if sel := p.GetSelector().GetMatchLabels(); len(sel) > 0 && !registry.LabelsMatch(labels, sel) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// rbacFilters returns the authentication and authorization filters for a workload's
// inbound HTTP traffic: for Envoy, JWT validation (RequestAuthentication); then
// CUSTOM policies' filters and the RBAC filters (rbacStages).
func rbacFilters(ctx *Context, ns string, labels map[string]string) []*hcmv3.HttpFilter {
	set := authzPolicies(ctx, ns, labels)
	jwt, ra := jwtFor(ctx, ns, labels)
	var out []*hcmv3.HttpFilter
	if jwt != nil {
		out = append(out, jwt)
	}
	if set.custom != nil {
		out = append(out, set.custom.httpFilters(ctx, ra)...)
	}
	for _, st := range set.rbacStages(ctx, rbacFilter) {
		rules, shadow, prefix := st.rules(ctx, false, ra)
		rbac := &rbacfilterv3.RBAC{Rules: rules, ShadowRules: shadow}
		if ctx.Proxy.Generator == GeneratorGRPC {
			if rules == nil {
				continue // only dry-run policies, which grpc-go would not evaluate
			}
		} else {
			rbac.ShadowRulesStatPrefix = prefix
		}
		out = append(out, &hcmv3.HttpFilter{Name: st.name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(rbac)}})
	}
	return out
}

// rbacNetworkFilters returns the RBAC network filters for a workload's inbound TCP
// traffic (an Envoy sidecar's non-HTTP ports). As in Istio, a rule that tests what
// only HTTP carries (paths, methods, hosts, request headers, request principals) never
// matches in an ALLOW policy, and those tests are left out of a DENY (or AUDIT)
// rule, which then matches more. Their statistics go under rbacTCPStatPrefix, as
// istiod has them.
func rbacNetworkFilters(ctx *Context, ns string, labels map[string]string) []*listenerv3.Filter {
	set := authzPolicies(ctx, ns, labels)
	var out []*listenerv3.Filter
	if set.custom != nil {
		out = append(out, set.custom.networkFilters(ctx)...)
	}
	for _, st := range set.rbacStages(ctx, rbacNetworkFilter) {
		rules, shadow, prefix := st.rules(ctx, true, nil)
		rbac := &rbacnetworkv3.RBAC{StatPrefix: rbacTCPStatPrefix, Rules: rules, ShadowRules: shadow, ShadowRulesStatPrefix: prefix}
		out = append(out, &listenerv3.Filter{Name: st.name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(rbac)}})
	}
	return out
}

// rbacRules translates the rules of policies of one action, for HTTP or TCP traffic;
// ra is what the proxy's JWT filter establishes (nil: no JWT filter).
func rbacRules(ctx *Context, action rbacv3.RBAC_Action, policies []*api.Resource, tcp bool, ra *requestAuth) *rbacv3.RBAC {
	return namedRBACRules(ctx, action, policies, tcp, ra, "")
}

// namedRBACRules is rbacRules with the rules' names prefixed.
func namedRBACRules(ctx *Context, action rbacv3.RBAC_Action, policies []*api.Resource, tcp bool, ra *requestAuth, prefix string) *rbacv3.RBAC {
	rules := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	for _, r := range policies {
		ap := r.Spec.(*security.AuthorizationPolicy)
		name := func(i int) string {
			return fmt.Sprintf("%sns[%s]-policy[%s]-rule[%d]", prefix, r.Meta.Namespace, r.Meta.Name, i)
		}
		if len(ap.Rules) == 0 {
			rules.Policies[name(0)] = matchNever() // as istiod writes a policy of no rules
		}
		for i, rule := range ap.Rules {
			// ALLOW rules match only what they can check; DENY, AUDIT (and CUSTOM)
			// rules drop what they cannot, and so match more.
			p, ok := rbacPolicy(ctx, rule, action != rbacv3.RBAC_ALLOW, tcp, ra)
			if !ok {
				continue
			}
			rules.Policies[name(i)] = p
		}
	}
	return rules
}

// matchNever is a policy that matches no request.
func matchNever() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}},
	}
}

// rbacPolicy translates one rule; ok is false when the rule can never match.
func rbacPolicy(ctx *Context, rule *security.Rule, deny, tcp bool, ra *requestAuth) (*rbacv3.Policy, bool) {
	if tcp && !deny && httpOnly(rule) {
		return nil, false
	}
	var principals []*rbacv3.Principal
	for _, f := range rule.From {
		p, ok := sourcePrincipal(ctx, f.GetSource(), deny, ra)
		if !ok {
			continue
		}
		principals = append(principals, p)
	}
	if len(rule.From) > 0 && len(principals) == 0 {
		return nil, false
	}
	var permissions []*rbacv3.Permission
	for _, t := range rule.To {
		permissions = append(permissions, operationPermission(t.GetOperation(), tcp))
	}
	var condPrincipals []*rbacv3.Principal
	var condPermissions []*rbacv3.Permission
	for _, c := range rule.When {
		pr, pe, ok := condition(ctx, c, tcp, ra)
		if !ok {
			if deny {
				continue // unsupported: dropping it makes the DENY broader, never narrower
			}
			return nil, false
		}
		if pr != nil {
			condPrincipals = append(condPrincipals, pr)
		}
		if pe != nil {
			condPermissions = append(condPermissions, pe)
		}
	}
	principal := andPrincipals(append([]*rbacv3.Principal{orPrincipals(principals)}, condPrincipals...))
	permission := andPermissions(append([]*rbacv3.Permission{orPermissions(permissions)}, condPermissions...))
	return &rbacv3.Policy{Principals: []*rbacv3.Principal{principal}, Permissions: []*rbacv3.Permission{permission}}, true
}

// sourcePrincipal ANDs the fields of a from clause.
func sourcePrincipal(ctx *Context, s *security.Source, deny bool, ra *requestAuth) (*rbacv3.Principal, bool) {
	if (len(s.GetRequestPrincipals()) > 0 || len(s.GetNotRequestPrincipals()) > 0) && !deny && ra == nil {
		return nil, false // no JWT filter checks tokens on this proxy
	}
	var and []*rbacv3.Principal
	add := func(values []string, f func(string) *rbacv3.Principal, negate bool) {
		if len(values) == 0 {
			return
		}
		var or []*rbacv3.Principal
		for _, v := range values {
			or = append(or, f(v))
		}
		p := orPrincipals(or)
		if negate {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
		}
		and = append(and, p)
	}
	principal := func(v string) *rbacv3.Principal {
		var or []*rbacv3.Principal
		for _, p := range withTrustDomainAliases(ctx, v) {
			or = append(or, authenticated(principalMatcher(p)))
		}
		return orPrincipals(or)
	}
	namespace := func(v string) *rbacv3.Principal { return authenticated(namespaceMatcher(v)) }
	serviceAccount := func(v string) *rbacv3.Principal {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			return authenticated(exact(spiffeID(ctx.TrustDomain, ctx.Proxy.Namespace, v)))
		}
		return authenticated(exact(spiffeID(ctx.TrustDomain, ns, sa)))
	}
	if ra != nil {
		add(s.GetRequestPrincipals(), ra.requestPrincipal, false)
		add(s.GetNotRequestPrincipals(), ra.requestPrincipal, true)
	}
	add(s.GetPrincipals(), principal, false)
	add(s.GetNotPrincipals(), principal, true)
	add(s.GetServiceAccounts(), serviceAccount, false)
	add(s.GetNotServiceAccounts(), serviceAccount, true)
	trustDomain := func(v string) *rbacv3.Principal {
		if v == "*" {
			return authenticated(principalMatcher("*"))
		}
		return authenticated(principalMatcher(v + "/*"))
	}
	add(s.GetTrustDomains(), trustDomain, false)
	add(s.GetNotTrustDomains(), trustDomain, true)
	add(s.GetNamespaces(), namespace, false)
	add(s.GetNotNamespaces(), namespace, true)
	add(s.GetIpBlocks(), sourceIP, false)
	add(s.GetNotIpBlocks(), sourceIP, true)
	add(s.GetRemoteIpBlocks(), sourceIP, false)
	add(s.GetNotRemoteIpBlocks(), sourceIP, true)
	return andPrincipals(and), true
}

// withTrustDomainAliases expands a principal of the mesh's trust domain, of one of
// the mesh config's trustDomainAliases or of "cluster.local" (which stands for the
// mesh's) to the same identity in the trust domain and in each alias, as Istio does
// so that policies keep matching while workloads move from one trust domain to
// another. Other principals, and those starting with a wildcard, are left as they are.
func withTrustDomainAliases(ctx *Context, principal string) []string {
	td, rest, ok := strings.Cut(principal, "/ns/")
	if !ok || strings.HasPrefix(principal, "*") {
		return []string{principal}
	}
	domains := append([]string{ctx.TrustDomain}, ctx.Mesh.GetTrustDomainAliases()...)
	if td != "cluster.local" && !slices.Contains(domains, td) {
		return []string{principal}
	}
	var out []string
	for _, d := range domains {
		if p := d + "/ns/" + rest; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// httpOnly reports whether a rule tests anything only HTTP requests carry.
func httpOnly(rule *security.Rule) bool {
	for _, f := range rule.From {
		if s := f.GetSource(); len(s.GetRequestPrincipals()) > 0 || len(s.GetNotRequestPrincipals()) > 0 {
			return true
		}
	}
	for _, t := range rule.To {
		o := t.GetOperation()
		if len(o.GetPaths())+len(o.GetNotPaths())+len(o.GetMethods())+len(o.GetNotMethods())+len(o.GetHosts())+len(o.GetNotHosts()) > 0 {
			return true
		}
	}
	for _, c := range rule.When {
		if strings.HasPrefix(c.GetKey(), "request.") {
			return true
		}
	}
	return false
}

// operationPermission ANDs the fields of a to clause; for TCP (tcp set) only ports.
func operationPermission(o *security.Operation, tcp bool) *rbacv3.Permission {
	var and []*rbacv3.Permission
	add := func(values []string, f func(string) *rbacv3.Permission, negate bool) {
		if len(values) == 0 {
			return
		}
		var or []*rbacv3.Permission
		for _, v := range values {
			or = append(or, f(v))
		}
		p := orPermissions(or)
		if negate {
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
		}
		and = append(and, p)
	}
	path := func(v string) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: wildcardMatcher(v)}}}}
	}
	method := func(v string) *rbacv3.Permission { return headerPermission(":method", v) }
	host := func(v string) *rbacv3.Permission { return headerPermission(":authority", v) }
	port := func(v string) *rbacv3.Permission {
		n, _ := strconv.ParseUint(v, 10, 32)
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
	}
	if !tcp {
		add(o.GetPaths(), path, false)
		add(o.GetNotPaths(), path, true)
		add(o.GetMethods(), method, false)
		add(o.GetNotMethods(), method, true)
		add(o.GetHosts(), host, false)
		add(o.GetNotHosts(), host, true)
	}
	add(o.GetPorts(), port, false)
	add(o.GetNotPorts(), port, true)
	return andPermissions(and)
}

// condition translates a when condition into a principal or a permission; ok is false
// for keys the proxy cannot check and, for TCP (tcp set), for request keys.
func condition(ctx *Context, c *security.Condition, tcp bool, ra *requestAuth) (*rbacv3.Principal, *rbacv3.Permission, bool) {
	key := c.GetKey()
	switch {
	case strings.HasPrefix(key, "request.auth.") && !tcp && ra != nil:
		p, ok := ra.claimCondition(c)
		return p, nil, ok
	case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]") && !tcp:
		name := strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]")
		f := func(v string) *rbacv3.Permission { return headerPermission(name, v) }
		return nil, valuesPermission(c, f), true
	case key == "destination.port":
		f := func(v string) *rbacv3.Permission {
			n, _ := strconv.ParseUint(v, 10, 32)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
		}
		return nil, valuesPermission(c, f), true
	case key == "source.ip" || key == "remote.ip":
		return valuesPrincipal(c, sourceIP), nil, true
	case key == "source.principal":
		return valuesPrincipal(c, func(v string) *rbacv3.Principal { return authenticated(principalMatcher(v)) }), nil, true
	case key == "source.namespace":
		return valuesPrincipal(c, func(v string) *rbacv3.Principal { return authenticated(namespaceMatcher(v)) }), nil, true
	}
	return nil, nil, false
}

func valuesPermission(c *security.Condition, f func(string) *rbacv3.Permission) *rbacv3.Permission {
	var and []*rbacv3.Permission
	if len(c.Values) > 0 {
		var or []*rbacv3.Permission
		for _, v := range c.Values {
			or = append(or, f(v))
		}
		and = append(and, orPermissions(or))
	}
	for _, v := range c.NotValues {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: f(v)}})
	}
	return andPermissions(and)
}

func valuesPrincipal(c *security.Condition, f func(string) *rbacv3.Principal) *rbacv3.Principal {
	var and []*rbacv3.Principal
	if len(c.Values) > 0 {
		var or []*rbacv3.Principal
		for _, v := range c.Values {
			or = append(or, f(v))
		}
		and = append(and, orPrincipals(or))
	}
	for _, v := range c.NotValues {
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: f(v)}})
	}
	return andPrincipals(and)
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// principalMatcher matches an Istio principal ("cluster.local/ns/a/sa/b", "*",
// "prefix*", "*suffix") against a certificate's SPIFFE URI.
func principalMatcher(v string) *matcherv3.StringMatcher {
	if v == "*" {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}}
	}
	if strings.HasPrefix(v, "*") {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	}
	return wildcardMatcher("spiffe://" + v)
}

func namespaceMatcher(ns string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
		Regex: "^spiffe://[^/]+/ns/" + regexp.QuoteMeta(ns) + "/.*$"}}}
}

// wildcardMatcher matches Istio's string forms: exact, "prefix*", "*suffix", "*".
func wildcardMatcher(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	}
	return exact(v)
}

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func headerPermission(name, v string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: strings.ToLower(name), HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: wildcardMatcher(v)}}}}
}

func sourceIP(v string) *rbacv3.Principal {
	cidr := v
	if !strings.Contains(cidr, "/") {
		if ip := net.ParseIP(v); ip != nil && ip.To4() == nil {
			cidr += "/128"
		} else {
			cidr += "/32"
		}
	}
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
	}
	ones, _ := ipnet.Mask.Size()
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
		AddressPrefix: ip.String(), PrefixLen: wrapperspb.UInt32(uint32(ones))}}}
}

func orPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func andPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	ps = dropAnyPrincipals(ps)
	switch len(ps) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func dropAnyPrincipals(ps []*rbacv3.Principal) []*rbacv3.Principal {
	out := ps[:0:0]
	for _, p := range ps {
		if !p.GetAny() {
			out = append(out, p)
		}
	}
	return out
}

func orPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func andPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	var out []*rbacv3.Permission
	for _, p := range ps {
		if !p.GetAny() {
			out = append(out, p)
		}
	}
	switch len(out) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return out[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: out}}}
}
