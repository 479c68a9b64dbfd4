package api

import (
	"strings"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// istioConfigMap is Istio's mesh ConfigMap holding mesh (indented for data.mesh).
func istioConfigMap(ns, mesh string) string {
	doc := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n"
	if ns != "" {
		doc += "  namespace: " + ns + "\n"
	}
	return doc + "data:\n  meshNetworks: 'networks: {}'\n  mesh: |-\n" + indent(mesh, "    ")
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

const meshYAML = `accessLogFile: /dev/stdout
connectTimeout: 5s
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
extensionProviders:
- name: opa
  envoyExtAuthzGrpc:
    service: opa.authz.svc.cluster.local
    port: 9191
    timeout: 2s
- name: oauth2-proxy
  envoyExtAuthzHttp:
    service: authz/oauth2-proxy.example.com
    port: 4180
    includeRequestHeadersInCheck: [authorization, cookie, "x-auth-*"]
    headersToUpstreamOnAllow: [authorization]
- name: json-log
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        code: "%RESPONSE_CODE%"
defaultProviders:
  accessLogging: [json-log]
`

func TestDecodeTakesIstiosMeshConfigMap(t *testing.T) {
	for _, tc := range []struct {
		name, doc, ns string
	}{
		{"in istio-system", istioConfigMap("istio-system", meshYAML), ""},
		{"put in istio-system by -n", istioConfigMap("", meshYAML), "istio-system"},
		{"as navarch's own kind", "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: istio, namespace: istio-system}\nspec:\n" +
			indent(meshYAML, "  "), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, skipped, err := Decode("mesh.yaml", []byte(tc.doc), tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || len(skipped) != 0 {
				t.Fatalf("got %d resources and %v skipped, want the mesh config", len(rs), skipped)
			}
			r := rs[0]
			if r.Kind != MeshConfig || r.Meta.Namespace != "istio-system" || r.Meta.Name != "istio" {
				t.Fatalf("got %s", r)
			}
			m := r.Spec.(*meshconfig.MeshConfig)
			if m.AccessLogFile != "/dev/stdout" || m.ConnectTimeout.AsDuration() != 5*time.Second ||
				m.OutboundTrafficPolicy.GetMode() != meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY ||
				len(m.ExtensionProviders) != 3 || m.ExtensionProviders[0].GetEnvoyExtAuthzGrpc().GetPort() != 9191 ||
				m.ExtensionProviders[2].GetEnvoyFileAccessLog().GetLogFormat().GetLabels().GetFields()["code"].GetStringValue() != "%RESPONSE_CODE%" ||
				len(m.DefaultProviders.GetAccessLogging()) != 1 {
				t.Errorf("decoded %v", m)
			}
			// What get prints decodes back to the same.
			data, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			back := mustDecode(t, string(data))
			if !SpecEqual(r, back) {
				t.Errorf("round trip through %s changed the mesh config", data)
			}
		})
	}
}

// TestMeshConfigTracingDefault: enableTracing, a plain bool whose Istio default is
// true, is true when the mesh config leaves it out and false when it says so, in
// either form, and stays so through what get prints and the store keeps.
func TestMeshConfigTracingDefault(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      bool
	}{
		{"left out", istioConfigMap("istio-system", "connectTimeout: 3s"), true},
		{"left out, navarch's kind", "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: istio, namespace: istio-system}\n", true},
		{"false", istioConfigMap("istio-system", "enableTracing: false"), false},
		{"false, navarch's kind", "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: istio, namespace: istio-system}\nspec: {enableTracing: false}\n", false},
		{"true", istioConfigMap("istio-system", "enableTracing: true"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustDecode(t, tc.doc)
			if got := r.Spec.(*meshconfig.MeshConfig).EnableTracing; got != tc.want {
				t.Errorf("enableTracing %v, want %v", got, tc.want)
			}
			data, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			stored, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			for what, back := range map[string]*Resource{"applied again": mustDecode(t, string(data)), "read from the store": stored} {
				if got := back.Spec.(*meshconfig.MeshConfig).EnableTracing; got != tc.want {
					t.Errorf("%s from %s: enableTracing %v, want %v", what, data, got, tc.want)
				}
			}
		})
	}
}

// TestMeshNetworksAreSaidToBeSkipped: the mesh is taken, and networks in the
// ConfigMap's meshNetworks are reported as not read (Istio's empty default is not).
func TestMeshNetworksAreSaidToBeSkipped(t *testing.T) {
	for _, tc := range []struct {
		networks string
		skipped  bool
	}{
		{"networks: {}", false},
		{"networks: {net-2: {endpoints: [{fromRegistry: cluster-2}], gateways: [{address: 192.0.2.1, port: 15443}]}}", true},
	} {
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: 'connectTimeout: 3s'\n  meshNetworks: '" + tc.networks + "'\n"
		rs, skipped, err := Decode("cm.yaml", []byte(doc), "")
		if err != nil || len(rs) != 1 || rs[0].Kind != MeshConfig {
			t.Fatalf("%s: %v, %v", tc.networks, rs, err)
		}
		if got := len(skipped) == 1 && skipped[0].Reason == ReasonMeshNetworks; got != tc.skipped || len(skipped) > 1 {
			t.Errorf("meshNetworks %s: skipped %v, want the networks reported: %v", tc.networks, skipped, tc.skipped)
		}
	}
}

func TestDecodeSkipsOtherConfigMaps(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: istio-system}\ndata: {mesh: 'not: [mesh'}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: shop}\ndata: {mesh: 'accessLogFile: 7'}\n",
		istioConfigMap("", "accessLogFile: /dev/stdout"), // in default: an application's ConfigMap named istio
	} {
		rs, skipped, err := Decode("cm.yaml", []byte(doc), "")
		if err != nil || len(rs) != 0 || len(skipped) != 1 || skipped[0].Reason != ReasonNotMesh {
			t.Errorf("%s: got %v, %v, %v; want it skipped", doc, rs, skipped, err)
		}
	}
}

func TestMeshConfigRejections(t *testing.T) {
	mesh := func(yaml string) string { return istioConfigMap("istio-system", yaml) }
	runRejections(t, []rejection{
		{name: "unknown field", doc: mesh("accessLogFiles: /dev/stdout"), field: "data.mesh.accessLogFiles", reason: `unknown field "accessLogFiles"`},
		{name: "wrong type", doc: mesh("enableAutoMtls: maybe"), field: "data.mesh.enableAutoMtls", reason: "must be true or false"},
		{name: "not YAML", doc: mesh("connectTimeout: [1s"), field: "data.mesh", reason: "invalid YAML"},
		{name: "mesh is not a string", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata: {mesh: {a: b}}\n",
			field: "data.mesh", reason: "must be a string"},
		{name: "connect timeout too short", doc: mesh("connectTimeout: 0s"), field: "data.mesh.connectTimeout", reason: "must be between 1ms and 1h0m0s"},
		{name: "connect timeout too long", doc: mesh("connectTimeout: 2h"), field: "data.mesh.connectTimeout", reason: "must be between"},
		{name: "a DNS refresh rate Envoy refuses", doc: mesh("dnsRefreshRate: 0s"), field: "data.mesh.dnsRefreshRate", reason: "must be at least 1ms"},
		{name: "empty trust domain", doc: mesh("trustDomain: \"\""), field: "data.mesh.trustDomain", reason: "must not be empty"},
		{name: "bad trust domain alias", doc: mesh("trustDomainAliases: [ok.example, Not_OK]"), field: "data.mesh.trustDomainAliases[1]", reason: `trust domain "Not_OK" is invalid`},
		{name: "root namespace", doc: mesh("rootNamespace: mesh-root"), field: "data.mesh.rootNamespace", reason: "navarch's root namespace is istio-system"},
		{name: "JSON log format", doc: mesh("accessLogEncoding: JSON\naccessLogFormat: '[%START_TIME%]'"), field: "data.mesh.accessLogFormat", reason: "must be a JSON object"},
		{name: "locality distribute and failover", doc: mesh("localityLbSetting: {distribute: [{from: a/b, to: {a/b: 100}}], failover: [{from: a, to: b}]}"),
			field: "data.mesh.localityLbSetting", reason: "must not set both distribute and failover"},
		{name: "zone-aware failover by region label", doc: mesh("zoneAwareLbSetting: {failoverPriority: [topology.kubernetes.io/region]}"),
			field: "data.mesh.zoneAwareLbSetting.failoverPriority[0]", reason: "must not use topology label"},
		{name: "negative retries", doc: mesh("defaultHttpRetryPolicy: {attempts: -1}"), field: "data.mesh.defaultHttpRetryPolicy.attempts", reason: "must not be negative"},
		{name: "export default", doc: mesh("defaultVirtualServiceExportTo: [\"~\"]"), field: "data.mesh.defaultVirtualServiceExportTo[0]", reason: "only allowed on a ServiceEntry"},
		{name: "export default namespace", doc: mesh("defaultServiceExportTo: [Shop_1]"), field: "data.mesh.defaultServiceExportTo[0]", reason: "must be"},
		{name: "discovery selector operator", doc: mesh("discoverySelectors: [{matchExpressions: [{key: env, operator: Equals, values: [prod]}]}]"),
			field: "data.mesh.discoverySelectors[0].matchExpressions[0].operator", reason: "not an operator"},
		{name: "discovery selector values", doc: mesh("discoverySelectors: [{matchExpressions: [{key: env, operator: In}]}]"),
			field: "data.mesh.discoverySelectors[0].matchExpressions[0].values", reason: "required for operator In"},
		{name: "discovery address", doc: mesh("defaultConfig: {discoveryAddress: istiod.istio-system.svc}"),
			field: "data.mesh.defaultConfig.discoveryAddress", reason: "must be host:port"},
		{name: "drain duration", doc: mesh("defaultConfig: {drainDuration: 1500ms}"),
			field: "data.mesh.defaultConfig.drainDuration", reason: "whole number of seconds"},
		{name: "zipkin address", doc: mesh("defaultConfig: {tracing: {zipkin: {address: zipkin.istio-system:0}}}"),
			field: "data.mesh.defaultConfig.tracing.zipkin.address", reason: "port must be 1-65535"},
		{name: "retry condition", doc: mesh("defaultHttpRetryPolicy: {attempts: 2, retryOn: \"5xx,sometimes\"}"), field: "data.mesh.defaultHttpRetryPolicy.retryOn", reason: `"sometimes" is not a retry condition`},
		{name: "outlier percent", doc: mesh("defaultTrafficPolicy: {outlierDetection: {maxEjectionPercent: 120}}"),
			field: "data.mesh.defaultTrafficPolicy.outlierDetection.maxEjectionPercent", reason: "must be 0-100"},
		{name: "provider without a name", doc: mesh("extensionProviders: [{envoyFileAccessLog: {path: /dev/stdout}}]"),
			field: "data.mesh.extensionProviders[0].name", reason: "required"},
		{name: "duplicate provider", doc: mesh("extensionProviders: [{name: a, prometheus: {}}, {name: a, envoyFileAccessLog: {}}]"),
			field: "data.mesh.extensionProviders[1].name", reason: `duplicate extension provider name "a"`},
		{name: "provider of no kind", doc: mesh("extensionProviders: [{name: a}]"), field: "data.mesh.extensionProviders[0]", reason: "must name one provider"},
		{name: "authz provider port", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local, port: 0}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzGrpc.port", reason: "must be 1-65535"},
		{name: "authz provider service", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzGrpc: {service: 'opa service', port: 9191}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzGrpc.service", reason: "fully-qualified host name"},
		{name: "authz provider without a service", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzHttp: {port: 9191}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzHttp.service", reason: "required"},
		{name: "authz provider name", doc: mesh("extensionProviders: [{name: My_OPA, envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local, port: 9191}}]"),
			field: "data.mesh.extensionProviders[0].name", reason: "lower-case alphanumerics"},
		{name: "status on error", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzHttp: {service: opa.authz.svc.cluster.local, port: 80, statusOnError: '999'}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzHttp.statusOnError", reason: "not an HTTP status"},
		{name: "path prefix", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzHttp: {service: opa.authz.svc.cluster.local, port: 80, pathPrefix: check}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzHttp.pathPrefix", reason: "beginning with /"},
		{name: "wildcard header", doc: mesh("extensionProviders: [{name: opa, envoyExtAuthzHttp: {service: opa.authz.svc.cluster.local, port: 80, headersToUpstreamOnAllow: ['*']}}]"),
			field: "data.mesh.extensionProviders[0].envoyExtAuthzHttp.headersToUpstreamOnAllow[0]", reason: "single wildcard"},
		{name: "otel both", doc: mesh("extensionProviders: [{name: otel, opentelemetry: {service: otel.o11y.svc.cluster.local, port: 4317, grpc: {}, http: {path: /v1/traces}}}]"),
			field: "data.mesh.extensionProviders[0].opentelemetry", reason: "both grpc and http"},
		{name: "another name", doc: "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: istio-system}\nspec: {}\n",
			field: "metadata", reason: "the one resource istio-system/istio"},
	})
}

// TestDecodeTakesTheMeshOfIstiosInstall: the mesh config Istio's Helm chart renders
// (default profile, with an access log) is taken as it is.
func TestDecodeTakesTheMeshOfIstiosInstall(t *testing.T) {
	r := mustDecode(t, istioConfigMap("istio-system", `accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  proxyMetadata: {}
  tracing:
    zipkin:
      address: zipkin.istio-system:9411
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local`))
	m := r.Spec.(*meshconfig.MeshConfig)
	if m.GetDefaultConfig().GetDiscoveryAddress() != "istiod.istio-system.svc:15012" || m.TrustDomain != "cluster.local" {
		t.Errorf("decoded %v", m)
	}
}
