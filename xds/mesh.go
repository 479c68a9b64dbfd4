package xds

import (
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// The mesh config (api.MeshConfig, Istio's ConfigMap istio) is stored as the user
// wrote it; what a field left out means is Istio's default (istio/istio
// pkg/config/mesh DefaultMeshConfig), applied here when it is read. What navarch
// takes from it:
//
//   - connectTimeout: every cluster's connect timeout (10s).
//   - enableAutoMtls: false turns off mTLS chosen by the servers' PeerAuthentication
//     for clusters no DestinationRule gives a tls mode (on).
//   - outboundTrafficPolicy.mode: where a sidecar sends traffic for destinations it
//     does not know, unless its Sidecar says (ALLOW_ANY).
//   - inboundTrafficPolicy.mode LOCALHOST: a sidecar's inbound clusters go to
//     127.0.0.1 (PASSTHROUGH: to the connection's original destination).
//   - meshMTLS (minimum protocol version, cipher suites): Envoy servers under mesh
//     mTLS; tlsDefaults: the curves and ciphers of TLS Envoy originates, and the
//     protocol, curves and ciphers gateways serve unless the Gateway says
//     (security.go).
//   - localityLbSetting: locality load balancing of clusters whose DestinationRule
//     has none (enabled, no distribute or failover).
//   - defaultTrafficPolicy: the connection pool and outlier detection of clusters
//     whose DestinationRule sets none (policy.go); the pool also of inbound clusters
//     and of the passthrough cluster.
//   - defaultHttpRetryPolicy: the retries of routes whose VirtualService has none,
//     and of services' default routes (2 retries).
//   - defaultServiceExportTo, defaultVirtualServiceExportTo,
//     defaultDestinationRuleExportTo: the exportTo of what sets none (applied by
//     registry.Snapshot).
//   - trustDomainAliases: AuthorizationPolicy principals of the trust domain or an
//     alias match the same workloads under every one of them.
//   - extensionProviders and defaultProviders: access logs and tracing of Telemetry
//     (telemetry.go, tracing.go) and the external authorization of CUSTOM
//     AuthorizationPolicies (extauthz.go). The built-in providers are Istio's:
//     "envoy" (a text log on stdout), "prometheus" and "stackdriver"; a provider of
//     the same name replaces one.
//   - discoverySelectors: the namespaces the Kubernetes adapter follows when it is
//     given none (adapters/kubernetes).
//   - accessLogFile, accessLogEncoding, accessLogFormat: the access log of a side
//     of a proxy that no Telemetry and no default provider gives one;
//     disableEnvoyListenerLog: no access logs on listeners (telemetry.go).
//   - enableTracing: Istio's legacy tracing, where no Telemetry traces and no
//     default provider is named (tracing.go; on).
//
// trustDomain is the CA's (navarch ca show): a mesh config naming another is
// refused by navarch apply (node/http.go); the CA's is used. The other fields
// (proxy defaults, ...) are not translated.

// noMesh is the mesh config of a snapshot that has none: every field defaults
// (enableTracing, a plain bool, is written as Istio's default; api.Decode writes
// it into a mesh config that leaves it out).
var noMesh = &meshconfig.MeshConfig{EnableTracing: true}

// meshOf returns the snapshot's mesh config, never nil.
func meshOf(snap *registry.Snapshot) *meshconfig.MeshConfig {
	if m := snap.MeshConfig(); m != nil {
		return m
	}
	return noMesh
}

// defaultConnectTimeout is Istio's default connect timeout (meshConfig.connectTimeout).
const defaultConnectTimeout = 10 * time.Second

// connectTimeout is the connect timeout of every cluster.
func connectTimeout(ctx *Context) time.Duration {
	if d := ctx.Mesh.GetConnectTimeout(); d != nil {
		return d.AsDuration()
	}
	return defaultConnectTimeout
}

// autoMTLS reports whether clients choose mTLS by their servers' PeerAuthentication
// where no DestinationRule says.
func autoMTLS(ctx *Context) bool {
	v := ctx.Mesh.GetEnableAutoMtls()
	return v == nil || v.Value
}

// meshAllowsAny reports whether the mesh lets sidecars send traffic for unknown
// destinations out as it came. Istio's default is ALLOW_ANY; a policy given without
// a mode is REGISTRY_ONLY, the enum's zero, as Istio reads it.
func meshAllowsAny(ctx *Context) bool {
	p := ctx.Mesh.GetOutboundTrafficPolicy()
	return p == nil || p.Mode == meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY
}

// meshLocality is the locality load balancing of clusters whose DestinationRule has
// none, nil when the mesh turns it off.
func meshLocality(m *meshconfig.MeshConfig) *networking.LocalityLoadBalancerSetting {
	lb := m.GetLocalityLbSetting()
	switch {
	case lb == nil:
		return meshLocalityDefault
	case lb.Enabled != nil && !lb.Enabled.Value:
		return nil
	}
	return lb
}

// Istio's built-in extension providers, which a provider of the same name in the
// mesh config replaces.
var builtinProviders = []*meshconfig.MeshConfig_ExtensionProvider{
	{Name: "prometheus", Provider: &meshconfig.MeshConfig_ExtensionProvider_Prometheus{
		Prometheus: &meshconfig.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}}},
	{Name: "stackdriver", Provider: &meshconfig.MeshConfig_ExtensionProvider_Stackdriver{
		Stackdriver: &meshconfig.MeshConfig_ExtensionProvider_StackdriverProvider{}}},
	{Name: envoyLogProvider, Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
		EnvoyFileAccessLog: &meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"}}},
}

// extensionProvider finds a provider by name: the mesh config's, else a built-in one.
func extensionProvider(m *meshconfig.MeshConfig, name string) (*meshconfig.MeshConfig_ExtensionProvider, bool) {
	for _, ps := range [][]*meshconfig.MeshConfig_ExtensionProvider{m.GetExtensionProviders(), builtinProviders} {
		for _, p := range ps {
			if p.GetName() == name {
				return p, true
			}
		}
	}
	return nil, false
}
