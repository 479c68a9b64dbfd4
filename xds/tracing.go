package xds

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	uuidv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/request_id/uuid/v3"
	resourcedetectorsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/resource_detectors/v3"
	samplersv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/samplers/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/registry"
)

// Telemetry's tracing becomes the tracing of Envoy's HTTP connection managers, as in
// Istio (pilot's Telemetries.Tracing): the mesh config's defaultProviders.tracing
// (its first), then the tracing entries of the mesh's, the namespace's and the
// workload's Telemetries (telemetries) in turn, each for the side its match selects (CLIENT: a
// sidecar's outbound listeners and a gateway's; SERVER: a sidecar's inbound chains),
// naming the provider (the first it lists), disableSpanReporting,
// randomSamplingPercentage and customTags, a later entry overriding an earlier one.
// Spans go to the provider's collector service, which must be a service the proxy
// sees: zipkin (HTTP JSON v2, B3), opentelemetry (OTLP over gRPC, or over HTTP with
// http set), datadog and skywalking (which spans upstream requests on every side)
// providers; OpenTelemetry and Datadog name the spans' service by the Envoy node's
// cluster (istio-agent's service cluster, "<app>.<namespace>"), or, under
// OpenTelemetry's semantic conventions, semanticServiceName's. Sampling is the
// entry's percentage, else the mesh config's defaultConfig.tracing.sampling, else
// Istio's default of 1% (100% under an OpenTelemetry sampler, which decides);
// gateways start a child span for the upstream request, as Istio's do. A side
// without a provider is not traced (as in istiod, whatever else the entries say);
// a traced side whose entry turns useRequestIdForTraceSampling off gets a request
// id extension that leaves sampling to chance.
//
// Spans carry Istio's own tags (istioSpanTags: the workload's canonical service and
// revision, mesh, namespace and cluster, dry-run policies) besides the entry's
// customTags, unless an entry sets enableIstioTags false; the labels and metadata
// they come from set classes apart.
//
// Where no Telemetry traces and the mesh config names no default tracing provider,
// Istio's legacy tracing applies while the mesh config's enableTracing is on (its
// default): both sides traced with no provider in the connection manager, so that
// Envoy sends its spans to the tracer of its bootstrap (istio-agent's: zipkin at
// zipkin.istio-system:9411 unless its ProxyConfig says otherwise), or nowhere;
// sampled at the ProxyConfig's defaultConfig.tracing.sampling (1%), with Istio's
// tags unless its tracing.enableIstioTags is false, its customTags and its
// maxPathTagLength. Lightstep and opencensus providers, and headers whose value
// comes from the environment (envName, which would differ from node to node), are
// reported and that side is not traced. Proxyless gRPC gets no tracing (nor does it
// in Istio).
//
// As from istiod, istio-proxies of older releases get only what they know: before
// 1.30 no disableContextPropagation, before 1.29 no formatter tags and the zipkin
// collector by cluster, path and host (without the provider's timeout and headers),
// before 1.28 no zipkin trace context option (Proxy.versionClass).

// Envoy's tracer names.
const (
	zipkinTracer        = "envoy.tracers.zipkin"
	openTelemetryTracer = "envoy.tracers.opentelemetry"
	datadogTracer       = "envoy.tracers.datadog"
	skyWalkingTracer    = "envoy.tracers.skywalking"
	// defaultSampling is Istio's PILOT_TRACE_SAMPLING default, in percent.
	defaultSampling = 1.0
	// zipkinTimeout is the collector timeout Envoy requires and Istio sets.
	zipkinTimeout = 5 * time.Second
)

// tracingSides is the tracing of a proxy's HTTP connection managers on each side,
// nil for none.
type tracingSides struct {
	client, server *hcmv3.HttpConnectionManager_Tracing
	// clientRequestID and serverRequestID are the connection managers' request
	// id extensions where a traced side's Telemetry turns
	// useRequestIdForTraceSampling off; nil leaves Envoy's (and istiod's)
	// default, a UUID that decides sampling.
	clientRequestID, serverRequestID *hcmv3.RequestIDExtension
}

// noRequestIDSampling is the request id extension of a side that samples traces
// at random rather than by the request's id.
var noRequestIDSampling = &hcmv3.RequestIDExtension{TypedConfig: mustAny(&uuidv3.UuidRequestIdConfig{UseRequestIdForTraceSampling: wrapperspb.Bool(false)})}

// tracingSpec is what the levels say of one side.
type tracingSpec struct {
	provider    string
	where       string // the entry or setting that named the provider, for reports
	disabled    bool
	sampling    *float64
	customTags  map[string]*telemetry.Tracing_CustomTag
	noPropagate bool
	noIstioTags bool // enableIstioTags: false
	// noRequestIDSampling: useRequestIdForTraceSampling false.
	noRequestIDSampling bool
}

// tracingFor returns the tracing of the proxy's class.
func tracingFor(ctx *Context) tracingSides {
	if ctx.Proxy.Generator == GeneratorGRPC {
		return tracingSides{}
	}
	return derived(ctx, "tracing", func() tracingSides {
		levels := telemetries(ctx)
		defaults := ctx.Mesh.GetDefaultProviders().GetTracing()
		var entries []*telemetry.Tracing
		var wheres []string
		for _, r := range levels {
			for i, tr := range r.Spec.(*telemetry.Telemetry).Tracing {
				entries = append(entries, tr)
				wheres = append(wheres, fmt.Sprintf("Telemetry %s/%s spec.tracing[%d]", r.Meta.Namespace, r.Meta.Name, i))
			}
		}
		if len(entries) == 0 && len(defaults) == 0 {
			if !ctx.Mesh.GetEnableTracing() {
				return tracingSides{}
			}
			// Legacy tracing: Istio's tags as the ProxyConfig has them.
			tags := ctx.proxyConfig().GetTracing().GetEnableIstioTags()
			legacy := tracingSpec{noIstioTags: tags != nil && !tags.Value}
			return tracingSides{client: tracingSettings(ctx, legacy), server: tracingSettings(ctx, legacy)}
		}
		var client, server tracingSpec
		if len(defaults) > 0 {
			client.provider, client.where = defaults[0], "MeshConfig defaultProviders.tracing"
			server = client
		}
		for i, tr := range entries {
			specs := []*tracingSpec{&client, &server}
			switch tr.GetMatch().GetMode() {
			case telemetry.WorkloadMode_CLIENT:
				specs = specs[:1]
			case telemetry.WorkloadMode_SERVER:
				specs = specs[1:]
			}
			for _, s := range specs {
				if len(tr.Providers) > 0 {
					s.provider, s.where = tr.Providers[0].GetName(), wheres[i]
				}
				if tr.DisableSpanReporting != nil {
					s.disabled = tr.DisableSpanReporting.Value
				}
				if tr.CustomTags != nil {
					s.customTags = tr.CustomTags
				}
				if tr.RandomSamplingPercentage != nil {
					v := tr.RandomSamplingPercentage.Value
					s.sampling = &v
				}
				if tr.DisableContextPropagation != nil {
					s.noPropagate = tr.DisableContextPropagation.Value
				}
				if tr.EnableIstioTags != nil {
					s.noIstioTags = !tr.EnableIstioTags.Value
				}
				if tr.UseRequestIdForTraceSampling != nil {
					s.noRequestIDSampling = !tr.UseRequestIdForTraceSampling.Value
				}
			}
		}
		sides := tracingSides{client: buildTracing(ctx, client), server: buildTracing(ctx, server)}
		if sides.client != nil && client.noRequestIDSampling {
			sides.clientRequestID = noRequestIDSampling
		}
		if sides.server != nil && server.noRequestIDSampling {
			sides.serverRequestID = noRequestIDSampling
		}
		return sides
	})
}

// buildTracing is the connection manager tracing of one side; nil when it is not
// traced, or its provider cannot be used (reported).
func buildTracing(ctx *Context, s tracingSpec) *hcmv3.HttpConnectionManager_Tracing {
	if s.disabled || s.provider == "" {
		return nil
	}
	built := derived(ctx, "tracer "+s.provider, func() result[*tracer] {
		t, err := buildTracer(ctx, s.provider)
		if err != nil { // reported once per build
			ctx.skip(s.where, fmt.Errorf("tracing provider %q: %v; spans are not reported", s.provider, err))
		}
		return result[*tracer]{t, err}
	})
	if built.err != nil {
		return nil
	}
	out := tracingSettings(ctx, s)
	out.Provider = built.v.provider
	if built.v.ownSampler {
		out.RandomSampling = &typev3.Percent{Value: 100} // the sampler decides, as istiod has it
	}
	if m := built.v.maxPathTagLength; m != nil {
		out.MaxPathTagLength = m
	}
	if ctx.Proxy.Type == TypeRouter || built.v.spawnUpstream {
		out.SpawnUpstreamSpan = wrapperspb.Bool(true)
	}
	return out
}

// tracingSettings is the tracing of one side but for its provider: the sampling,
// the span tags, the ProxyConfig's maxPathTagLength.
func tracingSettings(ctx *Context, s tracingSpec) *hcmv3.HttpConnectionManager_Tracing {
	sampling := defaultSampling
	if pc := ctx.proxyConfig().GetTracing().GetSampling(); pc != 0 {
		sampling = pc // the proxies' default, as Istio reads it (over 100: 1%)
		if pc > 100 {
			sampling = defaultSampling
		}
	}
	if s.sampling != nil {
		sampling = *s.sampling
	}
	out := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:       &typev3.Percent{Value: 100},
		RandomSampling:       &typev3.Percent{Value: sampling},
		OverallSampling:      &typev3.Percent{Value: 100},
		CustomTags:           customTags(s.customTags, !s.noIstioTags, ctx.Proxy, ctx.proxyConfig().GetTracing().GetCustomTags()),
		NoContextPropagation: s.noPropagate && ctx.Proxy.istioAtLeast(1, 30), // older istio-proxies lack it
	}
	if n := ctx.proxyConfig().GetTracing().GetMaxPathTagLength(); n != 0 {
		out.MaxPathTagLength = wrapperspb.UInt32(n)
	}
	return out
}

// tracer is a provider's tracer configuration.
type tracer struct {
	provider         *tracev3.Tracing_Http
	maxPathTagLength *wrapperspb.UInt32Value
	spawnUpstream    bool // a span of the upstream request on every side, not only gateways'
	// ownSampler: the tracer samples (an OpenTelemetry sampler), so Envoy's own
	// random sampling passes every request to it.
	ownSampler bool
}

// buildTracer builds the tracer of a provider.
func buildTracer(ctx *Context, name string) (*tracer, error) {
	ep, ok := extensionProvider(ctx.Mesh, name)
	if !ok {
		return nil, errors.New("the mesh config has no extension provider of that name")
	}
	maxTag := func(n uint32) *wrapperspb.UInt32Value {
		if n == 0 {
			return nil
		}
		return wrapperspb.UInt32(n)
	}
	switch p := ep.Provider.(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_Zipkin:
		z := p.Zipkin
		host, cluster, err := providerCluster(ctx, z.GetService(), z.GetPort())
		if err != nil {
			return nil, err
		}
		headers, err := providerHeaders(z.GetHeaders())
		if err != nil {
			return nil, err
		}
		path := z.GetPath()
		if path == "" {
			path = "/api/v2/spans"
		}
		timeout := z.GetTimeout()
		if timeout == nil {
			timeout = durationpb.New(zipkinTimeout)
		}
		cfg := &tracev3.ZipkinConfig{
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
			TraceId_128Bit:           !z.GetEnable_64BitTraceId(),
			SharedSpanContext:        wrapperspb.Bool(false),
		}
		if ctx.Proxy.istioAtLeast(1, 29) {
			cfg.CollectorService = &corev3.HttpService{
				HttpUri:             &corev3.HttpUri{Uri: "http://" + host + path, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: timeout},
				RequestHeadersToAdd: headers,
			}
		} else {
			// istio-proxy before 1.29 knows only the collector's cluster, path and
			// host; the provider's timeout and headers do not reach it (as from
			// istiod).
			cfg.CollectorCluster, cfg.CollectorEndpoint, cfg.CollectorHostname = cluster, path, host
		}
		if z.GetTraceContextOption() == meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider_USE_B3_WITH_W3C_PROPAGATION &&
			ctx.Proxy.istioAtLeast(1, 28) {
			cfg.TraceContextOption = tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
		}
		return &tracer{maxPathTagLength: maxTag(z.GetMaxTagLength()), provider: &tracev3.Tracing_Http{
			Name: zipkinTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)}}}, nil
	case *meshconfig.MeshConfig_ExtensionProvider_Opentelemetry:
		o := p.Opentelemetry
		host, cluster, err := providerCluster(ctx, o.GetService(), o.GetPort())
		if err != nil {
			return nil, err
		}
		cfg := &tracev3.OpenTelemetryConfig{ServiceName: ctx.Proxy.ServiceCluster}
		if dt := o.GetDynatraceSampler(); dt != nil {
			if cfg.Sampler, err = dynatraceSampler(ctx, o, dt, host, cluster); err != nil {
				return nil, err
			}
		} else if o.GetSampling() != nil {
			return nil, errors.New("the provider's sampler is not one navarch configures (dynatraceSampler)")
		}
		semantic := o.GetServiceAttributeEnrichment() == meshconfig.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS
		if semantic {
			cfg.ServiceName = ctx.Proxy.semanticServiceName()
		}
		// The resource detectors asked for, then, with OpenTelemetry's semantic
		// conventions, the environment's if not asked for (OTEL_RESOURCE_ATTRIBUTES
		// may name the service), as istiod orders them.
		environment := &corev3.TypedExtensionConfig{Name: "envoy.tracers.opentelemetry.resource_detectors.environment",
			TypedConfig: mustAny(&resourcedetectorsv3.EnvironmentResourceDetectorConfig{})}
		if o.GetResourceDetectors().GetEnvironment() != nil {
			cfg.ResourceDetectors = append(cfg.ResourceDetectors, environment)
		}
		if o.GetResourceDetectors().GetDynatrace() != nil {
			cfg.ResourceDetectors = append(cfg.ResourceDetectors, &corev3.TypedExtensionConfig{
				Name: "envoy.tracers.opentelemetry.resource_detectors.dynatrace", TypedConfig: mustAny(&resourcedetectorsv3.DynatraceResourceDetectorConfig{})})
		}
		if semantic && o.GetResourceDetectors().GetEnvironment() == nil {
			cfg.ResourceDetectors = append(cfg.ResourceDetectors, environment)
		}
		if h := o.GetHttp(); h != nil {
			headers, err := providerHeaders(h.GetHeaders())
			if err != nil {
				return nil, err
			}
			uri, err := url.JoinPath(host, h.GetPath())
			if err != nil {
				return nil, fmt.Errorf("the OTLP/HTTP path %q: %v", h.GetPath(), err)
			}
			cfg.HttpService = &corev3.HttpService{
				HttpUri:             &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: orDuration(h.GetTimeout(), zipkinTimeout)},
				RequestHeadersToAdd: headers,
			}
		} else {
			var md []*corev3.HeaderValue
			for _, h := range o.GetGrpc().GetInitialMetadata() {
				if h.GetEnvName() != "" {
					return nil, fmt.Errorf("metadata %q takes its value from the environment (envName), which differs from node to node; give a value", h.GetName())
				}
				md = append(md, &corev3.HeaderValue{Key: h.GetName(), Value: h.GetValue()})
			}
			cfg.GrpcService = &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}},
				Timeout:         o.GetGrpc().GetTimeout(),
				InitialMetadata: md,
			}
		}
		return &tracer{maxPathTagLength: maxTag(o.GetMaxTagLength()), ownSampler: cfg.Sampler != nil, provider: &tracev3.Tracing_Http{
			Name: openTelemetryTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)}}}, nil
	case *meshconfig.MeshConfig_ExtensionProvider_Datadog:
		d := p.Datadog
		host, cluster, err := providerCluster(ctx, d.GetService(), d.GetPort())
		if err != nil {
			return nil, err
		}
		// Envoy requires a service name: a node that names no cluster (istio-agent
		// always does) takes Istio's default service cluster.
		cfg := &tracev3.DatadogConfig{CollectorCluster: cluster, CollectorHostname: host, ServiceName: cmp.Or(ctx.Proxy.ServiceCluster, "istio-proxy")}
		return &tracer{maxPathTagLength: maxTag(d.GetMaxTagLength()), provider: &tracev3.Tracing_Http{
			Name: datadogTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)}}}, nil
	case *meshconfig.MeshConfig_ExtensionProvider_Skywalking:
		sw := p.Skywalking
		host, cluster, err := providerCluster(ctx, sw.GetService(), sw.GetPort())
		if err != nil {
			return nil, err
		}
		cfg := &tracev3.SkyWalkingConfig{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}}}}
		// SkyWalking's spans are per request: a span of the upstream request too,
		// on every side, as from istiod.
		return &tracer{spawnUpstream: true, provider: &tracev3.Tracing_Http{
			Name: skyWalkingTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)}}}, nil
	case *meshconfig.MeshConfig_ExtensionProvider_Lightstep, *meshconfig.MeshConfig_ExtensionProvider_Opencensus:
		return nil, errors.New("navarch configures zipkin, opentelemetry, datadog and skywalking tracers only (Istio has deprecated lightstep and removed opencensus)")
	}
	return nil, errors.New("not a tracing provider")
}

// dynatraceSampler is the Dynatrace sampler of OpenTelemetry provider o, as istiod
// builds it: it reads its sampling configuration from the Dynatrace API its
// httpService names, else from the host, cluster, timeout and headers of the
// provider's OTLP/HTTP exporter, which then must be Dynatrace's.
func dynatraceSampler(ctx *Context, o *meshconfig.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider,
	dt *meshconfig.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider_DynatraceSampler, host, cluster string) (*corev3.TypedExtensionConfig, error) {
	cfg := &samplersv3.DynatraceSamplerConfig{Tenant: dt.GetTenant(), ClusterId: dt.GetClusterId(), RootSpansPerMinute: dt.GetRootSpansPerMinute()}
	api := dt.GetHttpService()
	http, path := o.GetHttp(), "api/v2/samplingConfiguration"
	if api != nil {
		var err error
		if host, cluster, err = providerCluster(ctx, api.GetService(), api.GetPort()); err != nil {
			return nil, fmt.Errorf("the Dynatrace sampler's API: %v", err)
		}
		http, path = api.GetHttp(), api.GetHttp().GetPath()
	} else if http == nil {
		return nil, errors.New("the Dynatrace sampler takes its API from the OTLP/HTTP exporter (http), which the provider lacks; give the sampler an httpService")
	}
	uri, err := url.JoinPath(host, path)
	if err != nil {
		return nil, fmt.Errorf("the Dynatrace sampler's path %q: %v", path, err)
	}
	headers, err := providerHeaders(http.GetHeaders())
	if err != nil {
		return nil, err
	}
	cfg.HttpService = &corev3.HttpService{
		HttpUri:             &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: orDuration(http.GetTimeout(), zipkinTimeout)},
		RequestHeadersToAdd: headers,
	}
	return &corev3.TypedExtensionConfig{Name: "envoy.tracers.opentelemetry.samplers.dynatrace", TypedConfig: mustAny(cfg)}, nil
}

func orDuration(d *durationpb.Duration, def time.Duration) *durationpb.Duration {
	if d == nil {
		return durationpb.New(def)
	}
	return d
}

// providerHeaders are the headers a provider adds to its requests.
func providerHeaders(hs []*meshconfig.MeshConfig_ExtensionProvider_HttpHeader) ([]*corev3.HeaderValueOption, error) {
	var out []*corev3.HeaderValueOption
	for _, h := range hs {
		if h.GetEnvName() != "" {
			return nil, fmt.Errorf("header %q takes its value from the environment (envName), which differs from node to node; give a value", h.GetName())
		}
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.GetName(), Value: h.GetValue()},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return out, nil
}

// customTags are the span tags of a side, sorted by name: Istio's own
// (istioSpanTags) unless istioTags is false, and Telemetry's custom tags, or where
// it names none, the ProxyConfig's (proxyTags).
func customTags(tags map[string]*telemetry.Tracing_CustomTag, istioTags bool, p *Proxy, proxyTags map[string]*meshconfig.Tracing_CustomTag) []*tracingv3.CustomTag {
	var out []*tracingv3.CustomTag
	if istioTags {
		out = istioSpanTags(p)
	}
	if len(tags) == 0 { // the ProxyConfig's, as istiod takes them where Telemetry names none
		tags = telemetryTags(proxyTags)
	}
	for name, t := range tags {
		ct := &tracingv3.CustomTag{Tag: name}
		switch v := t.GetType().(type) {
		case *telemetry.Tracing_CustomTag_Literal:
			ct.Type = &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: v.Literal.GetValue()}}
		case *telemetry.Tracing_CustomTag_Environment:
			ct.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: v.Environment.GetName(), DefaultValue: v.Environment.GetDefaultValue()}}
		case *telemetry.Tracing_CustomTag_Header:
			ct.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: v.Header.GetName(), DefaultValue: v.Header.GetDefaultValue()}}
		case *telemetry.Tracing_CustomTag_Formatter:
			if !p.istioAtLeast(1, 29) {
				continue // older istio-proxies lack formatted tags
			}
			ct.Type = &tracingv3.CustomTag_Value{Value: v.Formatter.GetValue()}
		default:
			continue
		}
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// telemetryTags are a ProxyConfig's tracing tags as Telemetry's: the two messages
// spell literal, environment and request header tags alike (the same JSON), so
// each is read as the other.
func telemetryTags(proxyTags map[string]*meshconfig.Tracing_CustomTag) map[string]*telemetry.Tracing_CustomTag {
	out := make(map[string]*telemetry.Tracing_CustomTag, len(proxyTags))
	for name, t := range proxyTags {
		b, err := protojson.Marshal(t)
		var tt telemetry.Tracing_CustomTag
		if err == nil && protojson.Unmarshal(b, &tt) == nil {
			out[name] = &tt
		}
	}
	return out
}

// istioSpanTags are the tags Istio puts on every span of a proxy's (unless a
// Telemetry's enableIstioTags is false): the workload's canonical service and
// revision (its service.istio.io/canonical-name and -revision labels, else
// "unknown" and "latest"), its mesh (MESH_ID), namespace and Kubernetes cluster
// (CLUSTER_ID), each "unknown" when not said; and the names and results of the
// dry-run AuthorizationPolicies that matched, from the RBAC filter's metadata (empty
// when none did).
func istioSpanTags(p *Proxy) []*tracingv3.CustomTag {
	literal := func(tag, value string) *tracingv3.CustomTag {
		return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: value}}}
	}
	dryRun := func(tag, key string) *tracingv3.CustomTag {
		return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
			Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Request_{Request: &metadatav3.MetadataKind_Request{}}},
			MetadataKey: &metadatav3.MetadataKey{Key: "envoy.filters.http.rbac", Path: []*metadatav3.MetadataKey_PathSegment{
				{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: key}}}},
		}}}
	}
	return []*tracingv3.CustomTag{
		dryRun("istio.authorization.dry_run.allow_policy.name", "istio_dry_run_allow_shadow_effective_policy_id"),
		dryRun("istio.authorization.dry_run.allow_policy.result", "istio_dry_run_allow_shadow_engine_result"),
		dryRun("istio.authorization.dry_run.deny_policy.name", "istio_dry_run_deny_shadow_effective_policy_id"),
		dryRun("istio.authorization.dry_run.deny_policy.result", "istio_dry_run_deny_shadow_engine_result"),
		literal("istio.canonical_revision", cmp.Or(p.Labels["service.istio.io/canonical-revision"], "latest")),
		literal("istio.canonical_service", cmp.Or(p.Labels["service.istio.io/canonical-name"], "unknown")),
		literal("istio.mesh_id", cmp.Or(p.MeshID, "unknown")),
		literal("istio.namespace", cmp.Or(p.Namespace, "default")),
		literal("istio.cluster_id", cmp.Or(p.ClusterID, "unknown")),
	}
}

// tracersNameService reports whether a tracer the mesh config may name takes the
// proxy's service cluster (OpenTelemetry's and Datadog's service name), and
// whether one names it by OpenTelemetry's semantic conventions
// (semanticServiceName), so that those set proxies' classes apart.
func tracersNameService(snap *registry.Snapshot) (cluster, semantic bool) {
	for _, ep := range snap.MeshConfig().GetExtensionProviders() {
		switch p := ep.Provider.(type) {
		case *meshconfig.MeshConfig_ExtensionProvider_Opentelemetry:
			cluster = true
			semantic = semantic || p.Opentelemetry.GetServiceAttributeEnrichment() == meshconfig.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS
		case *meshconfig.MeshConfig_ExtensionProvider_Datadog:
			cluster = true
		}
	}
	return cluster, semantic
}

// semanticServiceName is the service a proxy's spans name under OpenTelemetry's
// semantic conventions for Kubernetes, as istiod picks it: the workload's
// resource.opentelemetry.io/service.name annotation, else its
// app.kubernetes.io/instance or app.kubernetes.io/name label, else its workload's
// name (WORKLOAD_NAME), else its pod's (the node id's name before the namespace),
// else its only container's (APP_CONTAINERS), else "unknown_service". A class
// proxy carries it worked out (classProxy), since its labels may lack those it
// comes from.
func (p *Proxy) semanticServiceName() string {
	if p.SemanticServiceName != "" {
		return p.SemanticServiceName
	}
	pod, _, _ := strings.Cut(p.Name, ".")
	single := ""
	if !strings.Contains(p.appContainers, ",") {
		single = p.appContainers
	}
	return cmp.Or(p.otelServiceAnnotation, p.Labels["app.kubernetes.io/instance"], p.Labels["app.kubernetes.io/name"],
		p.workloadName, pod, single, "unknown_service")
}
