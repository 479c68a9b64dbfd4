package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Warnings returns what Istio's validation warns about in r, a resource Validate
// accepts: settings that are deprecated, ignored, or most likely a mistake, such
// as a VirtualService rule no request can reach. Istio's webhook returns the same
// warnings (kubectl prints them as "Warning: ..."); the Reason of each is Istio's
// text, the Field where it is.
//
// Istio's validation drops some warnings its checks make (those of a
// DestinationRule's subsets and port-level settings, of match gateways in HTTP and
// TCP routes, of an abort fault without an error type); Warnings gives what Istio
// gives, so that a user sees the same warnings from both. api's oracle test holds
// the two to it.
func Warnings(r *Resource) []*DocumentError {
	p := &problems{}
	schemaWarnings(p, r)
	if vs, ok := r.Spec.(*networking.VirtualService); ok {
		for _, f := range UnreachableRules(vs) {
			p.add(f.Field, "%s", f.Message())
		}
	}
	return p.stamp(func() string { return resourceName(r.Kind, r.Meta) })
}

// SchemaWarnings is Warnings without the findings of UnreachableRules, which
// analysis reports under codes of their own.
func SchemaWarnings(r *Resource) []*DocumentError {
	p := &problems{}
	schemaWarnings(p, r)
	return p.stamp(func() string { return resourceName(r.Kind, r.Meta) })
}

func schemaWarnings(p *problems, r *Resource) {
	switch s := r.Spec.(type) {
	case *networking.VirtualService:
		warnVirtualService(p, s)
	case *networking.DestinationRule:
		warnTrafficPolicy(p, "spec.trafficPolicy", s.TrafficPolicy)
		warnSelector(p, "spec.workloadSelector", s.WorkloadSelector)
	case *networking.Gateway:
		warnGateway(p, s)
	case *networking.ServiceEntry:
		warnServiceEntry(p, r.Meta, s)
	case *networking.Sidecar:
		warnSidecar(p, r.Meta.Namespace, s)
	case *networking.WorkloadEntry:
		warnWorkloadEntry(p, "spec", s)
	case *security.PeerAuthentication:
		warnSelector(p, "spec.selector", s.Selector)
	case *security.AuthorizationPolicy:
		warnSelector(p, "spec.selector", s.Selector)
		warnAuthorizationPolicy(p, s)
	case *security.RequestAuthentication:
		warnSelector(p, "spec.selector", s.Selector)
		for i, j := range s.JwtRules {
			warnPrivateJWKS(p, index("spec.jwtRules", i)+".jwks", j.GetJwks())
		}
	case *telemetry.Telemetry:
		warnSelector(p, "spec.selector", s.Selector)
		warnTelemetry(p, s)
	case *networking.EnvoyFilter:
		warnEnvoyFilter(p, s)
	case *meshconfig.MeshConfig:
		warnMeshConfig(p, s)
	}
}

// stamp names resource in every problem recorded and returns them.
func (p *problems) stamp(resource func() string) []*DocumentError {
	if len(p.errs) == 0 {
		return nil
	}
	name := resource()
	for _, e := range p.errs {
		e.Resource = name
	}
	return p.errs
}

// warnSelector: a selector without labels selects every workload of the
// namespace, which is what no selector at all says; Istio takes it as a likely
// mistake.
func warnSelector(p *problems, path string, s *typev1beta1.WorkloadSelector) {
	if s != nil && len(s.MatchLabels) == 0 {
		p.add(path, "workload selector specified without labels")
	}
}

// warnAlphaSelector is warnSelector for the kinds whose selector is the older
// networking WorkloadSelector (Sidecar, ServiceEntry, EnvoyFilter); Istio prefixes
// the kind and says what follows.
func warnAlphaSelector(p *problems, path string, s *networking.WorkloadSelector, kind string) {
	if s != nil && len(s.Labels) == 0 {
		p.add(path, "%s: workload selector specified without labels, will be applied to all services in namespace", kind)
	}
}

func warnVirtualService(p *problems, vs *networking.VirtualService) {
	warnGatewayNames(p, "spec.gateways", vs.Gateways)
	for i, h := range vs.Http {
		hp := index("spec.http", i)
		//lint:ignore SA1019 deprecated, which is what the warning says
		if h.MirrorPercent != nil {
			p.add(field(hp, "mirrorPercent"), `using deprecated setting "mirrorPercent", use "mirrorPercentage" instead`)
		}
		if b := h.GetDirectResponse().GetBody(); len(b.GetString_())+len(b.GetBytes()) > 100*1024 {
			p.add(field(hp, "directResponse.body"), "large direct_responses may impact control plane performance")
		}
	}
	// Istio drops the warnings of HTTP and TCP match gateways; it keeps TLS's.
	for i, t := range vs.Tls {
		for j, m := range t.Match {
			mp := index(index("spec.tls", i)+".match", j)
			for k, sni := range m.SniHosts {
				// An IPv4 address passes as a domain name; an IPv6 one is let through with this.
				if strings.Contains(sni, ":") && isIP(sni) {
					p.add(index(field(mp, "sniHosts"), k),
						"using an IP address (%q) goes against SNI spec and most clients do not support this", sni)
				}
			}
			warnGatewayNames(p, field(mp, "gateways"), m.Gateways)
		}
	}
}

// warnGatewayNames warns of a gateway named in the legacy name.namespace form.
// Istio's check stops at the first name without a namespace/ part.
func warnGatewayNames(p *problems, path string, names []string) {
	for i, g := range names {
		if strings.Contains(g, "/") {
			continue
		}
		if name, rest, ok := strings.Cut(g, "."); ok {
			ns, _, _ := strings.Cut(rest, ".")
			p.add(index(path, i), "using legacy gatewayName format %q; prefer the <namespace>/<name> format: %q", g, ns+"/"+name)
		}
		return
	}
}

// warnTrafficPolicy: only a DestinationRule's top-level policy, as Istio's.
func warnTrafficPolicy(p *problems, path string, t *networking.TrafficPolicy) {
	if t == nil {
		return
	}
	//lint:ignore SA1019 deprecated, which is what the warning says
	if t.GetOutlierDetection().GetConsecutiveErrors() != 0 {
		p.add(field(path, "outlierDetection.consecutiveErrors"),
			"outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")
	}
	lb := t.GetLoadBalancer()
	//lint:ignore SA1019 deprecated, which is what the warning says
	if lb.GetConsistentHash().GetMinimumRingSize() != 0 {
		p.add(field(path, "loadBalancer.consistentHash.minimumRingSize"),
			"consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead")
	}
	if l := lb.GetLocalityLbSetting(); (len(l.GetFailover()) > 0 || len(l.GetFailoverPriority()) > 0) && t.OutlierDetection == nil {
		p.add(field(path, "loadBalancer.localityLbSetting"), "outlier detection policy must be provided for failover")
	}
	if z := lb.GetZoneAwareLbSetting(); (len(z.GetFailover()) > 0 || len(z.GetFailoverPriority()) > 0) && t.OutlierDetection == nil {
		p.add(field(path, "loadBalancer.zoneAwareLbSetting"), "outlier detection policy must be provided for failover")
	}
}

func warnGateway(p *problems, g *networking.Gateway) {
	for i, s := range g.Servers {
		sp := index("spec.servers", i)
		warnServerTLS(p, field(sp, "tls"), s.Tls)
	}
	for i, s := range g.Servers {
		if s.Port != nil && !parseProtocol(s.Port.Protocol).http() && s.GetTls().GetHttpsRedirect() {
			p.add(index("spec.servers", i)+".tls.httpsRedirect", "tls.httpsRedirect should only be used with http servers")
		}
	}
}

// validCipherSuites are the cipher suites Envoy's BoringSSL takes by name
// (Istio's list, from `bssl ciphers -openssl-name ALL`, without PSK ones).
var validCipherSuites = []string{
	"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
	"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
	"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
	"AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
}

// validCipherSuite reports whether Envoy takes cs in a cipher suite list. Entries
// starting with an operator (-, +, !, [) pass, as Istio lets them through.
func validCipherSuite(cs string) bool {
	if cs == "" || cs == "ALL" {
		return true
	}
	if c := cs[0]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80) {
		return true
	}
	return slices.Contains(validCipherSuites, cs)
}

// CipherSuites returns suites without the unknown and repeated ones, which Istio
// accepts (with a warning) and leaves out of what it sends Envoy: Envoy refuses
// a TLS context naming a cipher suite it does not have.
func CipherSuites(suites []string) []string {
	kept, _, _ := sortOut(suites, validCipherSuite)
	return kept
}

// sortOut sorts names into those valid takes, in order and without repeats (and
// without empty ones, which Istio lets pass but name nothing), and the ones it
// does not take and the repeated ones, each sorted without repeats, for Istio's
// warnings.
func sortOut(names []string, valid func(string) bool) (kept, unknown, repeated []string) {
	var seen []string
	for _, n := range names {
		switch {
		case !valid(n):
			unknown = append(unknown, n)
		case slices.Contains(seen, n):
			repeated = append(repeated, n)
		default:
			seen = append(seen, n)
			if n != "" {
				kept = append(kept, n)
			}
		}
	}
	slices.Sort(unknown)
	slices.Sort(repeated)
	return kept, slices.Compact(unknown), slices.Compact(repeated)
}

// warnNames adds Istio's warnings of the unknown and repeated names sortOut found.
func warnNames(p *problems, path, unknownReason, repeatedReason string, unknown, repeated []string) {
	for _, l := range []named[[]string]{{unknownReason, unknown}, {repeatedReason, repeated}} {
		if len(l.value) > 0 {
			p.add(path, "%s: %v", l.name, l.value)
		}
	}
}

// validECDHCurves are the ECDH curves Envoy's BoringSSL takes by name (Istio's list).
var validECDHCurves = []string{"P-224", "P-256", "P-521", "P-384", "X25519", "X25519Kyber768Draft00", "X25519MLKEM768"}

// ECDHCurves returns curves without the unknown and repeated ones. Istio accepts
// them in the mesh config's tlsDefaults with a warning, and sends them on; Envoy
// refuses a TLS context naming a curve it does not have, so navarch leaves them out.
func ECDHCurves(curves []string) []string {
	kept, _, _ := sortOut(curves, validECDHCurve)
	return kept
}

// validECDHCurve reports whether Istio takes c as a curve ("" passes, naming none).
func validECDHCurve(c string) bool { return c == "" || slices.Contains(validECDHCurves, c) }

// warnMeshConfig: what istiod warns of (in its log) when it reads the mesh config.
func warnMeshConfig(p *problems, m *meshconfig.MeshConfig) {
	_, unknown, repeated := sortOut(m.GetTlsDefaults().GetEcdhCurves(), validECDHCurve)
	warnNames(p, "spec.tlsDefaults.ecdhCurves", "detected unrecognized ECDH curves", "detected duplicate ECDH curves", unknown, repeated)
	if _, ok := m.GetDefaultConfig().GetProxyMetadata()["ISTIO_META_DNS_AUTO_ALLOCATE"]; ok {
		p.add("spec.defaultConfig.proxyMetadata", "'ISTIO_META_DNS_AUTO_ALLOCATE' is deprecated; review "+
			"https://istio.io/latest/docs/ops/configuration/traffic-management/dns-proxy/#dns-auto-allocation-v2 for information about replacement functionality")
	}
}

// warnServerTLS: the warnings of Istio's TLS options of a Gateway server or a
// Sidecar ingress listener.
func warnServerTLS(p *problems, path string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	if (t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) && len(t.CipherSuites) == 0 {
		p.add(field(path, "minProtocolVersion"),
			"TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.")
	}
	_, invalid, repeated := sortOut(t.CipherSuites, validCipherSuite)
	warnNames(p, field(path, "cipherSuites"), "ignoring invalid cipher suites", "ignoring duplicate cipher suites", invalid, repeated)
	if t.Mode == networking.ServerTLSSettings_PASSTHROUGH || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		if t.CaCrl != "" || t.ServerCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" ||
			len(t.TlsCertificates) > 0 || t.CredentialName != "" || len(t.CredentialNames) > 0 {
			p.add(path, "%v mode does not use certificates, they will be ignored", t.Mode)
		}
	}
}

func warnServiceEntry(p *problems, m ObjectMeta, se *networking.ServiceEntry) {
	warnAlphaSelector(p, "spec.workloadSelector", se.WorkloadSelector, "service entry")
	if se.Resolution != networking.ServiceEntry_DYNAMIC_DNS {
		for i, h := range se.Hosts {
			if strings.Contains(h, "*") && h != "*" && !strings.HasPrefix(h, "*.") {
				p.add(index("spec.hosts", i), "partial wildcard %q not allowed", h)
			}
		}
	}
	// Istio allocates addresses to a ServiceEntry without them, unless its
	// resolution is NONE or its label opts out; a TCP port needs one to be told apart.
	autoAllocated := se.Resolution != networking.ServiceEntry_NONE && !strings.EqualFold(m.Labels["networking.istio.io/enable-autoallocate-ip"], "false")
	if len(se.Addresses) == 0 && !autoAllocated {
		for i, port := range se.Ports {
			if port.Protocol == "" || port.Protocol == "TCP" {
				p.add(index("spec.ports", i), "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled")
			}
		}
	}
	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if se.WorkloadSelector != nil {
			p.add("spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
		}
	case networking.ServiceEntry_STATIC:
		for i, e := range se.Endpoints {
			warnWorkloadEntry(p, index("spec.endpoints", i), e)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		// Several hosts on a plain TCP port are refused (validate_serviceentry.go);
		// Istio warns of them on a TLS one too, the first TCP-borne port.
		if len(se.Addresses) == 0 || len(se.Hosts) < 2 {
			break
		}
		for i, port := range se.Ports {
			if parseProtocol(port.Protocol).tcp() {
				p.add(index("spec.ports", i), "service entry can not have more than one host specified simultaneously with address and tcp port")
				break
			}
		}
	}
}

func warnWorkloadEntry(p *problems, path string, we *networking.WorkloadEntry) {
	if we.GetAddress() == "" && we.GetNetwork() != "" {
		p.add(field(path, "address"), "address is unset with network %q", we.Network)
	}
}

func warnSidecar(p *problems, namespace string, sc *networking.Sidecar) {
	warnAlphaSelector(p, "spec.workloadSelector", sc.WorkloadSelector, "sidecar")
	for i, in := range sc.Ingress {
		ip := index("spec.ingress", i)
		warnServerTLS(p, field(ip, "tls"), in.Tls)
		if in.GetConnectionPool().GetHttp() != nil && in.Port != nil && !parseProtocol(in.Port.Protocol).http() {
			p.add(field(ip, "connectionPool.http"),
				"sidecar: HTTP connection pool settings are configured for port %d (%q) but its protocol is not HTTP (%s); only TCP settings will apply",
				in.Port.Number, in.Port.Name, in.Port.Protocol)
		}
	}
	for i, eg := range sc.Egress {
		hp := index("spec.egress", i) + ".hosts"
		seen := map[string]map[string]bool{}
		for j, h := range eg.Hosts {
			ns, svc, ok := strings.Cut(h, "/")
			if !ok || strings.HasPrefix(ns, "~") {
				continue
			}
			if ns == "." {
				ns = namespace
			}
			if seen[ns] == nil {
				seen[ns] = map[string]bool{}
			}
			if svc != "*" && (seen[ns][svc] || seen[ns]["*"]) || svc == "*" && len(seen[ns]) > 0 {
				p.add(index(hp, j), "duplicated egress host: %s", h)
			}
			seen[ns][svc] = true
		}
		if seen["*"]["*"] && len(seen) != 1 {
			p.add(hp, "`*/*` host select all resources, no other hosts can be added")
		}
	}
}

// warnAuthorizationPolicy: a DENY rule of only HTTP attributes (paths, methods,
// request principals, ...) matches every connection to a TCP port, where those
// cannot be seen.
func warnAuthorizationPolicy(p *problems, ap *security.AuthorizationPolicy) {
	if ap.Action != security.AuthorizationPolicy_DENY {
		return
	}
	for i, r := range ap.Rules {
		var from, to, tcpFrom, tcpTo bool
		for _, f := range r.From {
			if s := f.GetSource(); s != nil {
				from = true
				tcpFrom = tcpFrom || len(s.Principals)+len(s.NotPrincipals)+len(s.IpBlocks)+len(s.NotIpBlocks)+
					len(s.Namespaces)+len(s.NotNamespaces)+len(s.RemoteIpBlocks)+len(s.NotRemoteIpBlocks)+
					len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0
			}
		}
		for _, t := range r.To {
			if o := t.GetOperation(); o != nil {
				to = true
				tcpTo = tcpTo || len(o.Ports)+len(o.NotPorts) > 0
			}
		}
		if from && !to && !tcpFrom || to && !tcpTo {
			p.add(index("spec.rules", i), "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope "+
				"due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")
		}
	}
}

// warnPrivateJWKS: Envoy verifies tokens with public keys only; a JWKS holding
// private or symmetric keys puts secrets in the mesh's configuration.
func warnPrivateJWKS(p *problems, path, jwks string) {
	if jwks == "" {
		return
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if json.Unmarshal([]byte(jwks), &set) != nil {
		return
	}
	for i, k := range set.Keys {
		_, d := k["d"]
		if kty, _ := k["kty"].(string); kty == "oct" || d && (kty == "RSA" || kty == "EC" || kty == "OKP") {
			p.add(path, "jwks key at index %d contains private key material; only public keys are used for verification", i)
		}
	}
}

func warnTelemetry(p *problems, t *telemetry.Telemetry) {
	if len(t.Tracing) > 1 {
		p.add("spec.tracing", "multiple tracing is not currently supported")
	}
	for i, tr := range t.Tracing {
		if len(tr.GetProviders()) > 1 {
			p.add(index("spec.tracing", i)+".providers", "multiple providers is not currently supported")
		}
	}
	for i, m := range t.Metrics {
		for j, o := range m.GetOverrides() {
			if _, ok := o.GetTagOverrides()[""]; ok {
				p.add(index(index("spec.metrics", i)+".overrides", j)+".tagOverrides", "tagOverrides.name may not be empty")
			}
		}
	}
}

// maxProxyVersionLen is the longest proxyVersion match Istio compiles; a longer
// one is ignored.
const maxProxyVersionLen = 1024

func warnEnvoyFilter(p *problems, ef *networking.EnvoyFilter) {
	p.add("spec", "EnvoyFilter exposes internal implementation details that may change at any time. "+
		"Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.")
	warnAlphaSelector(p, "spec.workloadSelector", ef.WorkloadSelector, "Envoy filter")
	for i, cp := range ef.ConfigPatches {
		path := index("spec.configPatches", i)
		if cp.GetMatch().GetContext() == networking.EnvoyFilter_WAYPOINT {
			continue
		}
		if len(cp.GetMatch().GetProxy().GetProxyVersion()) > maxProxyVersionLen {
			p.add(field(path, "match.proxy.proxyVersion"), "Envoy filter: proxyVersion match exceeds %d characters and will be ignored", maxProxyVersionLen)
		}
		if v := cp.GetPatch().GetValue(); v != nil {
			if obj, err := EnvoyFilterValue(cp.ApplyTo, v); err == nil && obj != nil {
				if names := untypedFilters(obj.ProtoReflect()); len(names) > 0 {
					p.add(field(path, "patch.value"), "using deprecated types by name without typed_config; %s", strings.Join(names, ", "))
				}
			}
		}
		switch cp.ApplyTo {
		case networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_FILTER_CHAIN:
			if cp.GetMatch().GetListener().GetFilterChain().GetFilter() != nil {
				p.add(field(path, "match.listener.filterChain.filter"), "Envoy filter: filter match has no effect when used with %v", cp.ApplyTo)
			}
		}
	}
}

// untypedFilters returns the names of the extensions in m (and the messages it
// holds) configured by name alone, without typed_config: Envoy's lookup of an
// extension by name is deprecated. As Istio's check, it looks into singular
// message fields, not lists or maps.
func untypedFilters(m protoreflect.Message) []string {
	fields := m.Descriptor().Fields()
	var name string
	if f := fields.ByJSONName("name"); f != nil {
		name = fmt.Sprint(m.Get(f).Interface())
	}
	var out []string
	typed, wantsTyped := false, false
	for i := range fields.Len() {
		f := fields.Get(i)
		set := m.Has(f)
		switch f.JSONName() {
		case "typedConfig":
			wantsTyped = true
			typed = typed || set
		case "configDiscovery":
			typed = typed || set
		}
		if set && f.Message() != nil && !f.IsList() && !f.IsMap() {
			out = append(out, untypedFilters(m.Get(f).Message())...)
		}
	}
	if wantsTyped && !typed {
		out = append(out, name)
	}
	return out
}
