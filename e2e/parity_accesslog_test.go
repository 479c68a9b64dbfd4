package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/peers"
)

// accessLogProviders is a mesh config with Istio's log on stdout in JSON (its
// legacy setting) and three providers, and the collector the OpenTelemetry one
// sends to.
const accessLogProviders = `---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
    extensionProviders:
    - name: otel
      envoyOtelAls:
        service: otel.istio-system.svc.cluster.local
        port: 4317
        logName: mesh
        logFormat: {text: "%REQ(:PATH)% %RESPONSE_CODE%", labels: {path: "%REQ(:PATH)%"}}
    - name: json-file
      envoyFileAccessLog:
        path: /var/log/mesh.json
        logFormat: {labels: {path: "%REQ(:PATH)%", code: "%RESPONSE_CODE%"}}
    - name: text-file
      envoyFileAccessLog:
        path: /var/log/mesh.log
        logFormat: {text: "%START_TIME% %REQ(:PATH)%"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel, namespace: istio-system}
spec:
  hosts: [otel.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 4317, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.98}]
`

// accessLogTelemetry turns logs on for the mesh (Istio's own and the JSON file),
// and, in the default namespace, sends the server side's failures to the collector
// and logs the client side to the text file only.
const accessLogTelemetry = `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-logs, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}, {name: json-file}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: default-logs, namespace: default}
spec:
  accessLogging:
  - match: {mode: SERVER}
    providers: [{name: otel}]
    filter: {expression: "response.code >= 400"}
  - match: {mode: CLIENT}
    providers: [{name: text-file}]
`

// TestSameAccessLogsAsIstiod compares, field by field, the access logs of a
// sidecar's outbound and inbound chains (HTTP and TCP) and of a gateway's (HTTP and
// TCP) from istiod and from navarch: under the mesh config's accessLogFile alone
// (Istio's own log, in JSON), and under Telemetries that name providers of every
// kind navarch has (Istio's own log, file logs in JSON and text, OpenTelemetry),
// with a filter and by side; and under both, the Telemetry naming a provider for
// the server side only (the client side keeps the mesh config's log).
func TestSameAccessLogsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	base := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + tcpGatewayParity + accessLogProviders
	const (
		client  = "sidecar~127.0.0.70~client-0.default~default.svc.cluster.local"
		web     = "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
		gateway = "router~127.0.0.90~ingress-0.default~default.svc.cluster.local"
	)
	labels := map[string]string{client: "client", web: "web", gateway: "ingressgateway"}
	mesh := probe{tls: true, alpn: []string{"istio-peer-exchange", "istio"}}
	chains := []struct {
		id, listener, ip string
		port             uint32
		probe            probe
	}{
		{client, "0.0.0.0_8081", "10.1.2.3", 8081, probe{http: "http/1.1"}},
		{client, "0.0.0.0_8083", "127.0.0.66", 8083, probe{}},
		{client, "virtualOutbound", "10.1.2.3", 5555, probe{}},
		{web, "virtualInbound", "127.0.0.66", 8081, probe{http: "http/1.1"}},
		{web, "virtualInbound", "127.0.0.66", 8083, probe{}},
		{web, "virtualInbound", "127.0.0.66", 8083, mesh},
		{web, "virtualInbound", "127.0.0.66", 5555, probe{}},
		{gateway, "0.0.0.0_80", "10.1.2.3", 80, probe{http: "http/1.1"}},
		{gateway, "0.0.0.0_31400", "10.1.2.3", 31400, probe{}},
	}
	all := regexp.MustCompile(`^$`)
	for _, sc := range []struct{ name, config string }{
		{"the mesh config's log", base},
		{"Telemetry", base + accessLogTelemetry},
		{"the mesh config's log, and Telemetry for one side", base + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: server-logs, namespace: default}
spec:
  accessLogging: [{match: {mode: SERVER}, providers: [{name: text-file}]}]
`},
	} {
		t.Run(sc.name, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, sc.config)
			describe := func(server string) map[string]string {
				views := map[string]envoyView{}
				for id, app := range labels {
					views[id] = envoyConfig(t, server, id, map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": app, "istio": app}})
				}
				out := map[string]string{}
				for _, c := range chains {
					where := fmt.Sprintf("%s %s %s:%d %v", labels[c.id], c.listener, c.ip, c.port, c.probe)
					l := views[c.id].listeners[c.listener]
					if l == nil {
						out[where] = "no listener"
						continue
					}
					for i, al := range l.AccessLog {
						out[fmt.Sprintf("%s listener log[%d]", where, i)] = fmt.Sprint(protoFields(t, al, all, nil))
					}
					for _, f := range chainFor(l, c.ip, c.port, c.probe).GetFilters() {
						var h hcmv3.HttpConnectionManager
						var tp tcpv3.TcpProxy
						var logs []proto.Message
						switch {
						case f.GetTypedConfig().UnmarshalTo(&h) == nil:
							for _, al := range h.AccessLog {
								logs = append(logs, al)
							}
						case f.GetTypedConfig().UnmarshalTo(&tp) == nil:
							for _, al := range tp.AccessLog {
								logs = append(logs, al)
							}
							if tp.AccessLogOptions != nil {
								out[where+" "+f.Name+" options"] = fmt.Sprint(protoFields(t, tp.AccessLogOptions, all, nil))
							}
						}
						out[where+" "+f.Name] = fmt.Sprintf("%d logs", len(logs))
						for i, al := range logs {
							out[fmt.Sprintf("%s %s log[%d]", where, f.Name, i)] = fmt.Sprint(protoFields(t, al, all, nil))
						}
					}
				}
				return out
			}
			want := compareDescribed(t, "access logs", istiod, navarch, describe)
			logged := 0
			for k, v := range want {
				if strings.HasSuffix(k, "tcp_proxy") || strings.HasSuffix(k, "http_connection_manager") {
					if v != "0 logs" {
						logged++
					}
				}
			}
			if logged == 0 {
				t.Errorf("istiod logs nothing here, which this test expects it to: %v", want)
			}
		})
	}
}
