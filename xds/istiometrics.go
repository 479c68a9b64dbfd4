package xds

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	udpa "github.com/cncf/xds/go/udpa/type/v1"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	alpnv2 "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"
	stats "istio.io/api/envoy/extensions/stats"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Istio's standard metrics (istio_requests_total and the rest) are counted by
// istio-proxy's own filters, configured as istiod configures them, so that an
// istio-proxy sidecar or gateway served by navarch reports what it would under
// istiod:
//
//   - metadata exchange (istio.metadata_exchange): peers tell each other who they
//     are, in headers for HTTP (peer_metadata) and in the mTLS handshake's
//     istio-peer-exchange protocol for TCP (on inbound chains and on clusters);
//   - istio.stats, the metrics themselves, where Telemetry's metrics (or the mesh
//     config's defaultProviders.metrics) turn on a Prometheus provider, with
//     Telemetry's overrides of metrics and their tags;
//   - gRPC statistics (envoy.filters.http.grpc_stats), whose per-message counts the
//     stats filter reads;
//   - istio.alpn on the client side, which tells the server's sidecar which HTTP
//     version a request was in (istio-http/1.1, istio-h2), so the server picks its
//     HTTP chain without sniffing; a cluster whose DestinationRule originates TLS
//     of its own (SIMPLE, MUTUAL) opts out in its metadata.
//
// Envoy without istio-proxy's extensions refuses the typed configurations of
// istio.metadata_exchange, istio.stats and istio.alpn, so only istio-proxy gets
// them (Proxy.IstioProxy: istio-agent's ISTIO_VERSION), with the "istio" metadata
// of clusters and endpoints that only they read; every Envoy gets gRPC statistics.

const (
	mxFilterName      = "istio.metadata_exchange"
	statsFilterName   = "istio.stats"
	alpnFilterName    = "istio.alpn"
	grpcStatsFilter   = "envoy.filters.http.grpc_stats"
	peerMetadataType  = "type.googleapis.com/io.istio.http.peer_metadata.Config"
	tcpMXType         = "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange"
	peerExchangeProto = "istio-peer-exchange"
)

// envoyHTTPFilters are the HTTP filters of an Envoy connection manager of class, in
// istiod's order: metadata exchange, auth (authentication and authorization, of a
// sidecar's inbound side and a gateway), gRPC statistics, ALPN override (not
// inbound), fault injection, CORS (which routes configure), Istio's stats, the
// router. skipMXHeaders keeps a client's metadata headers from destinations outside
// the mesh (ProxyConfig proxyHeaders.metadataExchangeHeaders IN_MESH).
func envoyHTTPFilters(ctx *Context, class listenerClass, auth []*hcmv3.HttpFilter, skipMXHeaders bool) []*hcmv3.HttpFilter {
	ph := headersFor(ctx, class)
	out := make([]*hcmv3.HttpFilter, 0, len(auth)+8)
	istioProxy := ctx.Proxy.IstioProxy
	if istioProxy {
		mx := httpMXOutbound
		switch {
		case class == classInbound:
			mx = httpMXInbound
		case skipMXHeaders:
			mx = httpMXInMesh
		}
		out = append(out, typedHTTPFilter(mxFilterName, mx()))
	}
	out = append(out, auth...)
	out = append(out, typedHTTPFilter(grpcStatsFilter, grpcStatsConfig()))
	if istioProxy && class != classInbound {
		out = append(out, typedHTTPFilter(alpnFilterName, alpnConfig()))
	}
	out = append(out, typedHTTPFilter(faultFilter, emptyFault()), typedHTTPFilter(corsFilter, emptyCors()))
	for _, s := range statsConfigs(ctx, class) {
		out = append(out, &hcmv3.HttpFilter{Name: statsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: s}})
	}
	return append(out, ph.router())
}

// typedHTTPFilter is an HTTP filter of the given name and configuration.
func typedHTTPFilter(name string, config *anypb.Any) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: config}}
}

// constAny returns a configuration that never changes, marshalled once: each call
// gets an Any of its own (a patch may replace it) sharing the bytes, which nothing
// writes to.
func constAny(build func() proto.Message) func() *anypb.Any {
	once := sync.OnceValue(func() *anypb.Any { return mustAny(build()) })
	return func() *anypb.Any {
		a := once()
		return &anypb.Any{TypeUrl: a.TypeUrl, Value: a.Value}
	}
}

// The configurations of the filters every Envoy connection manager has.
var (
	grpcStatsConfig = constAny(func() proto.Message {
		return &grpcstatsv3.FilterConfig{
			EmitFilterState:        true,
			PerMethodStatSpecifier: &grpcstatsv3.FilterConfig_StatsForAllMethods{StatsForAllMethods: wrapperspb.Bool(false)},
		}
	})
	emptyFault = constAny(func() proto.Message { return &faultv3.HTTPFault{} })
	emptyCors  = constAny(func() proto.Message { return &corsv3.Cors{} })
	alpnConfig = constAny(alpnOverrides)
	// istio-proxy's HTTP metadata exchange, as istiod configures it: a server
	// learns its client from the client's headers (or, failing them, from the
	// workload registry istio-proxy keeps), a client its server from the
	// response's, and each sends its own; in the mesh only (IN_MESH), a client
	// sends none to destinations outside it.
	httpMXInbound  = constAny(func() proto.Message { return httpMXConfig("downstream", map[string]any{}) })
	httpMXOutbound = constAny(func() proto.Message { return httpMXConfig("upstream", map[string]any{}) })
	httpMXInMesh   = constAny(func() proto.Message {
		return httpMXConfig("upstream", map[string]any{"skip_external_clusters": true})
	})
	// tcpMXConfig is the configuration of istio-proxy's TCP metadata exchange, the
	// same on inbound chains and on clusters.
	tcpMXConfig = constAny(func() proto.Message {
		return typedStruct(tcpMXType, map[string]any{"protocol": peerExchangeProto, "enable_discovery": true})
	})
)

// httpMXConfig is peer_metadata's configuration for one side: discovery from Istio's
// headers and istio-proxy's workload registry, propagation of Istio's headers.
func httpMXConfig(side string, propagate map[string]any) proto.Message {
	return typedStruct(peerMetadataType, map[string]any{
		side + "_discovery":   []any{map[string]any{"istio_headers": map[string]any{}}, map[string]any{"workload_discovery": map[string]any{}}},
		side + "_propagation": []any{map[string]any{"istio_headers": propagate}},
	})
}

// tcpTelemetry returns a TCP chain's filters (its terminal one last) with Istio's
// telemetry, as istiod places it: metadata exchange first where mx says (a
// sidecar's inbound chains, a gateway's mTLS servers), Istio's stats of class just
// before the terminal filter.
func tcpTelemetry(ctx *Context, class listenerClass, mx bool, filters ...*listenerv3.Filter) []*listenerv3.Filter {
	out := make([]*listenerv3.Filter, 0, len(filters)+2)
	if mx && ctx.Proxy.IstioProxy {
		out = append(out, tcpMXFilter())
	}
	out = append(out, filters[:len(filters)-1]...)
	for _, s := range statsConfigs(ctx, class) {
		out = append(out, &listenerv3.Filter{Name: statsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: s}})
	}
	return append(out, filters[len(filters)-1])
}

// withInboundMX puts metadata exchange before a sidecar's inbound connection
// manager (istio-proxy's), so a client's identity is known whatever protocol it
// speaks.
func withInboundMX(ctx *Context, hcm *listenerv3.Filter) []*listenerv3.Filter {
	if !ctx.Proxy.IstioProxy {
		return []*listenerv3.Filter{hcm}
	}
	return []*listenerv3.Filter{tcpMXFilter(), hcm}
}

// tcpMXFilter is istio-proxy's TCP metadata exchange, as a network filter.
func tcpMXFilter() *listenerv3.Filter {
	return &listenerv3.Filter{Name: mxFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpMXConfig()}}
}

// clusterMXFilters are the upstream filters of istio-proxy's outbound clusters: its
// TCP metadata exchange, which acts on mTLS connections that agree on
// istio-peer-exchange. None for other Envoys.
func clusterMXFilters(ctx *Context) []*clusterv3.Filter {
	if !ctx.Proxy.IstioProxy {
		return nil
	}
	return []*clusterv3.Filter{{Name: mxFilterName, TypedConfig: tcpMXConfig()}}
}

// typedStruct is the configuration of an extension whose proto Envoy's API does not
// carry, as a TypedStruct of its type and fields (as istiod sends it).
func typedStruct(typeURL string, fields map[string]any) *udpa.TypedStruct {
	v, err := structpb.NewStruct(fields)
	if err != nil {
		panic("typed struct of " + typeURL + ": " + err.Error()) // fields are ours
	}
	return &udpa.TypedStruct{TypeUrl: typeURL, Value: v}
}

// alpnOverrides is istio-proxy's ALPN override: mTLS to a sidecar offers the HTTP
// version of the request in Istio's terms first.
func alpnOverrides() proto.Message {
	override := func(p alpnv2.FilterConfig_Protocol, version string) *alpnv2.FilterConfig_AlpnOverride {
		return &alpnv2.FilterConfig_AlpnOverride{UpstreamProtocol: p, AlpnOverride: []string{"istio-" + version, "istio", version}}
	}
	return &alpnv2.FilterConfig{AlpnOverride: []*alpnv2.FilterConfig_AlpnOverride{
		override(alpnv2.FilterConfig_HTTP10, "http/1.0"),
		override(alpnv2.FilterConfig_HTTP11, "http/1.1"),
		override(alpnv2.FilterConfig_HTTP2, "h2"),
	}}
}

// Telemetry's metrics are merged as Istio's mergeMetrics merges them: the levels
// (mesh, namespace, workload; telemetries) in order, each entry naming providers
// (none: those of the entry before, at the top the mesh config's
// defaultProviders.metrics); the providers the lowest entry naming any names are
// those in scope. An entry's overrides, in order, disable or re-enable metrics
// (ALL_METRICS or one, or a custom one) and add, change or remove their tags, for
// the client side (a sidecar's outbound, a gateway), the server side (a sidecar's
// inbound) or both; disabling all metrics of a side drops its filter. Of the
// providers, Prometheus ones count metrics (istio.stats); others have no filter, as
// in Istio.

// sideMetrics are the merged overrides of one provider on one side.
type sideMetrics struct {
	disabled  bool
	overrides map[string]*metricOverride // by metric (Istio's enum name, or custom)
}

type metricOverride struct {
	disabled *bool
	tags     map[string]*telemetry.MetricsOverrides_TagOverride
}

// providerMetrics are a provider's merged metrics settings.
type providerMetrics struct {
	interval    *durationpb.Duration
	client, srv sideMetrics
}

// allMetrics are Istio's metrics but ALL_METRICS, sorted, as ALL_METRICS expands.
var allMetrics = func() []string {
	var out []string
	for name, v := range telemetry.MetricSelector_IstioMetric_value {
		if v != int32(telemetry.MetricSelector_ALL_METRICS) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}()

// prometheusNames are the Prometheus names (after istio_) of Istio's metrics.
var prometheusNames = map[string]string{
	"REQUEST_COUNT":          "requests_total",
	"REQUEST_DURATION":       "request_duration_milliseconds",
	"REQUEST_SIZE":           "request_bytes",
	"RESPONSE_SIZE":          "response_bytes",
	"TCP_OPENED_CONNECTIONS": "tcp_connections_opened_total",
	"TCP_CLOSED_CONNECTIONS": "tcp_connections_closed_total",
	"TCP_SENT_BYTES":         "tcp_sent_bytes_total",
	"TCP_RECEIVED_BYTES":     "tcp_received_bytes_total",
	"GRPC_REQUEST_MESSAGES":  "request_messages_total",
	"GRPC_RESPONSE_MESSAGES": "response_messages_total",
}

// mergedMetrics returns the proxy's metrics settings by provider, worked out once
// per build.
func mergedMetrics(ctx *Context) map[string]*providerMetrics {
	return derived(ctx, "metrics", func() map[string]*providerMetrics {
		var entries []*telemetry.Metrics
		for _, r := range telemetries(ctx) {
			entries = append(entries, r.Spec.(*telemetry.Telemetry).Metrics...)
		}
		return mergeMetrics(entries, ctx.Mesh.GetDefaultProviders().GetMetrics())
	})
}

func providerNames(refs []*telemetry.ProviderRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Name
	}
	return out
}

func mergeMetrics(entries []*telemetry.Metrics, defaults []string) map[string]*providerMetrics {
	out := map[string]*providerMetrics{}
	if len(entries) == 0 {
		for _, n := range defaults {
			out[n] = &providerMetrics{}
		}
		return out
	}
	inScope := defaults
	for _, m := range entries {
		if len(m.Providers) > 0 {
			inScope = providerNames(m.Providers)
		}
	}
	parent := defaults
	for _, m := range entries {
		names := providerNames(m.Providers)
		if len(names) == 0 {
			names = parent
		}
		parent = names
		for _, n := range names {
			if !slices.Contains(inScope, n) {
				continue
			}
			pm := out[n]
			if pm == nil {
				pm = &providerMetrics{}
				out[n] = pm
			}
			if m.ReportingInterval != nil {
				pm.interval = m.ReportingInterval
			}
			for _, o := range m.Overrides {
				for _, side := range pm.sides(o.GetMatch().GetMode()) {
					applyOverride(side, o)
				}
			}
		}
	}
	return out
}

// sides are the sides an override's mode names.
func (pm *providerMetrics) sides(mode telemetry.WorkloadMode) []*sideMetrics {
	switch mode {
	case telemetry.WorkloadMode_CLIENT:
		return []*sideMetrics{&pm.client}
	case telemetry.WorkloadMode_SERVER:
		return []*sideMetrics{&pm.srv}
	}
	return []*sideMetrics{&pm.client, &pm.srv}
}

// applyOverride merges o into a side's settings.
func applyOverride(side *sideMetrics, o *telemetry.MetricsOverrides) {
	var names []string
	all := false
	switch m := o.GetMatch().GetMetricMatch().(type) {
	case *telemetry.MetricSelector_CustomMetric:
		names = []string{m.CustomMetric}
	case *telemetry.MetricSelector_Metric:
		all = m.Metric == telemetry.MetricSelector_ALL_METRICS
		names = []string{m.Metric.String()}
	default:
		all = true
	}
	if all {
		if o.Disabled.GetValue() {
			side.disabled = true
			return
		}
		names = allMetrics
	}
	side.disabled = false
	if side.overrides == nil {
		side.overrides = map[string]*metricOverride{}
	}
	for _, n := range names {
		mo := side.overrides[n]
		if mo == nil {
			mo = &metricOverride{}
			side.overrides[n] = mo
		}
		if o.Disabled != nil {
			d := o.Disabled.GetValue()
			mo.disabled = &d
		}
		for k, v := range o.TagOverrides {
			if mo.tags == nil {
				mo.tags = map[string]*telemetry.MetricsOverrides_TagOverride{}
			}
			mo.tags[k] = v
		}
	}
}

// statsConfigs are the istio.stats configurations of class's listeners (HTTP and
// TCP), one for each Prometheus provider counting metrics there, by name; none but
// for istio-proxy.
func statsConfigs(ctx *Context, class listenerClass) []*anypb.Any {
	if !ctx.Proxy.IstioProxy {
		return nil
	}
	return derived(ctx, "stats-"+strconv.Itoa(int(class)), func() []*anypb.Any {
		merged := mergedMetrics(ctx)
		var out []*anypb.Any
		for _, name := range registry.SortedKeys(merged) {
			p, ok := extensionProvider(ctx.Mesh, name)
			if !ok {
				continue
			}
			if _, prom := p.Provider.(*meshconfig.MeshConfig_ExtensionProvider_Prometheus); !prom {
				continue
			}
			pm := merged[name]
			side := pm.client
			if class == classInbound {
				side = pm.srv
			}
			if side.disabled {
				continue
			}
			out = append(out, mustAny(pluginConfig(class, pm.interval, side)))
		}
		return out
	})
}

// pluginConfig is istio.stats's configuration of one side's settings.
func pluginConfig(class listenerClass, interval *durationpb.Duration, side sideMetrics) *stats.PluginConfig {
	cfg := &stats.PluginConfig{
		// A server (or gateway) names the destination service by its own, not by
		// the Host header a client chose.
		DisableHostHeaderFallback: class == classInbound || class == classGateway,
		TcpReportingDuration:      interval,
	}
	for _, n := range registry.SortedKeys(side.overrides) {
		o := side.overrides[n]
		mc := &stats.MetricConfig{Name: n, Dimensions: map[string]string{}, Drop: o.disabled != nil && *o.disabled}
		if p, ok := prometheusNames[n]; ok {
			mc.Name = p
		}
		for _, t := range registry.SortedKeys(o.tags) {
			switch v := o.tags[t]; v.Operation {
			case telemetry.MetricsOverrides_TagOverride_REMOVE:
				mc.TagsToRemove = append(mc.TagsToRemove, t)
			default:
				mc.Dimensions[t] = v.Value
			}
		}
		cfg.Metrics = append(cfg.Metrics, mc)
	}
	return cfg
}

// istioMetadata is a cluster's "istio" metadata, which istio-proxy's filters read,
// created empty if it has none.
func istioMetadata(c *clusterv3.Cluster) *structpb.Struct {
	if c.Metadata == nil {
		c.Metadata = &corev3.Metadata{}
	}
	if c.Metadata.FilterMetadata == nil {
		c.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	m := c.Metadata.FilterMetadata["istio"]
	if m == nil {
		m = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		c.Metadata.FilterMetadata["istio"] = m
	}
	return m
}

// serviceClusterMetadata sets on an Envoy's cluster of svc (its subset, if any)
// the "istio" metadata istiod gives it, which istio-proxy's stats read for the
// destination's labels: the service (host, short name, namespace), the
// DestinationRule that applies (as its API path) and the subset, and whether the
// service is outside the mesh.
func serviceClusterMetadata(c *clusterv3.Cluster, svc *registry.Service, subset string, dr *api.Resource) {
	m := istioMetadata(c)
	m.Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{serviceMetadata(svc)}})
	if svc.MeshExternal && subset == "" { // istiod marks the service's own cluster only
		m.Fields["external"] = structpb.NewBoolValue(true)
	}
	if dr != nil {
		m.Fields["config"] = configPath(dr)
		if subset != "" {
			m.Fields["subset"] = structpb.NewStringValue(subset)
		}
	}
}

// inboundClusterMetadata sets on a sidecar's inbound cluster of port the "istio"
// metadata istiod gives it: the services that send the workload traffic on it
// through the same service port (for a Sidecar ingress listener's port, the one
// service whose workload port it is), and the DestinationRule of the first, if it
// sets a traffic policy.
func inboundClusterMetadata(ctx *Context, c *clusterv3.Cluster, port inboundPort, dr *api.Resource) {
	if services := inboundServices(ctx, port); len(services) > 0 {
		istioMetadata(c).Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: services})
	}
	if dr != nil && dr.Spec.(*networking.DestinationRule).GetTrafficPolicy() != nil {
		istioMetadata(c).Fields["config"] = configPath(dr)
	}
}

// inboundServices describes the services of an inbound port (inboundClusterMetadata):
// none where the first is MESH_EXTERNAL, as istiod gives them.
func inboundServices(ctx *Context, port inboundPort) []*structpb.Value {
	if port.sidecar != "" {
		if port.service != nil && port.service.MeshExternal {
			return nil
		}
		return []*structpb.Value{serviceMetadata(port.service)}
	}
	var services []*structpb.Value
	seen := map[string]bool{}
	for _, svc := range ctx.Snapshot.Services() {
		if seen[svc.Hostname] || !selectsWorkload(svc, ctx.Proxy) {
			continue
		}
		for _, p := range svc.Ports {
			if p.Number == port.servicePort.Number && workloadPort(ctx, svc, p) == port.number {
				if len(services) == 0 && svc.MeshExternal {
					return nil
				}
				services = append(services, serviceMetadata(svc))
				seen[svc.Hostname] = true
				break
			}
		}
	}
	return services
}

// configPath is a resource's API path, as istiod names the configuration a cluster
// or filter chain comes from: /apis/<group>/<version>/namespaces/<ns>/<kind in
// kebab case>/<name>.
func configPath(r *api.Resource) *structpb.Value {
	var kind strings.Builder
	for i, c := range r.Kind.Name {
		if unicode.IsUpper(c) {
			if i > 0 {
				kind.WriteByte('-')
			}
			c = unicode.ToLower(c)
		}
		kind.WriteRune(c)
	}
	return structpb.NewStringValue("/apis/" + r.Kind.APIVersion() + "/namespaces/" + r.Meta.Namespace + "/" + kind.String() + "/" + r.Meta.Name)
}

// configMetadata is the metadata istiod gives a filter chain built from r.
func configMetadata(r *api.Resource) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"config": configPath(r)}}}}
}

// serviceMetadata describes svc as istio-proxy's stats name it: its host, its
// short name (a Kubernetes Service's name, else the host, as in Istio) and its
// namespace.
func serviceMetadata(svc *registry.Service) *structpb.Value {
	name := svc.Hostname
	if svc.IsKubernetesService() {
		name = svc.Origin.Name
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"host":      structpb.NewStringValue(svc.Hostname),
		"name":      structpb.NewStringValue(name),
		"namespace": structpb.NewStringValue(svc.Namespace),
	}})
}

// defaultClusterID is the cluster istiod says endpoints of no Kubernetes cluster
// (ServiceEntries, WorkloadEntries) are in: its own, "Kubernetes" by default.
const defaultClusterID = "Kubernetes"

// workloadMetadata is the "istio" metadata of an Envoy's endpoint of w, as istiod
// compresses it for istio-proxy's stats: "workload;namespace;canonical
// service;canonical revision;cluster", so that a client names a server it has
// exchanged no metadata with (one without a sidecar, or one it never reached).
// The canonical service and revision come from Istio's labels, else the workload's
// app and version, else its name and "latest" (sent as empty, as istiod does).
func workloadMetadata(w *registry.Workload) *structpb.Struct {
	name := w.WorkloadName
	canonical := cmp.Or(firstLabel(w.Labels, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"), name)
	revision := firstLabel(w.Labels, "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
	if revision == "latest" {
		revision = ""
	}
	cluster, _ := registry.KubernetesCluster(w.Source)
	value := name + ";" + w.Namespace + ";" + canonical + ";" + revision + ";" + cmp.Or(cluster, defaultClusterID)
	return &structpb.Struct{Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue(value)}}
}

// firstLabel is the value of the first of keys that labels has ("" if none).
func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v, ok := labels[k]; ok {
			return v
		}
	}
	return ""
}
