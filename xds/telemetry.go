package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
)

// Telemetry's accessLogging becomes Envoy access logs, as in Istio: the mesh's
// Telemetry (root namespace, no selector), then the namespace's (no selector), then
// the oldest selecting the workload, each naming providers it turns on (with a CEL
// filter) or off; a level overrides the levels above it provider by provider. An
// entry's match mode says which side it logs: CLIENT is what a sidecar sends
// (outbound listeners) and what a gateway serves, SERVER what a sidecar receives
// (inbound chains). Access logs go on HTTP connection managers and TCP proxies.
//
// navarch has no mesh config and so no extension providers: it knows "envoy", Istio's
// built-in provider (a text log on the proxy's stdout in Istio's default format), which
// is also what an entry without providers uses. Another provider is reported and
// left out. Tracing and metrics settings are not translated. Proxyless gRPC gets no
// access logs (nor does it in Istio).

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

// accessLogs are a proxy's access logs for each side.
type accessLogs struct {
	client, server []*accesslogv3.AccessLog
}

// accessLogsFor returns the access logs of the proxy's class.
func accessLogsFor(ctx *Context) accessLogs {
	if ctx.Proxy.Generator == GeneratorGRPC {
		return accessLogs{}
	}
	return derived(ctx, "access-logs", func() accessLogs {
		levels := telemetries(ctx)
		reportUnknownProviders(ctx, levels)
		return accessLogs{client: buildAccessLogs(ctx, levels, telemetry.WorkloadMode_CLIENT),
			server: buildAccessLogs(ctx, levels, telemetry.WorkloadMode_SERVER)}
	})
}

// telemetries returns the Telemetries that apply to the proxy, mesh first, each
// with its name for reports.
func telemetries(ctx *Context) []*api.Resource {
	p := ctx.Proxy
	var workload, namespace, mesh *api.Resource
	for _, r := range selectedPolicies(ctx, api.Telemetry, p.Namespace, p.Labels) {
		sel := r.Spec.(*telemetry.Telemetry).GetSelector().GetMatchLabels()
		switch {
		case r.Meta.Namespace == p.Namespace && len(sel) > 0:
			if workload == nil {
				workload = r
			}
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
	for _, r := range []*api.Resource{mesh, namespace, workload} {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// reportUnknownProviders reports, once per build, every access log provider of the
// levels other than the one navarch knows, whichever side its entry logs.
func reportUnknownProviders(ctx *Context, levels []*api.Resource) {
	for _, r := range levels {
		for i, l := range r.Spec.(*telemetry.Telemetry).AccessLogging {
			for _, p := range l.Providers {
				if p.Name != envoyLogProvider {
					ctx.skip(fmt.Sprintf("Telemetry %s/%s spec.accessLogging[%d]", r.Meta.Namespace, r.Meta.Name, i),
						fmt.Errorf("provider %q: navarch has no extension providers; %q (a text log on the proxy's stdout) is the one it knows", p.Name, envoyLogProvider))
				}
			}
		}
	}
}

// logSetting is what the levels say of one provider.
type logSetting struct {
	disabled bool
	filter   string
}

// buildAccessLogs merges the levels' accessLogging for one side into access logs.
func buildAccessLogs(ctx *Context, levels []*api.Resource, mode telemetry.WorkloadMode) []*accesslogv3.AccessLog {
	settings := map[string]logSetting{}
	var order []string
	for _, r := range levels {
		for _, l := range r.Spec.(*telemetry.Telemetry).AccessLogging {
			if m := l.GetMatch().GetMode(); m != telemetry.WorkloadMode_CLIENT_AND_SERVER && m != mode {
				continue
			}
			names := []string{envoyLogProvider}
			if len(l.Providers) > 0 {
				names = names[:0]
				for _, p := range l.Providers {
					names = append(names, p.Name)
				}
			}
			for _, name := range names {
				if name != envoyLogProvider {
					continue // reported by reportUnknownProviders
				}
				if _, seen := settings[name]; !seen {
					order = append(order, name)
				}
				settings[name] = logSetting{disabled: l.Disabled.GetValue(), filter: l.GetFilter().GetExpression()}
			}
		}
	}
	var out []*accesslogv3.AccessLog
	for _, name := range order {
		s := settings[name]
		if s.disabled {
			continue
		}
		out = append(out, fileAccessLog(s.filter))
	}
	return out
}

// fileAccessLog is the "envoy" provider's log: Istio's text format on stdout, only of
// what the CEL expression filter admits when there is one.
func fileAccessLog(filter string) *accesslogv3.AccessLog {
	l := &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filev3.FileAccessLog{
			Path: "/dev/stdout",
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: istioLogFormat}}}}},
		})},
	}
	if filter != "" {
		l.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
			ExtensionFilter: &accesslogv3.ExtensionFilter{Name: celFilter,
				ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: filter})}}}}
	}
	return l
}
