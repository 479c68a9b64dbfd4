package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
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
}
