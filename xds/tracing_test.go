package xds

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	samplersv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/samplers/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/registry"
)

// tracingInput is the mesh config's tracing providers and their collectors.
const tracingInput = `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 256}
    - name: otel
      opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317, grpc: {timeout: 3s, initialMetadata: [{name: x-tenant, value: shop}]}}
    - name: otel-http
      opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4318, http: {path: /v1/traces, headers: [{name: x-tenant, value: shop}]}}
    - name: vendor
      datadog: {service: datadog-agent.observability.svc.cluster.local, port: 8126, maxTagLength: 99}
    - name: sky
      skywalking: {service: otel-collector.observability.svc.cluster.local, port: 4317}
    - name: deprecated
      lightstep: {service: otel-collector.observability.svc.cluster.local, port: 4317, accessToken: t}
    - name: nowhere
      zipkin: {service: missing.observability.svc.cluster.local, port: 9411}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  ports: [{number: 9411, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.8.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  ports: [{number: 4317, name: grpc, protocol: GRPC}, {number: 4318, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.8.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: datadog-agent, namespace: observability}
spec:
  hosts: [datadog-agent.observability.svc.cluster.local]
  ports: [{number: 8126, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.8.3}]
`

// describeTracing is "<tracer> <collector> <sampling>%[ tags=a,b][ spawn]", or "";
// Istio's own tags (istio.*) are left out, when all there (istioSpanTags, which
// TestSameTracingAsIstiod compares with istiod), else listed.
func describeTracing(t *testing.T, tr *hcmv3.HttpConnectionManager_Tracing) string {
	t.Helper()
	if tr == nil {
		return ""
	}
	out := tr.GetProvider().GetName()
	switch out {
	case zipkinTracer:
		var z tracev3.ZipkinConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&z); err != nil {
			t.Fatal(err)
		}
		if z.GetCollectorService() == nil { // an older istio-proxy's
			out += " " + z.GetCollectorCluster() + " " + z.GetCollectorHostname() + z.GetCollectorEndpoint()
		} else {
			out += " " + z.GetCollectorService().GetHttpUri().GetCluster() + " " + z.GetCollectorService().GetHttpUri().GetUri()
		}
		if z.TraceContextOption != tracev3.ZipkinConfig_USE_B3 {
			out += " " + z.TraceContextOption.String()
		}
	case datadogTracer:
		var d tracev3.DatadogConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&d); err != nil {
			t.Fatal(err)
		}
		out += " " + d.GetCollectorCluster() + " " + d.GetCollectorHostname() + " service=" + d.GetServiceName()
	case skyWalkingTracer:
		var sw tracev3.SkyWalkingConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&sw); err != nil {
			t.Fatal(err)
		}
		out += " grpc " + sw.GetGrpcService().GetEnvoyGrpc().GetClusterName() + " " + sw.GetGrpcService().GetEnvoyGrpc().GetAuthority()
	case openTelemetryTracer:
		var o tracev3.OpenTelemetryConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&o); err != nil {
			t.Fatal(err)
		}
		if o.ServiceName != "" {
			out += " service=" + o.ServiceName
		}
		if g := o.GetGrpcService(); g != nil {
			out += " grpc " + g.GetEnvoyGrpc().GetClusterName()
		} else {
			out += " http " + o.GetHttpService().GetHttpUri().GetCluster() + " " + o.GetHttpService().GetHttpUri().GetUri()
		}
	}
	out += fmt.Sprintf(" %g%%", tr.GetRandomSampling().GetValue())
	var tags, istio []string
	for _, tag := range tr.CustomTags {
		if strings.HasPrefix(tag.Tag, "istio.") {
			istio = append(istio, tag.Tag)
			continue
		}
		tags = append(tags, tag.Tag)
	}
	if len(istio) != len(istioSpanTags(&Proxy{})) {
		tags = append(tags, istio...)
	}
	if len(tags) > 0 {
		out += " tags=" + strings.Join(tags, ",")
	}
	if tr.GetSpawnUpstreamSpan().GetValue() {
		out += " spawn"
	}
	return out
}

func TestTracing(t *testing.T) {
	const (
		zipkin  = "envoy.tracers.zipkin outbound|9411||zipkin.istio-system.svc.cluster.local http://zipkin.istio-system.svc.cluster.local/api/v2/spans"
		otel    = "envoy.tracers.opentelemetry service=web.shop grpc outbound|4317||otel-collector.observability.svc.cluster.local"
		otelWeb = "envoy.tracers.opentelemetry service=web.shop http outbound|4318||otel-collector.observability.svc.cluster.local otel-collector.observability.svc.cluster.local/v1/traces"
	)
	telemetry := telemetryDoc
	withDefault := strings.Replace(tracingInput, "    extensionProviders:", "    defaultProviders: {tracing: [zipkin]}\n    extensionProviders:", 1)
	tests := []struct {
		name           string
		docs           []string
		client, server string
		reported       string
	}{
		{name: "Istio's legacy tracing, by default", docs: []string{tracingInput}, client: " 1%", server: " 1%"},
		{name: "legacy tracing off", docs: []string{strings.Replace(tracingInput, "    extensionProviders:", "    enableTracing: false\n    extensionProviders:", 1)}},
		{name: "legacy tracing as the proxies' defaults have it", docs: []string{strings.Replace(tracingInput, "    extensionProviders:",
			"    defaultConfig: {tracing: {sampling: 5, enableIstioTags: false, customTags: {zone: {literal: {value: z1}}}}}\n    extensionProviders:", 1)},
			client: " 5% tags=zone", server: " 5% tags=zone"},
		{name: "no mesh config", client: " 1%", server: " 1%"},
		{name: "a Telemetry that names no provider", docs: []string{tracingInput, telemetry("shop", `{tracing: [{randomSamplingPercentage: 100}]}`)}},
		{name: "the mesh config's default provider", docs: []string{withDefault}, client: zipkin + " 1%", server: zipkin + " 1%"},
		{name: "the proxies' default sampling", docs: []string{strings.Replace(withDefault, "    defaultProviders:", "    defaultConfig: {tracing: {sampling: 25}}\n    defaultProviders:", 1)},
			client: zipkin + " 25%", server: zipkin + " 25%"},
		{name: "the mesh's Telemetry: a provider, a sampling rate and tags", docs: []string{tracingInput,
			telemetry("istio-system", `{tracing: [{providers: [{name: otel}], randomSamplingPercentage: 10, customTags: {env: {literal: {value: prod}}, user: {header: {name: x-user}}}}]}`)},
			client: otel + " 10% tags=env,user", server: otel + " 10% tags=env,user"},
		{name: "the namespace's turns off the server side", docs: []string{withDefault,
			telemetry("shop", `{tracing: [{match: {mode: SERVER}, disableSpanReporting: true}, {match: {mode: CLIENT}, providers: [{name: otel-http}]}]}`)},
			client: otelWeb + " 1%"},
		{name: "an unknown provider", docs: []string{tracingInput, telemetry("shop", `{tracing: [{providers: [{name: jaeger}]}]}`)},
			reported: `Telemetry shop/traces spec.tracing[0]: tracing provider "jaeger": the mesh config has no extension provider of that name`},
		{name: "a collector the proxy does not see", docs: []string{tracingInput, telemetry("shop", `{tracing: [{providers: [{name: nowhere}]}]}`)},
			reported: `tracing provider "nowhere": service "missing.observability.svc.cluster.local" is not a service this proxy sees`},
		{name: "datadog", docs: []string{tracingInput, telemetry("shop", `{tracing: [{providers: [{name: vendor}]}]}`)},
			client: "envoy.tracers.datadog outbound|8126||datadog-agent.observability.svc.cluster.local datadog-agent.observability.svc.cluster.local service=web.shop 1%",
			server: "envoy.tracers.datadog outbound|8126||datadog-agent.observability.svc.cluster.local datadog-agent.observability.svc.cluster.local service=web.shop 1%"},
		{name: "skywalking spans upstream requests on every side", docs: []string{tracingInput, telemetry("shop", `{tracing: [{providers: [{name: sky}]}]}`)},
			client: "envoy.tracers.skywalking grpc outbound|4317||otel-collector.observability.svc.cluster.local otel-collector.observability.svc.cluster.local 1% spawn",
			server: "envoy.tracers.skywalking grpc outbound|4317||otel-collector.observability.svc.cluster.local otel-collector.observability.svc.cluster.local 1% spawn"},
		{name: "a provider navarch does not configure", docs: []string{tracingInput, telemetry("shop", `{tracing: [{providers: [{name: deprecated}]}]}`)},
			reported: `tracing provider "deprecated": navarch configures zipkin, opentelemetry, datadog and skywalking tracers only`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := grpcProxy("shop", map[string]string{"app": "web"})
			p.Generator, p.ServiceCluster = "", "web.shop"
			ctx := newContext(snapshotOf(t, tt.docs...), p, "cluster.local", "istio-system")
			tr := tracingFor(ctx)
			if got := describeTracing(t, tr.client); got != tt.client {
				t.Errorf("client side %q, want %q", got, tt.client)
			}
			if got := describeTracing(t, tr.server); got != tt.server {
				t.Errorf("server side %q, want %q", got, tt.server)
			}
			var reported []string
			for _, err := range ctx.errs {
				reported = append(reported, err.Error())
			}
			if tt.reported == "" && len(reported) > 0 || tt.reported != "" && (len(reported) != 1 || !strings.Contains(reported[0], tt.reported)) {
				t.Errorf("reported %q, want %q", reported, tt.reported)
			}
		})
	}
	t.Run("proxyless gRPC: none", func(t *testing.T) {
		if tr := tracingFor(newContext(snapshotOf(t, withDefault), grpcProxy("shop", nil), "cluster.local", "istio-system")); tr.client != nil || tr.server != nil {
			t.Errorf("tracing %v", tr)
		}
	})
}

// TestTracingInWhatProxiesGet: a sidecar's outbound and inbound connection managers
// and a gateway's carry the tracing, in resources that pass Validate.
func TestTracingInWhatProxiesGet(t *testing.T) {
	docs := []string{strings.Replace(tracingInput, "    extensionProviders:", "    defaultProviders: {tracing: [zipkin]}\n    extensionProviders:", 1), webWorkload, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`}
	snap := snapshotOf(t, docs...)
	hcmOf := func(t *testing.T, l *listenerv3.Listener, port uint32) *hcmv3.HttpConnectionManager {
		t.Helper()
		for _, c := range l.FilterChains {
			if port != 0 && c.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if c.Filters[len(c.Filters)-1].GetTypedConfig().UnmarshalTo(&hcm) == nil {
				return &hcm
			}
		}
		t.Fatalf("no HTTP connection manager on %s port %d", l.Name, port)
		return nil
	}
	listener := func(t *testing.T, p *Proxy, name string) *listenerv3.Listener {
		t.Helper()
		sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var l listenerv3.Listener
		if err := sets[ListenerType].ByName[name].Body.UnmarshalTo(&l); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return &l
	}
	sidecar := grpcProxy("shop", map[string]string{"app": "web"})
	sidecar.Generator = ""
	const zipkin = "envoy.tracers.zipkin outbound|9411||zipkin.istio-system.svc.cluster.local http://zipkin.istio-system.svc.cluster.local/api/v2/spans 1%"
	if got := describeTracing(t, hcmOf(t, listener(t, sidecar, "0.0.0.0_8080"), 0).Tracing); got != zipkin {
		t.Errorf("outbound: %q", got)
	}
	if got := describeTracing(t, hcmOf(t, listener(t, sidecar, virtualInbound), 8080).Tracing); got != zipkin {
		t.Errorf("inbound: %q", got)
	}
	gw := &Proxy{ID: "router~10.0.0.2~ingress.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
	l := listener(t, gw, "0.0.0.0_80")
	if got := describeTracing(t, hcmOf(t, l, 0).Tracing); got != zipkin+" spawn" {
		t.Errorf("gateway: %q", got)
	}
	sets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "tracing.gateway.golden.yaml"), dump(t, map[string]*TypeSet{ListenerType: sets[ListenerType]}))
}

// An istio-proxy of an older release gets only the tracing settings it knows, as
// from istiod: before 1.30 no disableContextPropagation, before 1.29 no formatter
// tags and the zipkin collector by cluster, path and host, before 1.28 no trace
// context option.
func TestTracingForOlderIstioProxies(t *testing.T) {
	mesh := strings.Replace(tracingInput, "zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 256}",
		"zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}", 1)
	snap := snapshotOf(t, mesh, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: traces, namespace: shop}
spec:
  tracing:
  - providers: [{name: zipkin}]
    disableContextPropagation: true
    customTags: {route: {formatter: {value: "%ROUTE_NAME%"}}, team: {literal: {value: pay}}}
`)
	const (
		modern = "envoy.tracers.zipkin outbound|9411||zipkin.istio-system.svc.cluster.local http://zipkin.istio-system.svc.cluster.local/api/v2/spans USE_B3_WITH_W3C_PROPAGATION 1%"
		legacy = "envoy.tracers.zipkin outbound|9411||zipkin.istio-system.svc.cluster.local zipkin.istio-system.svc.cluster.local/api/v2/spans"
	)
	for _, tt := range []struct {
		version, want string
		noPropagation bool
	}{
		{"", modern + " tags=route,team", true},
		{"1.30.1", modern + " tags=route,team", true},
		{"1.29.0", modern + " tags=route,team", false},
		{"1.28.2", legacy + " USE_B3_WITH_W3C_PROPAGATION 1% tags=team", false},
		{"1.27.3-distroless", legacy + " 1% tags=team", false},
		{"release-1.24", legacy + " 1% tags=team", false},
	} {
		p := grpcProxy("shop", nil)
		p.Generator, p.IstioVersion, p.IstioProxy = "", tt.version, tt.version != ""
		tr := tracingFor(newContext(snap, p.classProxy(snap), "cluster.local", "istio-system"))
		if got := describeTracing(t, tr.client); got != tt.want {
			t.Errorf("istio-proxy %q: %q\n\twant %q", tt.version, got, tt.want)
		}
		if tr.client.GetNoContextPropagation() != tt.noPropagation {
			t.Errorf("istio-proxy %q: noContextPropagation %t, want %t", tt.version, tr.client.GetNoContextPropagation(), tt.noPropagation)
		}
	}
}

// Proxies share a class across the patch releases of istio-proxy, and across
// releases between which nothing they get differs; their service cluster sets them
// apart only where a tracer names spans by it.
func TestTracingClasses(t *testing.T) {
	class := func(snap *registry.Snapshot, version, cluster string) classKey {
		p := grpcProxy("shop", nil)
		p.Generator, p.IstioVersion, p.IstioProxy, p.ServiceCluster = "", version, version != "", cluster
		return p.classProxy(snap).classKey()
	}
	zipkinOnly := snapshotOf(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders: [{name: zipkin, zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}}]
`)
	withOtel := snapshotOf(t, tracingInput)
	for _, tt := range []struct {
		snap *registry.Snapshot
		a, b [2]string // version, service cluster
		same bool
	}{
		{zipkinOnly, [2]string{"1.27.1", "web.shop"}, [2]string{"1.27.3", "api.shop"}, true},
		{zipkinOnly, [2]string{"1.24.0", ""}, [2]string{"1.27.3", ""}, true},
		{zipkinOnly, [2]string{"1.27.3", ""}, [2]string{"1.28.0", ""}, false},
		{zipkinOnly, [2]string{"1.30.0", ""}, [2]string{"1.31.2", ""}, true},
		{zipkinOnly, [2]string{"1.29.0", ""}, [2]string{"1.30.0", ""}, false},
		{withOtel, [2]string{"1.30.0", "web.shop"}, [2]string{"1.30.0", "api.shop"}, false},
		{withOtel, [2]string{"1.30.0", "web.shop"}, [2]string{"1.31.0", "web.shop"}, true},
	} {
		if got := class(tt.snap, tt.a[0], tt.a[1]) == class(tt.snap, tt.b[0], tt.b[1]); got != tt.same {
			t.Errorf("%v and %v: same class %t, want %t", tt.a, tt.b, got, tt.same)
		}
	}
	// Proxyless clients get no tracing: their release does not set them apart.
	a, b := grpcProxy("shop", nil), grpcProxy("shop", nil)
	a.IstioVersion, b.IstioVersion = "1.24.0", "1.30.0"
	if a.classProxy(zipkinOnly).classKey() != b.classProxy(zipkinOnly).classKey() {
		t.Errorf("proxyless clients of istio-agent 1.24 and 1.30 are different classes")
	}
}

func TestParseIstioVersion(t *testing.T) {
	for v, want := range map[string]istioVersion{
		"1.24.1":            {1, 24, 1},
		"1.29":              {1, 29, 65535},
		"release-1.28":      {1, 28, 65535},
		"1.27.3-distroless": {1, 27, 3},
		"":                  {65535, 65535, 65535},
		"master":            {65535, 65535, 65535},
		"1":                 {65535, 65535, 65535},
		"1.x":               {65535, 65535, 65535},
		"0.9.1":             {65535, 65535, 65535},
		"1.30-dev":          {1, 30, 65535},
	} {
		if got := parseIstioVersion(v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// Under OpenTelemetry's semantic conventions spans name the workload's service as
// istiod picks it, each source in turn; proxies of other names are other classes.
func TestSemanticServiceName(t *testing.T) {
	for _, tt := range []struct {
		md   map[string]any
		name string
		want string
	}{
		{map[string]any{"ANNOTATIONS": map[string]any{"resource.opentelemetry.io/service.name": "checkout"},
			"LABELS": map[string]any{"app.kubernetes.io/instance": "inst"}, "WORKLOAD_NAME": "web"}, "web-1.shop", "checkout"},
		{map[string]any{"LABELS": map[string]any{"app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"}}, "web-1.shop", "inst"},
		{map[string]any{"LABELS": map[string]any{"app.kubernetes.io/name": "nm"}, "WORKLOAD_NAME": "web"}, "web-1.shop", "nm"},
		{map[string]any{"WORKLOAD_NAME": "web"}, "web-1.shop", "web"},
		{map[string]any{"APP_CONTAINERS": "app"}, "web-1.shop", "web-1"},
		{map[string]any{"APP_CONTAINERS": "app"}, "", "app"},
		{map[string]any{"APP_CONTAINERS": "app,sidecar"}, "", "unknown_service"},
	} {
		md, err := structpb.NewStruct(tt.md)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.1~" + tt.name + "~shop.svc.cluster.local", Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.semanticServiceName(); got != tt.want {
			t.Errorf("%v, %q: %q, want %q", tt.md, tt.name, got, tt.want)
		}
	}
	snap := snapshotOf(t, strings.Replace(tracingInput, "port: 4317, grpc:", "port: 4317, serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS, grpc:", 1))
	class := func(labels map[string]string) *Proxy {
		p := grpcProxy("shop", labels)
		p.Generator = ""
		return p.classProxy(snap)
	}
	a, b := class(map[string]string{"app.kubernetes.io/name": "a"}), class(map[string]string{"app.kubernetes.io/name": "b"})
	if a.classKey() == b.classKey() || a.SemanticServiceName != "a" || len(a.Labels) != 0 {
		t.Errorf("classes %q and %q, service %q, labels %v: want two classes, by service name, without the label nothing selects",
			a.classKey(), b.classKey(), a.SemanticServiceName, a.Labels)
	}
	ctx := newContext(snapshotOf(t, strings.Replace(tracingInput, "port: 4317, grpc:", "port: 4317, serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS, resourceDetectors: {dynatrace: {}}, grpc:", 1),
		telemetryDoc("shop", `{tracing: [{providers: [{name: otel}]}]}`)), a, "cluster.local", "istio-system")
	var o tracev3.OpenTelemetryConfig
	if err := tracingFor(ctx).client.GetProvider().GetTypedConfig().UnmarshalTo(&o); err != nil {
		t.Fatal(err)
	}
	var detectors []string
	for _, d := range o.ResourceDetectors {
		detectors = append(detectors, d.Name)
	}
	if o.ServiceName != "a" || strings.Join(detectors, ",") != "envoy.tracers.opentelemetry.resource_detectors.dynatrace,envoy.tracers.opentelemetry.resource_detectors.environment" {
		t.Errorf("service %q, resource detectors %v", o.ServiceName, detectors)
	}
}

// telemetryDoc is a Telemetry "traces" in namespace ns with spec.
func telemetryDoc(ns, spec string) string {
	return "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: traces, namespace: " + ns + "}\nspec: " + spec + "\n"
}

// An OpenTelemetry provider's Dynatrace sampler reads its configuration from the
// Dynatrace API: the one it names, else its exporter's; it samples, so Envoy
// passes it every request whatever the Telemetry's percentage.
func TestDynatraceSampler(t *testing.T) {
	mesh := strings.Replace(tracingInput, "    - name: vendor\n", `    - name: dt
      opentelemetry:
        service: otel-collector.observability.svc.cluster.local
        port: 4318
        http: {path: /api/v2/otlp/v1/traces, timeout: 7s, headers: [{name: Authorization, value: "Api-Token t"}]}
        dynatraceSampler: {tenant: abc, clusterId: 1234, rootSpansPerMinute: 500}
    - name: dt-api
      opentelemetry:
        service: otel-collector.observability.svc.cluster.local
        port: 4317
        grpc: {}
        dynatraceSampler: {tenant: abc, clusterId: 1234, httpService: {service: zipkin.istio-system.svc.cluster.local, port: 9411, http: {path: /sampling, timeout: 2s}}}
    - name: vendor
`, 1)
	for provider, want := range map[string]string{
		"dt":     "otel-collector.observability.svc.cluster.local/api/v2/samplingConfiguration outbound|4318||otel-collector.observability.svc.cluster.local 7s Authorization",
		"dt-api": "zipkin.istio-system.svc.cluster.local/sampling outbound|9411||zipkin.istio-system.svc.cluster.local 2s ",
	} {
		p := grpcProxy("shop", nil)
		p.Generator = ""
		ctx := newContext(snapshotOf(t, mesh, telemetryDoc("shop", `{tracing: [{providers: [{name: `+provider+`}], randomSamplingPercentage: 10}]}`)), p, "cluster.local", "istio-system")
		tr := tracingFor(ctx).client
		if len(ctx.errs) > 0 {
			t.Fatalf("%s: %v", provider, ctx.errs)
		}
		var o tracev3.OpenTelemetryConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&o); err != nil {
			t.Fatal(err)
		}
		var dt samplersv3.DynatraceSamplerConfig
		if err := o.GetSampler().GetTypedConfig().UnmarshalTo(&dt); err != nil {
			t.Fatalf("%s: sampler %v: %v", provider, o.GetSampler(), err)
		}
		h := dt.GetHttpService()
		var headers []string
		for _, hv := range h.GetRequestHeadersToAdd() {
			headers = append(headers, hv.GetHeader().GetKey())
		}
		got := fmt.Sprintf("%s %s %s %s", h.GetHttpUri().GetUri(), h.GetHttpUri().GetCluster(), h.GetHttpUri().GetTimeout().AsDuration(), strings.Join(headers, ","))
		if got != want || dt.Tenant != "abc" || dt.ClusterId != 1234 || o.GetSampler().GetName() != "envoy.tracers.opentelemetry.samplers.dynatrace" {
			t.Errorf("%s: sampler %s %+v, want %s", provider, got, &dt, want)
		}
		if tr.GetRandomSampling().GetValue() != 100 {
			t.Errorf("%s: random sampling %v, want 100: the sampler decides", provider, tr.GetRandomSampling())
		}
	}
}
