package api

import (
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	envoytypev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// The mesh config.
//
// Istio keeps its mesh config (istio.mesh.v1alpha1.MeshConfig: extension providers,
// default providers, access log, connect timeout, outbound traffic policy, ...) in
// the ConfigMap istio of istio-system, as YAML under the key mesh. navarch stores it
// as one resource of its own kind, MeshConfig istio-system/istio, shared by every
// node like the rest of the configuration. Decode takes it in either form:
//
//	apiVersion: v1                       apiVersion: navarch.io/v1
//	kind: ConfigMap                      kind: MeshConfig
//	metadata:                            metadata:
//	  name: istio                          name: istio
//	  namespace: istio-system              namespace: istio-system
//	data:                                spec:
//	  mesh: |-                             accessLogFile: /dev/stdout
//	    accessLogFile: /dev/stdout
//
// Any other ConfigMap is skipped like every Kubernetes object. What is stored is
// what the user wrote; Istio's defaults fill the fields it leaves out when the
// configuration is translated (xds/mesh.go), but for enableTracing, written in
// when left out (meshBoolDefaults).

// The name and namespace of the mesh config: those of Istio's ConfigMap.
const (
	MeshConfigName      = "istio"
	MeshConfigNamespace = "istio-system"

	configMapKind   = "ConfigMap"
	meshDataKey     = "mesh"
	meshNetworksKey = "meshNetworks"
)

// ReasonMeshNetworks is the reason given in Skipped for the networks of Istio's
// mesh ConfigMap, which navarch does not read (its mesh is taken).
const ReasonMeshNetworks = "its meshNetworks is not read: a network's gateways are a ServiceEntry (or Kubernetes Service) labelled topology.istio.io/network, and workloads name their network"

// meshNetworksGiven reports whether the ConfigMap's meshNetworks names any network
// (Istio's install writes "networks: {}").
func meshNetworksGiven(text string) bool {
	v, err := parseYAML([]byte(text))
	if err != nil {
		return true // not what Istio reads either; said so rather than let pass
	}
	obj, _ := v.(map[string]any)
	networks, _ := obj["networks"].(map[string]any)
	return len(networks) > 0
}

// Limits Istio puts on the mesh config.
const (
	minConnectTimeout = time.Millisecond
	maxConnectTimeout = time.Hour
)

// isMeshConfigMap reports whether a ConfigMap document is Istio's mesh config: the
// ConfigMap istio of istio-system (named there, or put there by -n).
func (d *decoder) isMeshConfigMap(obj map[string]any) bool {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if ns == "" {
		ns = d.namespace
	}
	return name == MeshConfigName && ns == MeshConfigNamespace
}

// meshConfigMap decodes Istio's mesh ConfigMap into a MeshConfig resource; errors
// name the fields under data.mesh as the user wrote them.
func (d *decoder) meshConfigMap(loc location, obj map[string]any) {
	p := &problems{}
	r := &Resource{Kind: MeshConfig, Meta: parseMeta(p, obj["metadata"], d.full)}
	if r.Meta.Namespace == "" {
		r.Meta.Namespace = d.namespace
	}
	validateMeta(p, MeshConfig, &r.Meta, d.full)
	if d.full {
		for _, key := range sortedKeys(obj) {
			switch key {
			case "apiVersion", "kind", "metadata", "data", "binaryData", "immutable":
			default:
				p.add(key, "unknown field %q; a ConfigMap has apiVersion, kind, metadata and data", key)
			}
		}
		r.Spec = MeshConfig.NewSpec()
		path := field("data", meshDataKey)
		var mesh any
		switch data := obj["data"].(type) {
		case nil:
		case map[string]any:
			if networks, ok := data[meshNetworksKey].(string); ok && meshNetworksGiven(networks) {
				d.skipped = append(d.skipped, Skipped{Source: loc.where(d.source), APIVersion: "v1", Kind: configMapKind,
					Name: MeshConfigName, Reason: ReasonMeshNetworks})
			}
			switch text := data[meshDataKey].(type) {
			case nil:
			case string:
				v, err := parseYAML([]byte(text))
				if err != nil {
					p.add(path, "%v", err)
				}
				mesh = v
			default:
				p.add(path, "must be a string holding the mesh config as YAML, got %s", describe(text))
			}
		default:
			p.add("data", "must be an object, got %s", describe(data))
		}
		before := p.count()
		if mesh != nil {
			decodeSpec(path, mesh, r.Spec.ProtoReflect(), p)
		}
		meshBoolDefaults(mesh, r.Spec.(*meshconfig.MeshConfig))
		if p.count() == before {
			validateMeshConfig(p, path, r.Meta, r.Spec.(*meshconfig.MeshConfig))
		}
	}
	if p.count() > 0 {
		d.fail(loc, resourceName(MeshConfig, r.Meta), p)
		return
	}
	d.resources = append(d.resources, r)
}

// meshBoolDefaults writes Istio's default into the plain booleans of the mesh config
// that default to true, where the user's YAML (raw) leaves them out: a proto3 bool
// cannot tell false from unset, so what is stored carries the value Istio would
// take (istiod merges the user's fields onto its defaults the same way). The one
// such field is enableTracing (Istio's legacy tracing, xds/tracing.go).
func meshBoolDefaults(raw any, m *meshconfig.MeshConfig) {
	obj, _ := raw.(map[string]any)
	if _, set := obj["enableTracing"]; !set {
		m.EnableTracing = true
	}
}

// validateMeshConfig checks the mesh config as Istio's ValidateMeshConfig checks it
// (istio/istio pkg/config/validation/agent), over the fields the user set: Istio
// merges them onto its defaults first, so a field left out is never wrong. Where
// Istio only warns, about an extension provider it cannot use, navarch refuses the
// config: the provider would otherwise fail every policy that names it.
func validateMeshConfig(p *problems, root string, meta ObjectMeta, m *meshconfig.MeshConfig) {
	if meta.Name != MeshConfigName || meta.Namespace != MeshConfigNamespace {
		p.add("metadata", "the mesh config is the one resource %s/%s (Istio's ConfigMap), got %s/%s",
			MeshConfigNamespace, MeshConfigName, meta.Namespace, meta.Name)
	}
	// Istio checks the outbound capture port only (given 0 too: presentRules).
	if port := m.ProxyListenPort; port < 0 || port > 65535 {
		p.add(field(root, "proxyListenPort"), "must be 1-65535, got %d", port)
	}
	if d := m.ConnectTimeout; d != nil {
		path := field(root, "connectTimeout")
		if err := d.CheckValid(); err != nil {
			p.add(path, "invalid duration: %v", err)
		} else if dur := d.AsDuration(); dur < minConnectTimeout || dur > maxConnectTimeout {
			p.add(path, "must be between %s and %s, got %s", minConnectTimeout, maxConnectTimeout, dur)
		}
	}
	// Envoy refuses a DNS refresh rate under 1ms (Istio does not check it).
	if d := m.DnsRefreshRate; d != nil && (d.CheckValid() != nil || d.AsDuration() < time.Millisecond) {
		p.add(field(root, "dnsRefreshRate"), "must be at least 1ms, got %s", d.AsDuration())
	}
	if d := m.ProtocolDetectionTimeout; d != nil && d.AsDuration()%time.Millisecond != 0 {
		p.add(field(root, "protocolDetectionTimeout"), "must be a whole number of milliseconds, got %s", d.AsDuration())
	}
	validateLocalityLB(p, field(root, "localityLbSetting"), m.LocalityLbSetting)
	// Both may be set mesh-wide (Istio's default mesh config always has a locality
	// setting): zone-aware load balancing wins where it applies.
	validateZoneAwareLB(p, field(root, "zoneAwareLbSetting"), m.ZoneAwareLbSetting)
	for i, s := range m.ServiceSettings {
		for j, h := range s.GetHosts() {
			validateHostField(p, index(field(index(field(root, "serviceSettings"), i), "hosts"), j), h)
		}
	}
	if m.TrustDomain != "" {
		validateTrustDomain(p, field(root, "trustDomain"), m.TrustDomain)
	}
	for i, td := range m.TrustDomainAliases {
		validateTrustDomain(p, index(field(root, "trustDomainAliases"), i), td)
	}
	if m.RootNamespace != "" && m.RootNamespace != MeshConfigNamespace {
		p.add(field(root, "rootNamespace"), "navarch's root namespace is %s, got %q", MeshConfigNamespace, m.RootNamespace)
	}
	if m.AccessLogEncoding == meshconfig.MeshConfig_JSON && m.AccessLogFormat != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(m.AccessLogFormat), &obj); err != nil || obj == nil {
			p.add(field(root, "accessLogFormat"), "must be a JSON object of log fields when accessLogEncoding is JSON, got %q", m.AccessLogFormat)
		}
	}
	if m.GetMeshMTLS().GetEcdhCurves() != nil {
		p.add(field(root, "meshMTLS.ecdhCurves"), "mesh TLS does not support ECDH curves configuration")
	}
	// Istio does not check the default retry policy; navarch checks it as a
	// VirtualService's, so that a retryOn Envoy would refuse never reaches it.
	validateRetries(p, field(root, "defaultHttpRetryPolicy"), m.DefaultHttpRetryPolicy)
	// Export defaults, as a resource's exportTo ("~", to no one, for services only).
	validateExportTo(p, field(root, "defaultServiceExportTo"), "", m.DefaultServiceExportTo, true)
	validateExportTo(p, field(root, "defaultVirtualServiceExportTo"), "", m.DefaultVirtualServiceExportTo, false)
	validateExportTo(p, field(root, "defaultDestinationRuleExportTo"), "", m.DefaultDestinationRuleExportTo, false)
	validateDiscoverySelectors(p, field(root, "discoverySelectors"), m.DiscoverySelectors)
	validateProxyDefaults(p, field(root, "defaultConfig"), m.DefaultConfig)
	validateDefaultTrafficPolicy(p, field(root, "defaultTrafficPolicy"), m.DefaultTrafficPolicy)
	validateExtensionProviders(p, field(root, "extensionProviders"), m.ExtensionProviders)
}

// validateProxyDefaults checks the proxies' defaults (defaultConfig) the user set as
// Istio's ValidateMeshConfigProxyConfig checks them: addresses as host:port, ports,
// the drain duration in whole seconds, tracers' addresses. (navarch reads only
// tracing.sampling of it; istio-agent and Envoy's bootstrap read the rest.)
func validateProxyDefaults(p *problems, path string, pc *meshconfig.ProxyConfig) {
	if pc == nil {
		return
	}
	address := func(name, addr string) {
		if addr != "" {
			if reason := proxyAddressError(addr); reason != "" {
				p.add(field(path, name), "%q: %s", addr, reason)
			}
		}
	}
	address("discoveryAddress", pc.DiscoveryAddress)
	address("statsdUdpAddress", pc.StatsdUdpAddress)
	address("envoyMetricsService.address", pc.GetEnvoyMetricsService().GetAddress())
	address("envoyAccessLogService.address", pc.GetEnvoyAccessLogService().GetAddress())
	for _, t := range []struct {
		name    string
		given   bool
		address string
	}{{"tracing.zipkin.address", pc.GetTracing().GetZipkin() != nil, pc.GetTracing().GetZipkin().GetAddress()},
		{"tracing.datadog.address", pc.GetTracing().GetDatadog() != nil, pc.GetTracing().GetDatadog().GetAddress()}} {
		if t.given && t.address == "" {
			p.add(field(path, t.name), "required")
		}
		address(t.name, t.address)
	}
	for _, f := range []named[int32]{{"proxyAdminPort", pc.ProxyAdminPort}, {"statusPort", pc.StatusPort}} {
		if f.value < 0 || f.value > 65535 {
			p.add(field(path, f.name), "must be 1-65535, got %d", f.value)
		}
	}
	if d := pc.DrainDuration; d != nil {
		validateDuration(p, field(path, "drainDuration"), d)
		if d.AsDuration()%time.Second != 0 {
			p.add(field(path, "drainDuration"), "must be a whole number of seconds, got %s", d.AsDuration())
		}
	}
	if s := pc.GetTracing().GetSampling(); s < 0 {
		p.add(field(path, "tracing.sampling"), "must not be negative, got %g", s)
	}
}

// proxyAddressError checks a host:port address as Istio's ValidateProxyAddress does:
// a port 1-65535 and a host name (DNS-1123 labels) or IP address; "" when valid.
func proxyAddressError(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "the port must be 1-65535"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return "the host's top-level label must not be all digits"
	}
	for _, l := range labels {
		if !isDNSLabel(l) {
			return "the host must be a DNS name or an IP address"
		}
	}
	return ""
}

// validateDiscoverySelectors checks Kubernetes label selectors of namespaces: label
// keys and values, and operators In and NotIn with values, Exists and DoesNotExist
// without.
func validateDiscoverySelectors(p *problems, path string, sels []*meshconfig.LabelSelector) {
	for i, s := range sels {
		spath := index(path, i)
		validateLabels(p, field(spath, "matchLabels"), s.GetMatchLabels())
		for j, r := range s.GetMatchExpressions() {
			rpath := index(field(spath, "matchExpressions"), j)
			if reason := labelKeyError(r.GetKey()); reason != "" {
				p.add(field(rpath, "key"), "%q: %s", r.GetKey(), reason)
			}
			switch r.GetOperator() {
			case "In", "NotIn":
				if len(r.GetValues()) == 0 {
					p.add(field(rpath, "values"), "required for operator %s", r.GetOperator())
				}
			case "Exists", "DoesNotExist":
				if len(r.GetValues()) > 0 {
					p.add(field(rpath, "values"), "must be empty for operator %s", r.GetOperator())
				}
			default:
				p.add(field(rpath, "operator"), "%q is not an operator: In, NotIn, Exists or DoesNotExist", r.GetOperator())
			}
			for k, v := range r.GetValues() {
				if reason := labelNameError(v, true); reason != "" {
					p.add(index(field(rpath, "values"), k), "%q: %s", v, reason)
				}
			}
		}
	}
}

// validateTrustDomain checks a SPIFFE trust domain as Istio does: DNS-1123 labels
// (Istio's, which take upper case), the last of which may be empty ("example.com.").
func validateTrustDomain(p *problems, path, td string) {
	parts := strings.Split(td, ".")
	for i, label := range parts {
		if i == len(parts)-1 && label == "" && i > 0 {
			return
		}
		if !dnsLabel(label, true) {
			p.add(path, "trust domain %q is invalid: it must be DNS-1123 labels separated by dots", td)
			return
		}
	}
}

// validateDefaultTrafficPolicy checks the mesh-wide connection pool and outlier
// detection as a DestinationRule's (Istio's check of the mesh's mirrors those).
func validateDefaultTrafficPolicy(p *problems, path string, dtp *meshconfig.MeshConfig_DefaultTrafficPolicy) {
	validateConnectionPool(p, field(path, "connectionPool"), dtp.GetConnectionPool())
	validateOutlierDetection(p, field(path, "outlierDetection"), dtp.GetOutlierDetection())
}

// validateExtensionProviders checks the providers Telemetry and CUSTOM
// AuthorizationPolicies name: unique names, and for each the service and port it
// sends to.
func validateExtensionProviders(p *problems, path string, providers []*meshconfig.MeshConfig_ExtensionProvider) {
	seen := map[string]bool{}
	for i, ep := range providers {
		ppath := index(path, i)
		switch {
		case ep == nil:
			p.add(ppath, "must not be null")
			continue
		case ep.Name == "":
			p.add(field(ppath, "name"), "required")
		case seen[ep.Name]:
			p.add(field(ppath, "name"), "duplicate extension provider name %q", ep.Name)
		}
		seen[ep.Name] = true
		service := func(name, svc string, port uint32) {
			validateProviderService(p, field(field(ppath, name), "service"), svc)
			validatePort(p, field(field(ppath, name), "port"), port)
		}
		switch pr := ep.Provider.(type) {
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
			a := pr.EnvoyExtAuthzHttp
			apath := field(ppath, "envoyExtAuthzHttp")
			validateAuthzProviderName(p, field(ppath, "name"), ep.Name)
			service("envoyExtAuthzHttp", a.GetService(), a.GetPort())
			validateStatusOnError(p, field(apath, "statusOnError"), a.GetStatusOnError())
			if pp := a.GetPathPrefix(); pp != "" {
				if _, err := url.Parse(pp); err != nil || !strings.HasPrefix(pp, "/") {
					p.add(field(apath, "pathPrefix"), "must be a URL path beginning with /, got %q", pp)
				}
			}
			validateDuration(p, field(apath, "timeout"), a.GetTimeout())
			//lint:ignore SA1019 includeHeadersInCheck is deprecated but still served
			deprecated := a.GetIncludeHeadersInCheck()
			for _, f := range []named[[]string]{{"includeRequestHeadersInCheck", a.GetIncludeRequestHeadersInCheck()},
				{"includeHeadersInCheck", deprecated},
				{"headersToUpstreamOnAllow", a.GetHeadersToUpstreamOnAllow()}, {"headersToDownstreamOnDeny", a.GetHeadersToDownstreamOnDeny()},
				{"headersToDownstreamOnAllow", a.GetHeadersToDownstreamOnAllow()}} {
				for j, h := range f.value {
					if h == "*" {
						p.add(index(field(apath, f.name), j), `a single wildcard ("*") is not supported: use a prefix ("x-*") or a suffix ("*-id")`)
					}
				}
			}
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
			a := pr.EnvoyExtAuthzGrpc
			validateAuthzProviderName(p, field(ppath, "name"), ep.Name)
			service("envoyExtAuthzGrpc", a.GetService(), a.GetPort())
			validateStatusOnError(p, field(field(ppath, "envoyExtAuthzGrpc"), "statusOnError"), a.GetStatusOnError())
			validateDuration(p, field(field(ppath, "envoyExtAuthzGrpc"), "timeout"), a.GetTimeout())
		case *meshconfig.MeshConfig_ExtensionProvider_Zipkin:
			service("zipkin", pr.Zipkin.GetService(), pr.Zipkin.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Lightstep:
			//lint:ignore SA1019 deprecated, still served
			ls := pr.Lightstep
			service("lightstep", ls.GetService(), ls.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Datadog:
			service("datadog", pr.Datadog.GetService(), pr.Datadog.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Opencensus:
			//lint:ignore SA1019 deprecated, still served
			oc := pr.Opencensus
			service("opencensus", oc.GetService(), oc.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Skywalking:
			service("skywalking", pr.Skywalking.GetService(), pr.Skywalking.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Opentelemetry:
			service("opentelemetry", pr.Opentelemetry.GetService(), pr.Opentelemetry.GetPort())
			if pr.Opentelemetry.GetGrpc() != nil && pr.Opentelemetry.GetHttp() != nil {
				p.add(field(ppath, "opentelemetry"), "must not set both grpc and http")
			}
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyHttpAls:
			service("envoyHttpAls", pr.EnvoyHttpAls.GetService(), pr.EnvoyHttpAls.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyTcpAls:
			service("envoyTcpAls", pr.EnvoyTcpAls.GetService(), pr.EnvoyTcpAls.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyOtelAls:
			service("envoyOtelAls", pr.EnvoyOtelAls.GetService(), pr.EnvoyOtelAls.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Prometheus, *meshconfig.MeshConfig_ExtensionProvider_Stackdriver,
			*meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog, *meshconfig.MeshConfig_ExtensionProvider_Sds:
		case nil:
			p.add(ppath, "must name one provider (envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog, zipkin, opentelemetry, ...)")
		}
	}
}

// validateProviderService checks the service an extension provider sends to: a
// fully-qualified host name ("opa.default.svc.cluster.local"), an IP address, or
// namespace/host ("foo/opa.example.com").
func validateProviderService(p *problems, path, svc string) {
	if svc == "" {
		p.add(path, "required")
		return
	}
	if ns, host, ok := strings.Cut(svc, "/"); ok {
		if ns != "*" && ns != "." && !isDNSLabel(ns) {
			p.add(path, "invalid namespace %q in %q", ns, svc)
		}
		if reason := hostError(host); reason != "" {
			p.add(path, "invalid host %q: %s", host, reason)
		}
		return
	}
	if _, err := netip.ParseAddr(svc); err == nil {
		return
	}
	if len(svc) > maxHostLength {
		p.add(path, "%q is longer than %d characters", svc, maxHostLength)
		return
	}
	for _, label := range strings.Split(strings.TrimSuffix(svc, "."), ".") {
		if !isDNSLabel(label) {
			p.add(path, "%q must be a fully-qualified host name (DNS-1123 labels), an IP address or namespace/host", svc)
			return
		}
	}
}

// validateAuthzProviderName checks the name of an external authorization provider,
// which Istio puts in RBAC policy names and dynamic metadata keys: a lower-case
// DNS-1123 label.
func validateAuthzProviderName(p *problems, path, name string) {
	if name != "" && !isDNSLabel(name) {
		p.add(path, "%q must be lower-case alphanumerics and '-' (at most %d), starting and ending with an alphanumeric, to name an authorization provider",
			name, maxLabelLength)
	}
}

// validateStatusOnError checks the HTTP status an authorization provider's failure
// answers with: a status Envoy knows.
func validateStatusOnError(p *problems, path, status string) {
	if status == "" {
		return
	}
	code, err := strconv.ParseInt(status, 10, 32)
	if err == nil {
		if _, ok := envoytypev3.StatusCode_name[int32(code)]; ok {
			return
		}
	}
	p.add(path, "%q is not an HTTP status Envoy can answer with (200, 403, 500, 503, ...)", status)
}
