package api

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
)

func validatePeerAuthentication(p *problems, pa *security.PeerAuthentication) {
	validateWorkloadSelector(p, "spec.selector", pa.Selector)
	if len(pa.PortLevelMtls) > 0 && len(pa.Selector.GetMatchLabels()) == 0 {
		p.add("spec.portLevelMtls", "requires a selector with matchLabels; a mesh or namespace wide policy cannot set port level mTLS")
	}
	for _, port := range sortedKeys(pa.PortLevelMtls) {
		pp := mapKey("spec.portLevelMtls", strconv.FormatUint(uint64(port), 10))
		validatePort(p, pp, port)
		if pa.PortLevelMtls[port] == nil {
			p.add(pp, "must not be null")
		}
	}
}

func validateAuthorizationPolicy(p *problems, ap *security.AuthorizationPolicy) {
	validateTargetRefs(p, ap.Selector, ap.TargetRef, ap.TargetRefs)
	custom := ap.Action == security.AuthorizationPolicy_CUSTOM
	switch {
	case custom && ap.Rules == nil:
		p.add("spec.rules", "required with action CUSTOM, which never triggers without rules; use [{}] to match every request")
	case custom && ap.GetProvider().GetName() == "":
		p.add("spec.provider.name", "required with action CUSTOM")
	case !custom && ap.GetProvider() != nil:
		p.add("spec.provider", "may only be set with action CUSTOM, got %s", ap.Action)
	case ap.Action == security.AuthorizationPolicy_DENY && ap.Rules == nil:
		p.add("spec.rules", "required with action DENY, which never triggers without rules; use [{}] to match every request")
	}
	for i, r := range ap.Rules {
		rp := index("spec.rules", i)
		if r == nil {
			p.add(rp, "must not be null")
			continue
		}
		for j, f := range r.From {
			validateRuleSource(p, index(field(rp, "from"), j), f, custom)
		}
		for j, t := range r.To {
			validateRuleOperation(p, index(field(rp, "to"), j), t)
		}
		for j, c := range r.When {
			validateCondition(p, index(field(rp, "when"), j), c, custom)
		}
	}
}

func validateRuleSource(p *problems, path string, f *security.Rule_From, custom bool) {
	if f == nil || f.Source == nil {
		p.add(field(path, "source"), "required")
		return
	}
	s, sp := f.Source, field(path, "source")
	lists := []named[[]string]{
		{"principals", s.Principals}, {"notPrincipals", s.NotPrincipals},
		{"requestPrincipals", s.RequestPrincipals}, {"notRequestPrincipals", s.NotRequestPrincipals},
		{"namespaces", s.Namespaces}, {"notNamespaces", s.NotNamespaces},
		{"serviceAccounts", s.ServiceAccounts}, {"notServiceAccounts", s.NotServiceAccounts},
		{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks},
		{"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks},
		{"trustDomains", s.TrustDomains}, {"notTrustDomains", s.NotTrustDomains},
	}
	if !validateValueLists(p, sp, lists) {
		p.add(sp, "must set at least one field; omit the source to match any")
	}
	if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 &&
		len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 {
		p.add(sp, "must not set serviceAccounts together with principals or namespaces")
	}
	for _, l := range lists[6:8] { // service accounts, as Istio's CheckServiceAccount
		validateServiceAccountRefs(p, field(sp, l.name), l.value)
	}
	for _, l := range lists[12:14] { // trust domains
		for k, v := range l.value {
			if strings.Contains(v, "/") {
				p.add(index(field(sp, l.name), k), "a trust domain must not contain '/', got %q", v)
			}
		}
	}
	for _, l := range lists[8:12] { // the IP blocks
		for k, v := range l.value {
			if reason := ipOrCIDRError(v); reason != "" && v != "" {
				p.add(index(field(sp, l.name), k), "%s", reason)
			}
		}
	}
	if !custom {
		return
	}
	for _, l := range append(slices.Clone(lists[:8]), lists[12:14]...) { // all but the IP blocks
		if len(l.value) > 0 {
			p.add(field(sp, l.name), "is not supported with action CUSTOM")
		}
	}
}

func validateRuleOperation(p *problems, path string, t *security.Rule_To) {
	if t == nil || t.Operation == nil {
		p.add(field(path, "operation"), "required")
		return
	}
	o, op := t.Operation, field(path, "operation")
	lists := []named[[]string]{
		{"hosts", o.Hosts}, {"notHosts", o.NotHosts}, {"ports", o.Ports}, {"notPorts", o.NotPorts},
		{"methods", o.Methods}, {"notMethods", o.NotMethods}, {"paths", o.Paths}, {"notPaths", o.NotPaths},
	}
	if !validateValueLists(p, op, lists) {
		p.add(op, "must set at least one field; omit the operation to match any")
	}
	for _, l := range []named[[]string]{{"ports", o.Ports}, {"notPorts", o.NotPorts}} {
		for k, v := range l.value {
			validatePortString(p, index(field(op, l.name), k), v)
		}
	}
	for _, l := range []named[[]string]{{"paths", o.Paths}, {"notPaths", o.NotPaths}} {
		for k, v := range l.value {
			if unsupportedPathTemplate(v) {
				p.add(index(field(op, l.name), k), "unsupported path template %q: only {*} and {**} are supported, as whole segments", v)
			}
		}
	}
}

// validateValueLists reports empty strings in the lists, and whether any list is set.
func validateValueLists(p *problems, path string, lists []named[[]string]) bool {
	set := false
	for _, l := range lists {
		set = set || len(l.value) > 0
		for k, v := range l.value {
			if v == "" {
				p.add(index(field(path, l.name), k), "must not be empty")
			}
		}
	}
	return set
}

// validatePortString checks a port given as a string: 0..65535.
func validatePortString(p *problems, path, v string) {
	if v == "" {
		return // reported as empty
	}
	if n, err := strconv.ParseUint(v, 10, 32); err != nil || n > 65535 {
		p.add(path, "must be a port number 0-65535, got %q", v)
	}
}

// unsupportedPathTemplate reports a path that uses path templates ({*} or {**}) in a
// way Istio does not support: named variables ({name}, {name=*}), or bare '*' and
// '**' segments mixed with templates.
func unsupportedPathTemplate(path string) bool {
	if !strings.Contains(path, "{*}") && !strings.Contains(path, "{**}") {
		return false
	}
	return regexp.MustCompile(`/\{\w+=\*\*?\}|\{\w*\}|/\*\*?|\*\*?/`).MatchString(path)
}

func validateCondition(p *problems, path string, c *security.Condition, custom bool) {
	if c == nil {
		p.add(path, "must not be null")
		return
	}
	kp := field(path, "key")
	if c.Key == "" {
		p.add(kp, "required")
		return
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		p.add(path, "one of values and notValues is required for key %q", c.Key)
	}
	if reason := conditionKeyError(c.Key); reason != "" {
		p.add(kp, "%s", reason)
		return
	}
	if custom && (c.Key == "source.namespace" || c.Key == "source.principal" || strings.HasPrefix(c.Key, "request.auth.")) {
		p.add(kp, "%q is not supported with action CUSTOM", c.Key)
	}
	for _, l := range []named[[]string]{{"values", c.Values}, {"notValues", c.NotValues}} {
		for k, v := range l.value {
			vp := index(field(path, l.name), k)
			if v == "" {
				p.add(vp, "must not be empty")
				continue
			}
			switch c.Key {
			case "source.ip", "remote.ip", "destination.ip":
				if reason := ipOrCIDRError(v); reason != "" {
					p.add(vp, "%s", reason)
				}
			case "destination.port":
				validatePortString(p, vp, v)
			}
		}
	}
}

// conditionKeyError checks the key of a when condition against the attributes Istio
// supports.
func conditionKeyError(key string) string {
	switch key {
	case "source.ip", "remote.ip", "source.namespace", "source.principal", "request.auth.principal",
		"request.auth.audiences", "request.auth.presenter", "destination.ip", "destination.port", "connection.sni":
		return ""
	case "destination.namespace":
		return "destination.namespace is not supported; the policy's namespace already selects it"
	case "destination.name", "destination.user":
		return key + " is not supported (it was only in v1alpha1)"
	}
	for _, prefix := range []string{"request.headers", "request.auth.claims", "experimental.envoy.filters."} {
		if strings.HasPrefix(key, prefix) {
			if open := strings.Index(key, "["); open > 0 && open < len(key)-2 && strings.HasSuffix(key, "]") {
				return ""
			}
			return "key " + quoteShort(key) + " must have the form name[key], e.g. request.headers[x-token]"
		}
	}
	if strings.HasPrefix(key, "destination.labels") {
		return "destination.labels is not supported; use the policy's selector"
	}
	return "unknown attribute " + quoteShort(key) + "; supported: request.headers[...], source.ip, remote.ip, " +
		"source.namespace, source.principal, request.auth.principal, request.auth.audiences, " +
		"request.auth.presenter, request.auth.claims[...], destination.ip, destination.port, connection.sni, " +
		"experimental.envoy.filters.*[...]"
}

func validateRequestAuthentication(p *problems, ra *security.RequestAuthentication) {
	validateTargetRefs(p, ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, r := range ra.JwtRules {
		rp := index("spec.jwtRules", i)
		if r == nil {
			p.add(rp, "must not be null")
			continue
		}
		if r.Issuer == "" && r.JwksUri == "" {
			p.add(field(rp, "issuer"), "required unless jwksUri is set")
		}
		if r.JwksUri != "" {
			if u, err := url.Parse(r.JwksUri); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(field(rp, "jwksUri"), "must be an http or https URL, got %q", r.JwksUri)
			}
		}
		if r.Jwks != "" {
			var set map[string]any
			if err := json.Unmarshal([]byte(r.Jwks), &set); err != nil {
				p.add(field(rp, "jwks"), "must be a JSON Web Key Set (a JSON object): %v", err)
			}
		}
		validateValueLists(p, rp, []named[[]string]{{"audiences", r.Audiences}, {"fromParams", r.FromParams},
			{"fromCookies", r.FromCookies}, {"spaceDelimitedClaims", r.SpaceDelimitedClaims}})
		for j, h := range r.FromHeaders {
			if h.GetName() == "" {
				p.add(index(field(rp, "fromHeaders"), j)+".name", "required")
			}
		}
		// outputPayloadToHeader is not checked: Istio accepts any string.
		for j, c := range r.OutputClaimToHeaders {
			cp := index(field(rp, "outputClaimToHeaders"), j)
			switch {
			case c.GetClaim() == "" || c.GetHeader() == "":
				p.add(cp, "claim and header are both required")
			case !claimHeaderName(c.Header):
				p.add(field(cp, "header"), "invalid header name %q", c.Header)
			}
		}
		validateDuration(p, field(rp, "timeout"), r.Timeout)
	}
}

// claimHeaderName reports whether name is a header Istio's CRDs let a claim be
// copied to: alphanumerics, '-' and '_'.
func claimHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		if !isAlnum(name[i], true) && name[i] != '-' && name[i] != '_' {
			return false
		}
	}
	return name != ""
}

// validateServiceAccountRefs checks an AuthorizationPolicy source's serviceAccounts
// or notServiceAccounts as Istio does: at most 16, each "sa" or "namespace/sa", no
// wildcards, at most 320 characters.
func validateServiceAccountRefs(p *problems, path string, refs []string) {
	if len(refs) > 16 {
		p.add(path, "must have at most 16 values, got %d", len(refs))
	}
	for i, r := range refs {
		ns, sa, qualified := strings.Cut(r, "/")
		switch {
		case r == "":
			// reported with the other empty values
		case strings.Contains(r, "*"):
			p.add(index(path, i), "wildcards are not allowed, got %q", r)
		case strings.Contains(sa, "/") || (qualified && (ns == "" || sa == "")):
			p.add(index(path, i), "must be \"serviceAccount\" or \"namespace/serviceAccount\", got %q", r)
		case len(r) > 320:
			p.add(index(path, i), "must be at most 320 characters, got %d", len(r))
		}
	}
}
