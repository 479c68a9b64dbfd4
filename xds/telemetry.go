package xds

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otellogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	otlpcommon "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Telemetry's accessLogging becomes Envoy access logs, as in Istio: the mesh's
// Telemetry (root namespace, no selector), then the namespace's (no selector), then
// every one selecting the workload, oldest first, each naming providers it turns on (with a CEL
// filter, which applies to the providers the entry names) or off; an entry without
// providers means those of the level above, at the top the mesh config's
// defaultProviders.accessLogging; the providers of the lowest level that names any
// are the ones that log. An entry's match mode says which side it logs: CLIENT is
// what a sidecar sends (outbound listeners) and what a gateway serves, SERVER what a
// sidecar receives (inbound chains). Access logs go on HTTP connection managers and
// TCP proxies.
//
// Providers are the mesh config's extension providers (mesh.go), with Istio's
// built-in "envoy" (a text log on the proxy's stdout, in the mesh config's
// accessLogEncoding and accessLogFormat, Istio's text format by default): file logs
// (envoyFileAccessLog: a path, a text or JSON format) and log services
// (envoyHttpAls, envoyTcpAls, envoyOtelAls); a provider of another kind, or one the
// mesh config does not have, is reported and left out. Where nothing gives a side a
// provider that logs, on or off (no Telemetry names one for that side, the mesh
// config names no default provider), the mesh config's accessLogFile is that
// side's log, as Istio's legacy setting. Tracing is tracing.go's, metrics istiometrics.go's.
// Proxyless gRPC gets no access logs (nor does it in Istio).

const (
	envoyLogProvider = "envoy"
	celFilter        = "envoy.access_loggers.extension_filters.cel"
	// istioLogFormat is Istio's default text access log format.
	istioLogFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
		`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
		`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
		`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
		`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% ` +
		`%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ` +
		`%REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"
)

// accessLogs are a proxy's access logs for each side: those of its connection
// managers and TCP proxies, and those of its listeners (listenerAccessLogs).
type accessLogs struct {
	client, server                 []*accesslogv3.AccessLog
	clientListener, serverListener []*accesslogv3.AccessLog
}

// accessLogsFor returns the access logs of the proxy's class.
func accessLogsFor(ctx *Context) accessLogs {
	if ctx.Proxy.Generator == GeneratorGRPC {
		return accessLogs{}
	}
	return derived(ctx, "access-logs", func() accessLogs {
		levels := telemetries(ctx)
		logs := accessLogs{client: buildAccessLogs(ctx, levels, telemetry.WorkloadMode_CLIENT),
			server: buildAccessLogs(ctx, levels, telemetry.WorkloadMode_SERVER)}
		logs.clientListener = listenerAccessLogs(ctx, logs.client)
		logs.serverListener = listenerAccessLogs(ctx, logs.server)
		return logs
	})
}

// listenerAccessLogs are the access logs istiod puts on the listeners themselves
// (a sidecar's virtual outbound and inbound listeners and Sidecar ingress
// listeners, a gateway's listeners), for connections no filter chain takes: the
// side's logs, each for Envoy's NR flag only (and its own filter), unless the mesh
// config's disableEnvoyListenerLog turns them off.
func listenerAccessLogs(ctx *Context, logs []*accesslogv3.AccessLog) []*accesslogv3.AccessLog {
	if ctx.Mesh.GetDisableEnvoyListenerLog() || len(logs) == 0 {
		return nil
	}
	out := make([]*accesslogv3.AccessLog, 0, len(logs))
	for _, l := range logs {
		nr := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}}}}
		filter := nr
		if l.Filter != nil {
			filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
				AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{nr, l.Filter}}}}
		}
		out = append(out, &accesslogv3.AccessLog{Name: l.Name, ConfigType: l.ConfigType, Filter: filter})
	}
	return out
}

// telemetries returns the Telemetries that apply to the proxy, each with its name
// for reports, in the order they are merged (a later one overrides): the mesh's
// (the oldest of the root namespace without a selector), the namespace's (the
// oldest without one), then every one of the namespace selecting the workload,
// oldest first, as istiod's applicableTelemetries has them.
func telemetries(ctx *Context) []*api.Resource {
	p := ctx.Proxy
	var workload []*api.Resource
	var namespace, mesh *api.Resource
	for _, r := range selectedPolicies(ctx, api.Telemetry, p.Namespace, p.Labels) {
		sel := r.Spec.(*telemetry.Telemetry).GetSelector().GetMatchLabels()
		switch {
		case r.Meta.Namespace == p.Namespace && len(sel) > 0:
			workload = append(workload, r)
		case r.Meta.Namespace == p.Namespace:
			if namespace == nil {
				namespace = r
			}
		case len(sel) == 0: // the root namespace's
			if mesh == nil {
				mesh = r
			}
		}
	}
	var out []*api.Resource
	for _, r := range []*api.Resource{mesh, namespace} {
		if r != nil {
			out = append(out, r)
		}
	}
	return append(out, workload...)
}

// logSetting is what the levels say of one provider.
type logSetting struct {
	disabled bool
	filter   string
	where    string // the entry that turned it on, for reports
}

// buildAccessLogs merges the levels' accessLogging for one side into access logs, as
// Istio's mergeLogs does.
func buildAccessLogs(ctx *Context, levels []*api.Resource, mode telemetry.WorkloadMode) []*accesslogv3.AccessLog {
	defaults := ctx.Mesh.GetDefaultProviders().GetAccessLogging()
	logging := false
	for _, r := range levels {
		logging = logging || len(r.Spec.(*telemetry.Telemetry).AccessLogging) > 0
	}
	matches := func(l *telemetry.AccessLogging) bool {
		m := l.GetMatch().GetMode()
		return m == telemetry.WorkloadMode_CLIENT_AND_SERVER || m == mode
	}
	names := func(l *telemetry.AccessLogging) []string {
		out := make([]string, len(l.Providers))
		for i, p := range l.Providers {
			out[i] = p.Name
		}
		return out
	}
	// The providers in scope: those the lowest level naming any names.
	inScope := defaults
	filters := map[string]logSetting{}
	for _, r := range levels {
		var named []string
		for i, l := range r.Spec.(*telemetry.Telemetry).AccessLogging {
			if !matches(l) {
				continue
			}
			where := fmt.Sprintf("Telemetry %s/%s spec.accessLogging[%d]", r.Meta.Namespace, r.Meta.Name, i)
			for _, n := range names(l) {
				named = append(named, n)
				filters[n] = logSetting{filter: l.GetFilter().GetExpression(), where: where}
			}
		}
		if len(named) > 0 {
			inScope = named
		}
	}
	settings := map[string]logSetting{}
	if !logging {
		for _, n := range defaults {
			settings[n] = logSetting{where: "MeshConfig defaultProviders.accessLogging"}
		}
	}
	parent := defaults
	for _, r := range levels {
		for _, l := range r.Spec.(*telemetry.Telemetry).AccessLogging {
			ns := names(l)
			if len(ns) == 0 {
				ns = parent
			}
			parent = ns
			for _, n := range ns {
				if !slices.Contains(inScope, n) || !matches(l) {
					continue
				}
				if l.Disabled.GetValue() {
					settings[n] = logSetting{disabled: true}
					continue
				}
				s, ok := filters[n]
				if !ok {
					s.where = "MeshConfig defaultProviders.accessLogging"
				}
				settings[n] = s
			}
		}
	}
	var out []*accesslogv3.AccessLog
	decided := false // whether a provider that logs is on or off for this side
	for _, n := range registry.SortedKeys(settings) {
		s := settings[n]
		if s.disabled {
			decided = decided || logProvider(ctx, n)
			continue
		}
		if l := providerAccessLog(ctx, n, s.where); l != nil {
			out = append(out, withFilter(l, s.filter))
			decided = true
		}
	}
	if !decided {
		// Nothing says how this side logs: the mesh config's legacy log, as istiod
		// falls back to it side by side.
		if l := meshAccessLog(ctx); l != nil {
			return []*accesslogv3.AccessLog{l}
		}
	}
	return out
}

// logProvider reports whether the mesh config has an access log provider of that
// name, of a kind navarch writes.
func logProvider(ctx *Context, name string) bool {
	ep, ok := extensionProvider(ctx.Mesh, name)
	if !ok {
		return false
	}
	switch ep.Provider.(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog, *meshconfig.MeshConfig_ExtensionProvider_EnvoyHttpAls,
		*meshconfig.MeshConfig_ExtensionProvider_EnvoyTcpAls, *meshconfig.MeshConfig_ExtensionProvider_EnvoyOtelAls:
		return true
	}
	return false
}

// providerAccessLog is the access log of the named extension provider, nil (and
// reported) when there is no such provider or it is of a kind navarch does not
// write.
func providerAccessLog(ctx *Context, name, where string) *accesslogv3.AccessLog {
	report := func(err error) { // once per build, whichever side asks
		derived(ctx, "log-provider "+name, func() bool { ctx.skip(where, err); return true })
	}
	ep, ok := extensionProvider(ctx.Mesh, name)
	if !ok {
		report(fmt.Errorf("provider %q: the mesh config has no extension provider of that name; nothing is logged for it", name))
		return nil
	}
	var l *accesslogv3.AccessLog
	var err error
	switch p := ep.Provider.(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog:
		l = fileProviderLog(ctx, name, p.EnvoyFileAccessLog)
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyHttpAls:
		l, err = grpcAccessLog(ctx, p.EnvoyHttpAls.GetService(), p.EnvoyHttpAls.GetPort(), func(common *grpclogv3.CommonGrpcAccessLogConfig) (string, proto.Message) {
			common.LogName = cmp.Or(p.EnvoyHttpAls.GetLogName(), "http_envoy_accesslog")
			common.FilterStateObjectsToLog = orStrings(p.EnvoyHttpAls.GetFilterStateObjectsToLog(), peerStateToLog)
			return "envoy.access_loggers.http_grpc", &grpclogv3.HttpGrpcAccessLogConfig{CommonConfig: common,
				AdditionalRequestHeadersToLog:   p.EnvoyHttpAls.GetAdditionalRequestHeadersToLog(),
				AdditionalResponseHeadersToLog:  p.EnvoyHttpAls.GetAdditionalResponseHeadersToLog(),
				AdditionalResponseTrailersToLog: p.EnvoyHttpAls.GetAdditionalResponseTrailersToLog()}
		})
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyTcpAls:
		l, err = grpcAccessLog(ctx, p.EnvoyTcpAls.GetService(), p.EnvoyTcpAls.GetPort(), func(common *grpclogv3.CommonGrpcAccessLogConfig) (string, proto.Message) {
			common.LogName = cmp.Or(p.EnvoyTcpAls.GetLogName(), "tcp_envoy_accesslog")
			common.FilterStateObjectsToLog = orStrings(p.EnvoyTcpAls.GetFilterStateObjectsToLog(), peerStateToLog)
			return "envoy.access_loggers.tcp_grpc", &grpclogv3.TcpGrpcAccessLogConfig{CommonConfig: common}
		})
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyOtelAls:
		o := p.EnvoyOtelAls
		l, err = grpcAccessLog(ctx, o.GetService(), o.GetPort(), func(common *grpclogv3.CommonGrpcAccessLogConfig) (string, proto.Message) {
			common.LogName = cmp.Or(o.GetLogName(), "otel_envoy_accesslog")
			common.FilterStateObjectsToLog = wasmPeerStateToLog
			cfg := &otellogv3.OpenTelemetryAccessLogConfig{DisableBuiltinLabels: true,
				Body: &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_StringValue{StringValue: cmp.Or(o.GetLogFormat().GetText(), istioLogFormat)}}}
			// The deprecated common config, as Istio sends it: the Envoys of older
			// proxies know no other.
			//lint:ignore SA1019 see above
			cfg.CommonConfig = common
			if labels := o.GetLogFormat().GetLabels().GetFields(); len(labels) > 0 {
				cfg.Attributes = &otlpcommon.KeyValueList{}
				for _, k := range registry.SortedKeys(labels) {
					cfg.Attributes.Values = append(cfg.Attributes.Values, &otlpcommon.KeyValue{Key: k,
						Value: &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_StringValue{StringValue: labels[k].GetStringValue()}}})
				}
			}
			return "envoy.access_loggers.open_telemetry", cfg
		})
	default:
		err = errors.New("not an access log provider (envoyFileAccessLog, envoyHttpAls, envoyTcpAls, envoyOtelAls)")
	}
	if err != nil {
		report(fmt.Errorf("provider %q: %v; nothing is logged for it", name, err))
	}
	return l
}

// Filter state the gRPC access logs send, as Istio's: the peers' metadata.
var (
	peerStateToLog     = []string{"upstream_peer", "downstream_peer"}
	wasmPeerStateToLog = []string{"upstream_peer", "downstream_peer", "wasm.upstream_peer", "wasm.upstream_peer_id", "wasm.downstream_peer", "wasm.downstream_peer_id"}
)

func orStrings(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}

// grpcAccessLog is an access log sent over gRPC to a provider's service, which must
// be a service the proxy sees; build completes the common settings and returns the
// logger's name and configuration.
func grpcAccessLog(ctx *Context, service string, port uint32, build func(*grpclogv3.CommonGrpcAccessLogConfig) (string, proto.Message)) (*accesslogv3.AccessLog, error) {
	host, cluster, err := providerCluster(ctx, service, port)
	if err != nil {
		return nil, err
	}
	common := &grpclogv3.CommonGrpcAccessLogConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}}},
		TransportApiVersion: corev3.ApiVersion_V3,
	}
	name, cfg := build(common)
	return &accesslogv3.AccessLog{Name: name, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(cfg)}}, nil
}

// fileProviderLog is an envoyFileAccessLog provider's log. Istio's built-in "envoy"
// without a format of its own takes the mesh config's accessLogEncoding and
// accessLogFormat.
func fileProviderLog(ctx *Context, name string, fp *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider) *accesslogv3.AccessLog {
	path := cmp.Or(fp.Path, "/dev/stdout")
	if name == envoyLogProvider && fp.LogFormat == nil && !fp.OmitEmptyValues {
		return meshFileLog(ctx.Mesh, path)
	}
	format := &corev3.SubstitutionFormatString{OmitEmptyValues: fp.OmitEmptyValues}
	switch f := fp.GetLogFormat().GetLogFormat().(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Labels:
		labels := f.Labels
		if len(labels.GetFields()) == 0 {
			labels = istioJSONLogFormat
		}
		format.Format = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: labels}
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Text:
		format.Format = textFormat(f.Text)
	default:
		format.Format = textFormat("")
	}
	return fileAccessLog(path, format)
}

// meshAccessLog is the mesh config's accessLogFile, nil when it names none.
func meshAccessLog(ctx *Context) *accesslogv3.AccessLog {
	if ctx.Mesh.AccessLogFile == "" {
		return nil
	}
	return meshFileLog(ctx.Mesh, ctx.Mesh.AccessLogFile)
}

// meshFileLog is a log to path in the mesh config's accessLogEncoding and
// accessLogFormat.
func meshFileLog(m *meshconfig.MeshConfig, path string) *accesslogv3.AccessLog {
	format := &corev3.SubstitutionFormatString{Format: textFormat(m.AccessLogFormat)}
	if m.AccessLogEncoding == meshconfig.MeshConfig_JSON {
		labels := istioJSONLogFormat
		if m.AccessLogFormat != "" {
			labels = &structpb.Struct{}
			if err := protojson.Unmarshal([]byte(m.AccessLogFormat), labels); err != nil { // checked by api
				labels = istioJSONLogFormat
			}
		}
		format.Format = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: labels}
	}
	return fileAccessLog(path, format)
}

// textFormat is a text log format: Istio's default, or the given one ending in a
// newline (Istio adds it).
func textFormat(text string) *corev3.SubstitutionFormatString_TextFormatSource {
	if text == "" {
		text = istioLogFormat
	} else if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: text}}}
}

// fileAccessLog is a log written to path in format.
func fileAccessLog(path string, format *corev3.SubstitutionFormatString) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filev3.FileAccessLog{
			Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: format}})},
	}
}

// withFilter makes l log only what the CEL expression filter admits, if there is one.
func withFilter(l *accesslogv3.AccessLog, filter string) *accesslogv3.AccessLog {
	if filter != "" {
		l.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
			ExtensionFilter: &accesslogv3.ExtensionFilter{Name: celFilter,
				ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: filter})}}}}
	}
	return l
}

// istioJSONLogFormat is Istio's default JSON access log format.
var istioJSONLogFormat = func() *structpb.Struct {
	fields := map[string]string{
		"start_time": "%START_TIME%", "route_name": "%ROUTE_NAME%", "method": "%REQ(:METHOD)%",
		"path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%",
		"response_flags": "%RESPONSE_FLAGS%", "response_code_details": "%RESPONSE_CODE_DETAILS%",
		"connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%", "bytes_received": "%BYTES_RECEIVED%",
		"bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
		"x_forwarded_for": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%",
		"authority": "%REQ(:AUTHORITY)%", "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
		"upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
		"downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "requested_server_name": "%REQUESTED_SERVER_NAME%",
		"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, v := range fields {
		s.Fields[k] = structpb.NewStringValue(v)
	}
	return s
}()
