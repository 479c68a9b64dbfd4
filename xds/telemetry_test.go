package xds

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otellogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/navarch/navarch/registry"
)

// logFilter describes a proxy side's access logs: "" for none, "all" for one
// unfiltered log, else the CEL expression of its one filtered log.
func logFilter(t *testing.T, logs []*accesslogv3.AccessLog) string {
	t.Helper()
	switch {
	case len(logs) == 0:
		return ""
	case len(logs) > 1:
		t.Fatalf("%d access logs, want at most one", len(logs))
	case logs[0].Filter == nil:
		return "all"
	}
	var cel celv3.ExpressionFilter
	if err := logs[0].Filter.GetExtensionFilter().GetTypedConfig().UnmarshalTo(&cel); err != nil {
		t.Fatal(err)
	}
	return cel.Expression
}

// TestAccessLogging checks how the mesh's, a namespace's and a workload's Telemetry
// combine for each side of a proxy, and where the logs go in what a sidecar gets.
func TestAccessLogging(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "telemetry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	envoy := func(ns string, labels map[string]string) *Proxy {
		p := grpcProxy(ns, labels)
		p.Generator = ""
		return p
	}
	tests := []struct {
		name           string
		proxy          *Proxy
		client, server string
	}{
		{"orders: filtered client side, no server side", envoy("shop", map[string]string{"app": "orders"}), "response.code >= 400", ""},
		{"another shop workload: the namespace's", envoy("shop", map[string]string{"app": "web"}), "all", ""},
		{"another namespace: the mesh's", envoy("billing", nil), "all", "all"},
		{"proxyless gRPC: none", grpcProxy("billing", nil), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := accessLogsFor(newContext(snap, tt.proxy, "cluster.local", "istio-system"))
			if got := logFilter(t, logs.client); got != tt.client {
				t.Errorf("client side: %q, want %q", got, tt.client)
			}
			if got := logFilter(t, logs.server); got != tt.server {
				t.Errorf("server side: %q, want %q", got, tt.server)
			}
		})
	}

	orders := envoy("shop", map[string]string{"app": "orders"})
	sets, err := sidecarProfile().build(newContext(snap, orders, "cluster.local", "istio-system"))
	if err == nil || strings.Count(err.Error(), `provider "otel"`) != 1 {
		t.Fatalf("want the unknown provider reported once, got %v", err)
	}
	checkGolden(t, filepath.Join("testdata", "telemetry.sidecar.golden.yaml"), dump(t, sets))
	var outbound listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_8080"].Body.UnmarshalTo(&outbound); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := outbound.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if got := logFilter(t, hcm.AccessLog); got != "response.code >= 400" {
		t.Errorf("outbound HTTP listener: access log %q", got)
	}
	var tcpOut listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_5432"].Body.UnmarshalTo(&tcpOut); err != nil {
		t.Fatal(err)
	}
	var tp tcpv3.TcpProxy
	if err := tcpOut.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
		t.Fatal(err)
	}
	if got := logFilter(t, tp.AccessLog); got != "response.code >= 400" {
		t.Errorf("outbound TCP listener: access log %q", got)
	}

	// A provider navarch lacks is reported whichever side its entry logs.
	serverOnly := snapshotOf(t, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: servers-to-otel, namespace: shop}
spec:
  accessLogging: [{match: {mode: SERVER}, providers: [{name: otel}]}]
`)
	ctx := newContext(serverOnly, envoy("shop", nil), "cluster.local", "istio-system")
	accessLogsFor(ctx)
	if len(ctx.errs) != 1 || !strings.Contains(ctx.errs[0].Error(), `provider "otel"`) {
		t.Errorf("a server-side entry naming an unknown provider: reported %v", ctx.errs)
	}

	// Every Telemetry selecting a workload applies, the newer over the older.
	two := snapshotOf(t, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: orders-errors, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: orders-quiet-servers, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  accessLogging: [{match: {mode: SERVER}, disabled: true}]
`)
	logs := accessLogsFor(newContext(two, envoy("shop", map[string]string{"app": "orders"}), "cluster.local", "istio-system"))
	if got := logFilter(t, logs.client); got != "response.code >= 400" {
		t.Errorf("two Telemetries selecting the workload: client side %q, want the older's filter", got)
	}
	if got := logFilter(t, logs.server); got != "" {
		t.Errorf("two Telemetries selecting the workload: server side %q, want none (the newer's)", got)
	}
}

// describeLog is "path text|json <format>" of a file access log, with " if <cel>"
// when it is filtered.
func describeLog(t *testing.T, l *accesslogv3.AccessLog) string {
	t.Helper()
	switch l.Name {
	case "envoy.access_loggers.http_grpc":
		var g grpclogv3.HttpGrpcAccessLogConfig
		if err := l.GetTypedConfig().UnmarshalTo(&g); err != nil {
			t.Fatal(err)
		}
		return "http_grpc " + g.GetCommonConfig().GetLogName() + " " + g.GetCommonConfig().GetGrpcService().GetEnvoyGrpc().GetClusterName()
	case "envoy.access_loggers.open_telemetry":
		var o otellogv3.OpenTelemetryAccessLogConfig
		if err := l.GetTypedConfig().UnmarshalTo(&o); err != nil {
			t.Fatal(err)
		}
		var attrs []string
		for _, kv := range o.GetAttributes().GetValues() {
			attrs = append(attrs, kv.Key)
		}
		//lint:ignore SA1019 what navarch sends, as Istio does
		common := o.GetCommonConfig()
		return "open_telemetry " + common.GetGrpcService().GetEnvoyGrpc().GetClusterName() + " body " +
			strings.TrimSuffix(o.GetBody().GetStringValue(), "\n") + " attributes " + strings.Join(attrs, ",")
	}
	var f filev3.FileAccessLog
	if err := l.GetTypedConfig().UnmarshalTo(&f); err != nil {
		t.Fatal(err)
	}
	format := f.GetLogFormat()
	out := f.Path
	if text := format.GetTextFormatSource().GetInlineString(); text != "" {
		out += " text " + strings.TrimSuffix(text, "\n")
		if !strings.HasSuffix(text, "\n") {
			t.Errorf("text format %q does not end in a newline", text)
		}
	} else {
		keys := registry.SortedKeys(format.GetJsonFormat().AsMap())
		out += " json " + strings.Join(keys, ",")
	}
	if l.Filter != nil {
		out += " if " + logFilter(t, []*accesslogv3.AccessLog{l})
	}
	return out
}

// TestAccessLoggingByTheMeshConfig checks what the mesh config adds: providers,
// default providers, and its own access log where nothing else logs.
func TestAccessLoggingByTheMeshConfig(t *testing.T) {
	const providers = `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultProviders: {accessLogging: [json-file]}
    extensionProviders:
    - name: json-file
      envoyFileAccessLog: {path: /var/log/access.json, logFormat: {labels: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}}}
    - name: errors
      envoyFileAccessLog: {logFormat: {text: "%RESPONSE_CODE% %REQ(:PATH)%"}}
    - name: envoy
      envoyFileAccessLog: {path: /var/log/envoy.log}
`
	const istioText = "/dev/stdout text [%START_TIME%]"
	tests := []struct {
		name           string
		docs           []string
		client, server []string
		reported       string
	}{
		{name: "no mesh config, no Telemetry: none", docs: nil},
		{name: "the default provider everywhere", docs: []string{providers},
			client: []string{"/var/log/access.json json code,path"}, server: []string{"/var/log/access.json json code,path"}},
		// As in Istio, a filter applies to the providers its entry names.
		{name: "an entry without providers: the default one, unfiltered", docs: []string{providers, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{filter: {expression: "response.code >= 500"}}]}`},
			client: []string{"/var/log/access.json json code,path"},
			server: []string{"/var/log/access.json json code,path"}},
		{name: "an entry naming the default provider, filtered", docs: []string{providers, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{providers: [{name: json-file}], filter: {expression: "response.code >= 500"}}]}`},
			client: []string{"/var/log/access.json json code,path if response.code >= 500"},
			server: []string{"/var/log/access.json json code,path if response.code >= 500"}},
		{name: "named providers replace the default, one side off", docs: []string{providers, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  accessLogging:
  - providers: [{name: errors}, {name: envoy}]
  - {match: {mode: SERVER}, providers: [{name: errors}], disabled: true}`},
			client: []string{"/var/log/envoy.log text [%START_TIME%]", "/dev/stdout text %RESPONSE_CODE% %REQ(:PATH)%"}, // by provider name
			server: []string{"/var/log/envoy.log text [%START_TIME%]"}},
		{name: "turned off", docs: []string{providers, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{disabled: true}]}`}},
		{name: "a provider that is not a file log is reported", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {defaultProviders: {accessLogging: [prometheus, envoy]}}`},
			client: []string{istioText}, server: []string{istioText}, reported: `provider "prometheus": not an access log provider`},
		{name: "gRPC and OpenTelemetry access log services", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec:
  defaultProviders: {accessLogging: [als, otel]}
  extensionProviders:
  - {name: als, envoyHttpAls: {service: als.observability.svc.cluster.local, port: 9000}}
  - {name: otel, envoyOtelAls: {service: als.observability.svc.cluster.local, port: 4317, logFormat: {text: "%REQ(:PATH)%", labels: {code: "%RESPONSE_CODE%", a: b}}}}
  - {name: nowhere, envoyTcpAls: {service: missing.observability.svc.cluster.local, port: 9000}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: als, namespace: observability}
spec:
  hosts: [als.observability.svc.cluster.local]
  ports: [{number: 9000, name: grpc-als, protocol: GRPC}, {number: 4317, name: grpc-otel, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.8.1}]`, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{providers: [{name: als}, {name: otel}, {name: nowhere}]}]}`},
			client: []string{"http_grpc http_envoy_accesslog outbound|9000||als.observability.svc.cluster.local",
				"open_telemetry outbound|4317||als.observability.svc.cluster.local body %REQ(:PATH)% attributes a,code"},
			server: []string{"http_grpc http_envoy_accesslog outbound|9000||als.observability.svc.cluster.local",
				"open_telemetry outbound|4317||als.observability.svc.cluster.local body %REQ(:PATH)% attributes a,code"},
			reported: `provider "nowhere": service "missing.observability.svc.cluster.local" is not a service this proxy sees`},
		{name: "the built-in provider in the mesh config's encoding", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {accessLogEncoding: JSON, defaultProviders: {accessLogging: [envoy]}}`},
			client: []string{"/dev/stdout json authority,bytes_received,bytes_sent,connection_termination_details,downstream_local_address,downstream_remote_address,duration,method,path,protocol,request_id,requested_server_name,response_code,response_code_details,response_flags,route_name,start_time,upstream_cluster,upstream_host,upstream_local_address,upstream_service_time,upstream_transport_failure_reason,user_agent,x_forwarded_for"},
			server: []string{"/dev/stdout json authority,bytes_received,bytes_sent,connection_termination_details,downstream_local_address,downstream_remote_address,duration,method,path,protocol,request_id,requested_server_name,response_code,response_code_details,response_flags,route_name,start_time,upstream_cluster,upstream_host,upstream_local_address,upstream_service_time,upstream_transport_failure_reason,user_agent,x_forwarded_for"}},
		{name: "the mesh config's access log file", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {accessLogFile: /dev/stdout}`},
			client: []string{istioText}, server: []string{istioText}},
		{name: "the mesh config's access log file in JSON", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {accessLogFile: /tmp/a.log, accessLogEncoding: JSON, accessLogFormat: '{"method": "%REQ(:METHOD)%"}'}`},
			client: []string{"/tmp/a.log json method"}, server: []string{"/tmp/a.log json method"}},
		// As in Istio, side by side: the client side has no provider from
		// Telemetry, so it keeps the mesh config's log.
		{name: "the mesh config's access log file, and a Telemetry for the server side", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {accessLogFile: /tmp/a.log}`, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}]}]}`},
			client: []string{"/tmp/a.log text [%START_TIME%]"}, server: []string{istioText}},
		{name: "the mesh config's access log file, and a Telemetry turning the client side off", docs: []string{`
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {accessLogFile: /tmp/a.log}`, `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec: {accessLogging: [{match: {mode: CLIENT}, providers: [{name: envoy}], disabled: true}]}`},
			server: []string{"/tmp/a.log text [%START_TIME%]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := grpcProxy("shop", map[string]string{"app": "web"})
			p.Generator = ""
			ctx := newContext(snapshotOf(t, tt.docs...), p, "cluster.local", "istio-system")
			logs := accessLogsFor(ctx)
			for _, side := range []struct {
				name string
				got  []*accesslogv3.AccessLog
				want []string
			}{{"client", logs.client, tt.client}, {"server", logs.server, tt.server}} {
				var got []string
				for _, l := range side.got {
					d := describeLog(t, l)
					if i := strings.Index(d, "[%START_TIME%]"); i >= 0 {
						d = d[:i+len("[%START_TIME%]")] // Istio's text format
					}
					got = append(got, d)
				}
				if strings.Join(got, "\n") != strings.Join(side.want, "\n") {
					t.Errorf("%s side:\n%s\nwant:\n%s", side.name, strings.Join(got, "\n"), strings.Join(side.want, "\n"))
				}
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
}

// TestListenerAccessLogs: the virtual listeners and a gateway's carry the side's
// logs for connections no chain takes (NR), each with its own filter too, as
// istiod's; the mesh config's disableEnvoyListenerLog turns them off.
func TestListenerAccessLogs(t *testing.T) {
	const config = `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    accessLogFile: /dev/stdout
    DISABLE
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors, namespace: shop}
spec:
  accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]
`
	describe := func(logs []*accesslogv3.AccessLog) []string {
		var out []string
		for _, l := range logs {
			f := l.GetFilter()
			d := "nr=" + strings.Join(f.GetResponseFlagFilter().GetFlags(), ",")
			if and := f.GetAndFilter().GetFilters(); len(and) == 2 {
				d = "nr=" + strings.Join(and[0].GetResponseFlagFilter().GetFlags(), ",") + " and " + logFilter(t, []*accesslogv3.AccessLog{{Filter: and[1]}})
			}
			out = append(out, d)
		}
		return out
	}
	for _, tt := range []struct {
		disable        string
		client, server []string
	}{
		{"", []string{"nr=NR"}, []string{"nr=NR and response.code >= 400"}},
		{"disableEnvoyListenerLog: true", nil, nil},
	} {
		snap := snapshotOf(t, strings.Replace(config, "DISABLE", tt.disable, 1))
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator = ""
		logs := accessLogsFor(newContext(snap, p, "cluster.local", "istio-system"))
		if got := describe(logs.clientListener); !slices.Equal(got, tt.client) {
			t.Errorf("%q: client side listener logs %q, want %q", tt.disable, got, tt.client)
		}
		if got := describe(logs.serverListener); !slices.Equal(got, tt.server) {
			t.Errorf("%q: server side listener logs %q, want %q", tt.disable, got, tt.server)
		}
		if len(logs.client) != 1 || logs.client[0].Filter != nil {
			t.Errorf("%q: the connection managers' client side logs changed: %v", tt.disable, logs.client)
		}
	}
}
