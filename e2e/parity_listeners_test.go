package e2e

import (
	"encoding/json"
	"fmt"
	_ "istio.io/api/envoy/extensions/stats" // istio-proxy's stats filter, for protoFields
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	uuidv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/request_id/uuid/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/peers"
)

// listenerParity adds to sniffParity (ports of no protocol, an HTTP port a TCP
// service shares, web's workload) a service of web's with HTTP and TCP ports, a
// gateway with HTTP, HTTPS and AUTO_PASSTHROUGH servers, and a service of a TCP and
// a UDP port (a UDP port has no listener).
const listenerParity = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web2}
spec:
  hosts: [web2.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8081, name: http, protocol: HTTP}, {number: 8083, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public}
spec:
  hosts: ["*"]
  gateways: [public]
  http: [{route: [{destination: {host: web2.default.svc.cluster.local, port: {number: 8081}}}]}]
---
` + udpServiceParity

// TestSameEnvoyListenerSettingsAsIstiod compares every listener a sidecar (web's,
// with inbound and outbound ports of every kind; also under TPROXY interception,
// and asking for exact connection balance) and a gateway (also with exact balance) get from istiod and
// from navarch by what is set on the listener itself (addresses, binding, listener
// filter timeouts, connections accepted per wake-up, the listener filters and their
// configuration)
// and on each of its HTTP connection managers, field by field. Left out: the filter
// chains (the other parity tests compare what they do), the connection managers'
// HTTP filters, routes, stat prefixes (TestSameStatNamesAsIstiod compares those),
// access logs (istiod's are istio-proxy's telemetry), and three fields istiod sets to Envoy's defaults
// (request_id_extension UUID with trace sampling, use_remote_address false, empty
// http_protocol_options).
func TestSameEnvoyListenerSettingsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1)+listenerParity)
	balanced := map[string]any{"INBOUND_LISTENER_EXACT_BALANCE": "true", "OUTBOUND_LISTENER_EXACT_BALANCE": "true"}
	for _, proxy := range []struct {
		what, id, app string
		extra         map[string]any
	}{
		{"web's sidecar", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", nil},
		{"web's sidecar under TPROXY", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", map[string]any{"INTERCEPTION_MODE": "TPROXY"}},
		{"web's sidecar with exact balance", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", balanced},
		{"a gateway", "router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "ingressgateway", nil},
		{"a gateway with exact balance", "router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "ingressgateway", balanced},
	} {
		t.Run(proxy.what, func(t *testing.T) {
			md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": proxy.app, "istio": proxy.app}}
			maps.Copy(md, proxy.extra)
			want := listenerSettings(t, envoyConfig(t, istiod, proxy.id, md).listeners)
			var got map[string]string
			eventually(t, 30*time.Second, "navarch's listeners", func() error {
				got = listenerSettings(t, envoyConfig(t, navarch, proxy.id, md).listeners)
				if len(got) < len(want) {
					return fmt.Errorf("%d listeners and connection managers, istiod has %d", len(got), len(want))
				}
				return nil
			})
			compareNamed(t, want, got)
			if len(want) < 4 {
				t.Errorf("istiod gave %d listeners and connection managers, this test expects more: %v", len(want), want)
			}
		})
	}
}

// listenerSettings describes each listener of ls (by name) and each of its HTTP
// connection managers ("<listener>/hcm<n>", in chain order, the default chain last)
// by what TestSameEnvoyListenerSettingsAsIstiod compares, as JSON.
func listenerSettings(t *testing.T, ls map[string]*listenerv3.Listener) map[string]string {
	t.Helper()
	out := map[string]string{}
	js := func(m proto.Message, drop ...string) string {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		for _, f := range drop {
			delete(fields, f)
		}
		b, err = json.Marshal(fields) // keys sorted
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, l := range ls {
		var filters []string
		for _, f := range l.ListenerFilters {
			filters = append(filters, f.Name+js(f.GetTypedConfig()))
		}
		out[name] = js(l, "filterChains", "defaultFilterChain", "listenerFilters") + fmt.Sprintf(" listener filters %v", filters)
		n := 0
		for _, fc := range append(slices.Clone(l.FilterChains), l.DefaultFilterChain) {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) != nil {
					continue
				}
				out[fmt.Sprintf("%s/hcm%d", name, n)] = js(&h, "httpFilters", "rds", "routeConfig", "statPrefix", "accessLog",
					"requestIdExtension", "useRemoteAddress", "httpProtocolOptions")
				n++
			}
		}
	}
	return out
}

// TestSameSidecarScopeAsIstiod gives both a Sidecar that imports the client's own
// namespace only and allows no unknown destinations (REGISTRY_ONLY), beside a
// service of another namespace, and compares which listeners and clusters the
// client's sidecar gets and what its listeners do with a connection to an unknown
// destination, to an HTTP port for an unknown host, and to the virtual outbound
// listener's own port (which would loop); and, for a client of another namespace
// (no Sidecar, every destination allowed), what its virtual outbound listener does
// with a connection to an unknown destination and to its own port.
func TestSameSidecarScopeAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: shop}
spec:
  hosts: [other.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.99}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`
	istiod, navarch := bothControlPlanes(t, bin, config)
	id := "sidecar~127.0.0.70~client-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "client"}}
	shop := "sidecar~127.0.0.71~client-0.shop~shop.svc.cluster.local" // no Sidecar: every destination
	shopMD := map[string]any{"NAMESPACE": "shop", "LABELS": map[string]any{"app": "client"}}
	describe := func(server string) []string {
		c := envoyConfig(t, server, id, md)
		out := []string{
			fmt.Sprint("listeners ", slices.Sorted(maps.Keys(c.listeners))),
			fmt.Sprint("clusters ", slices.Sorted(maps.Keys(c.clusters))),
		}
		open := envoyConfig(t, server, shop, shopMD).listeners["virtualOutbound"]
		for _, port := range []uint32{5555, 15001} {
			out = append(out, fmt.Sprintf("shop's virtualOutbound:%d: %s", port, chainDoes(t, chainFor(open, "10.1.2.3", port, probe{}), nil)))
		}
		for _, probe := range []struct {
			listener string
			port     uint32
			p        probe
		}{
			{"virtualOutbound", 5555, probe{}},
			{"virtualOutbound", 15001, probe{}},
			{"0.0.0.0_8081", 8081, probe{}},
			{"0.0.0.0_8081", 8081, probe{http: "http/1.1"}},
		} {
			fc := chainFor(c.listeners[probe.listener], "10.1.2.3", probe.port, probe.p)
			out = append(out, fmt.Sprintf("%s:%d %s: %s", probe.listener, probe.port, probe.p, chainDoes(t, fc, nil)))
		}
		return out
	}
	want := compareListings(t, describe, istiod, navarch)
	if all := strings.Join(want, "\n"); strings.Contains(all, "other.shop") || !strings.Contains(all, "BlackHoleCluster") {
		t.Errorf("istiod's configuration is not scoped as this test expects:\n%s", all)
	}
}

// TestSameGatewayClustersAsIstiod compares a gateway's clusters (clusterSummaries):
// which there are, BlackHoleCluster only of the special ones, and the SNI-DNAT
// clusters of the services its AUTO_PASSTHROUGH server forwards, which reach the
// service's endpoints without TLS of their own (the clients' mTLS passes through).
func TestSameGatewayClustersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1)+listenerParity)
	id := "router~127.0.0.90~ingress-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}}
	want := clusterSummaries(envoyConfig(t, istiod, id, md).clusters)
	var got map[string]string
	eventually(t, 30*time.Second, "navarch's gateway clusters", func() error {
		if got = clusterSummaries(envoyConfig(t, navarch, id, md).clusters); len(got) < len(want) {
			return fmt.Errorf("%d clusters, istiod has %d", len(got), len(want))
		}
		return nil
	})
	compareNamed(t, want, got)
	if !slices.ContainsFunc(slices.Collect(maps.Keys(want)), func(n string) bool { return strings.HasPrefix(n, "outbound_.") }) {
		t.Errorf("istiod gave the gateway no SNI-DNAT cluster, which this test expects: %v", slices.Sorted(maps.Keys(want)))
	}
}

// TestSameVMSidecarAsIstiod compares what a sidecar without traffic capture (a VM's:
// INTERCEPTION_MODE NONE) gets under a Sidecar that binds an ingress port to the
// application's loopback address, an egress port to 127.0.0.1 (captureMode NONE) and
// HTTP to a unix domain socket,
// from istiod and from navarch: which listeners and clusters there are, each
// listener's and connection manager's settings (listenerSettings), and the outbound
// clusters (clusterSummaries); and the same for a dual-stack VM.
func TestSameVMSidecarAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1)+listenerParity+`---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 8081, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:18081
    captureMode: NONE
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./*"]
  - port: {number: 7443, protocol: HTTP_PROXY, name: proxy}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./*"]
  - port: {number: 0, protocol: HTTP, name: uds}
    bind: unix:///var/run/app/egress.sock
    captureMode: NONE
    hosts: ["./*"]
  - hosts: ["./*"]
`)
	id := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}, "INTERCEPTION_MODE": "NONE", "HTTP_PROXY_PORT": "15080"}
	describeAs := func(md map[string]any) func(server string) map[string]string {
		return func(server string) map[string]string {
			c := envoyConfig(t, server, id, md)
			out := listenerSettings(t, c.listeners)
			maps.Copy(out, clusterSummaries(c.clusters))
			return out
		}
	}
	want := compareDescribed(t, "VM sidecar configuration", istiod, navarch, describeAs(md))
	// A dual-stack VM: the listeners it binds on its default loopback address also
	// bind ::1, those on a Sidecar's bind do not.
	dual := maps.Clone(md)
	dual["INSTANCE_IPS"] = "127.0.0.66,fd00::66"
	if wantDual := compareDescribed(t, "dual-stack VM sidecar configuration", istiod, navarch, describeAs(dual)); !strings.Contains(wantDual["127.0.0.1_15080"], `"::1"`) {
		t.Errorf("istiod's dual-stack HTTP proxy listener has no address on ::1, which this test expects: %s", wantDual["127.0.0.1_15080"])
	}
	// The HTTP proxy ports (the Sidecar's HTTP_PROXY egress listener, the proxy's
	// HTTP_PROXY_PORT) and the unix socket: besides the listeners, compared above, the route
	// configuration each routes by and its virtual hosts, a service port each.
	// istiod's ignore the port in matching, which leaves every port but 80
	// unreachable through them; navarch's match it (xds/httpproxy.go).
	for listener, route := range map[string]string{"127.0.0.1_7443": "7443", "127.0.0.1_15080": "http_proxy",
		"unix:///var/run/app/egress.sock_0": "unix:///var/run/app/egress.sock"} {
		if _, ok := want[listener]; !ok {
			t.Errorf("istiod has no HTTP proxy listener %s", listener)
			continue
		}
		vhosts := map[string][]string{}
		for _, server := range []string{istiod, navarch} {
			var h hcmv3.HttpConnectionManager
			l := envoyConfig(t, server, id, md).listeners[listener]
			if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
				t.Fatalf("%s: %s: %v", server, listener, err)
			}
			if got := h.GetRds().GetRouteConfigName(); got != route {
				t.Errorf("%s: %s routes by %q, want %q", server, listener, got, route)
			}
			for _, vh := range envoyRoutes(t, server, id, md, route).GetVirtualHosts() {
				if !slices.Equal(vh.Domains, []string{"*"}) {
					vhosts[server] = append(vhosts[server], vh.Name)
				}
			}
			slices.Sort(vhosts[server])
		}
		if len(vhosts[istiod]) == 0 || !slices.Equal(vhosts[istiod], vhosts[navarch]) {
			t.Errorf("route configuration %s: virtual hosts\n\tistiod:  %v\n\tnavarch: %v", route, vhosts[istiod], vhosts[navarch])
		}
	}
	if _, ok := want["127.0.0.1_9080"]; !ok {
		t.Errorf("istiod bound no egress listener on 127.0.0.1:9080, which this test expects: %v", slices.Sorted(maps.Keys(want)))
	}
	if _, ok := want["unix:///var/run/app/egress.sock_0"]; !ok {
		t.Errorf("istiod built no listener on the egress unix socket, which this test expects: %v", slices.Sorted(maps.Keys(want)))
	}
}

// compareDescribed compares what describe makes of istiod's configuration and of
// navarch's (compareNamed), once navarch's has as many entries as istiod's: the node
// builds what was applied a moment after the apply returns. It returns istiod's.
func compareDescribed(t *testing.T, what, istiod, navarch string, describe func(server string) map[string]string) map[string]string {
	t.Helper()
	want := describe(istiod)
	var got map[string]string
	eventually(t, 30*time.Second, "navarch's "+what, func() error {
		if got = describe(navarch); len(got) < len(want) {
			return fmt.Errorf("%d entries, istiod's has %d", len(got), len(want))
		}
		return nil
	})
	compareNamed(t, want, got)
	return want
}

// compareNamed reports every name whose description differs between want (istiod's)
// and got (navarch's), or that only one of them has.
func compareNamed(t *testing.T, want, got map[string]string) {
	t.Helper()
	names := maps.Clone(want)
	maps.Copy(names, got)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if got[name] != want[name] {
			t.Errorf("%s:\n\tistiod:  %s\n\tnavarch: %s", name, want[name], got[name])
		}
	}
}

// TestSameHTTPFilterOrderAsIstiod compares the HTTP filters of a sidecar's outbound
// connection manager, its inbound one and a gateway's, from istiod and from navarch:
// their order and the configuration of each, istio-proxy's own (metadata exchange,
// ALPN override, Istio's stats) included. It does so with Istio's default mesh
// config (no metrics), and with metrics counted by Prometheus (the mesh config's
// default provider) under Telemetries of the root namespace and the proxies'
// namespace that override metrics and their tags by side, and a ProxyConfig that
// keeps metadata exchange headers in the mesh.
func TestSameHTTPFilterOrderAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	base := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity
	for _, sc := range []struct {
		name, config string
		proxyConfig  map[string]any
		stats        bool // whether every connection manager counts Istio's metrics
	}{
		{name: "Istio's defaults", config: base},
		{name: "metrics", config: base + "---\n" + meshConfigMap("defaultProviders: {metrics: [prometheus]}") + telemetryMetrics,
			proxyConfig: map[string]any{"proxyHeaders": map[string]any{"metadataExchangeHeaders": map[string]any{"mode": "IN_MESH"}}}, stats: true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, sc.config)
			for _, c := range []struct {
				id, app, listener, ip string
				port                  uint32
			}{
				{"sidecar~127.0.0.70~client-0.default~default.svc.cluster.local", "client", "0.0.0.0_8081", "10.1.2.3", 8081},
				{"sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", "virtualInbound", "127.0.0.66", 8081},
				{"router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "ingressgateway", "0.0.0.0_80", "10.1.2.3", 80},
			} {
				md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": c.app, "istio": c.app}}
				if sc.proxyConfig != nil {
					md["PROXY_CONFIG"] = sc.proxyConfig
				}
				filters := func(server string) []*hcmv3.HttpFilter {
					return httpManagerFor(t, server, envoyConfig(t, server, c.id, md).listeners[c.listener], c.ip, c.port).HttpFilters
				}
				described := func(fs []*hcmv3.HttpFilter) (order []string, config map[string]string) {
					config = map[string]string{}
					for _, f := range fs {
						order = append(order, f.Name)
						config[c.listener+" "+f.Name] = fmt.Sprint(protoFields(t, f, regexp.MustCompile(`^$`), nil))
					}
					return order, config
				}
				wantOrder, wantConfig := described(filters(istiod))
				gotOrder, gotConfig := described(filters(navarch))
				if !slices.Equal(gotOrder, wantOrder) {
					t.Errorf("%s: HTTP filters in the order %v, istiod's %v", c.listener, gotOrder, wantOrder)
				}
				if slices.Contains(wantOrder, "istio.stats") != sc.stats {
					t.Errorf("%s: istiod's HTTP filters %v, want Istio's stats counted: %v", c.listener, wantOrder, sc.stats)
				}
				compareNamed(t, wantConfig, gotConfig)
			}
		})
	}
}

// TestSameNetworkFiltersAsIstiod compares the network filters of a sidecar's and a
// gateway's chains, from istiod and from navarch, under Istio's metrics
// (telemetryMetrics): their order, and the configuration of each but the HTTP
// connection manager (TestSameHTTPFilterOrderAsIstiod's). A client's outbound TCP
// port, passthrough and loop-breaking chains; a server's inbound TCP port in
// plaintext and mTLS, its HTTP port, passthrough and loop-breaking chains; a
// gateway's TCP server, mTLS server and AUTO_PASSTHROUGH chains. Metadata exchange
// goes on the inbound side and on a gateway's mTLS servers, Istio's stats before
// every TCP proxy.
func TestSameNetworkFiltersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + tcpGatewayParity +
		"---\n" + meshConfigMap("defaultProviders: {metrics: [prometheus]}") + telemetryMetrics
	istiod, navarch := bothControlPlanes(t, bin, config)
	const (
		client  = "sidecar~127.0.0.70~client-0.default~default.svc.cluster.local"
		web     = "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
		gateway = "router~127.0.0.90~ingress-0.default~default.svc.cluster.local"
	)
	labels := map[string]string{client: "client", web: "web", gateway: "ingressgateway"}
	mesh := probe{tls: true, alpn: []string{"istio-peer-exchange", "istio"}}
	type chain struct {
		id, listener, ip string
		port             uint32
		probe            probe
	}
	chains := []chain{
		{client, "0.0.0.0_8083", "127.0.0.66", 8083, probe{}},
		{client, "virtualOutbound", "10.1.2.3", 5555, probe{}},
		{client, "virtualOutbound", "127.0.0.70", 15001, probe{}},
		{web, "virtualInbound", "127.0.0.66", 8083, probe{}},
		{web, "virtualInbound", "127.0.0.66", 8083, mesh},
		{web, "virtualInbound", "127.0.0.66", 8081, probe{http: "http/1.1"}},
		{web, "virtualInbound", "127.0.0.66", 5555, probe{}},
		{web, "virtualInbound", "127.0.0.66", 5555, mesh},
		{web, "virtualInbound", "127.0.0.66", 15006, probe{}},
	}
	describe := func(server string) map[string]string {
		out := map[string]string{}
		add := func(where string, fs []*listenerv3.Filter) {
			var names []string
			for _, f := range fs {
				names = append(names, f.Name)
				if f.Name != "envoy.filters.network.http_connection_manager" {
					out[where+" "+f.Name] = fmt.Sprint(protoFields(t, f, regexp.MustCompile(`^$`), nil))
				}
			}
			out[where] = strings.Join(names, ",")
		}
		configs := map[string]envoyView{}
		for id, app := range labels {
			configs[id] = envoyConfig(t, server, id, map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": app, "istio": app}})
		}
		for _, c := range chains {
			where := fmt.Sprintf("%s %s %s:%d %v", labels[c.id], c.listener, c.ip, c.port, c.probe)
			add(where, chainFor(configs[c.id].listeners[c.listener], c.ip, c.port, c.probe).GetFilters())
		}
		for _, name := range []string{"0.0.0.0_15443", "0.0.0.0_31400", "0.0.0.0_15444"} {
			l := configs[gateway].listeners[name]
			if l == nil {
				out["gateway "+name] = "no listener"
				continue
			}
			for _, fc := range append(l.FilterChains, l.DefaultFilterChain) {
				if fc != nil {
					add(fmt.Sprintf("gateway %s sni=%v", name, fc.GetFilterChainMatch().GetServerNames()), fc.Filters)
				}
			}
		}
		return out
	}
	want := compareDescribed(t, "network filters", istiod, navarch, describe)
	for _, where := range []string{"web virtualInbound 127.0.0.66:8083 bytes", "client 0.0.0.0_8083 127.0.0.66:8083 bytes"} {
		if !strings.Contains(want[where], "istio.stats") {
			t.Errorf("%s: istiod's network filters %q count no metrics, which this test expects", where, want[where])
		}
	}
}

// tcpGatewayParity is a gateway with a TCP server and an mTLS one (ISTIO_MUTUAL),
// both routed to web2's TCP port.
const tcpGatewayParity = `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 15444, name: tls-mesh, protocol: TLS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-public}
spec:
  hosts: ["*"]
  gateways: [tcp-public]
  tcp: [{route: [{destination: {host: web2.default.svc.cluster.local, port: {number: 8083}}}]}]
`

// httpManagerFor returns the HTTP connection manager of the chain of listener l
// (server's) that plaintext HTTP/1.1 to ip:port takes; none fails the test.
func httpManagerFor(t *testing.T, server string, l *listenerv3.Listener, ip string, port uint32) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, f := range chainFor(l, ip, port, probe{http: "http/1.1"}).GetFilters() {
		var h hcmv3.HttpConnectionManager
		if f.GetTypedConfig().UnmarshalTo(&h) == nil {
			return &h
		}
	}
	t.Fatalf("%s: no HTTP connection manager for HTTP to %s:%d on %s", server, ip, port, l.GetName())
	return nil
}

// telemetryMetrics overrides metrics: the root namespace's Telemetry every 15 s
// for TCP, a tag more on requests counted on the client side, request durations not
// counted on the server side, a tag less everywhere on request sizes, a tag more on
// every metric of the server side; the default
// namespace's adds a custom metric's tag, re-counts request durations on the server
// side and turns off every metric of the client side, but request counts.
const telemetryMetrics = `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 15s
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides: {request_host: {value: request.host}}
    - match: {metric: REQUEST_DURATION, mode: SERVER}
      disabled: true
    - match: {metric: REQUEST_SIZE}
      tagOverrides: {response_flags: {operation: REMOVE}}
    - match: {mode: SERVER}
      tagOverrides: {mesh_id: {value: "'m1'"}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: default-metrics, namespace: default}
spec:
  metrics:
  - overrides:
    - match: {customMetric: my_metric}
      tagOverrides: {team: {value: "'payments'"}}
    - match: {metric: REQUEST_DURATION, mode: SERVER}
      disabled: false
    - match: {metric: ALL_METRICS, mode: CLIENT}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
`

// TestSameSidecarEgressPortAsIstiod gives a client a Sidecar whose egress listener
// on TCP port 3306 imports db (which listens on 3307 only), cache2 (6379 and 6380)
// and web (8080), and whose egress listener on HTTP port 9091 imports db and api
// (9080), beside the catch-all egress listener, and compares which listeners the
// client gets and what a connection to each service's address on 3306 does. An
// egress listener's port serves the services it imports that have that port, and
// no other: no service here has 3306 or 9091, so neither has a listener (istiod
// remaps no port to a service's other one).
func TestSameSidecarEgressPortAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [10.9.0.20]
  location: MESH_INTERNAL
  ports: [{number: 3307, name: tcp-mysql, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.21}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache2}
spec:
  hosts: [cache2.default.svc.cluster.local]
  addresses: [10.9.0.21]
  location: MESH_INTERNAL
  ports: [{number: 6379, name: tcp-a, protocol: TCP}, {number: 6380, name: tcp-b, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.22}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 3306, protocol: TCP, name: tcp-db}
    hosts: [./db.default.svc.cluster.local, ./cache2.default.svc.cluster.local, ./web.default.svc.cluster.local]
  - port: {number: 9091, protocol: HTTP, name: http-any}
    hosts: [./db.default.svc.cluster.local, ./api.default.svc.cluster.local]
  - hosts: ["./*"]
`
	istiod, navarch := bothControlPlanes(t, bin, config)
	id := "sidecar~127.0.0.70~client-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "client"}}
	describe := func(server string) []string {
		c := envoyConfig(t, server, id, md)
		out := []string{fmt.Sprint("listeners ", slices.Sorted(maps.Keys(c.listeners)))}
		for _, dst := range []struct{ listener, ip string }{
			{"10.9.0.20_3306", "10.9.0.20"}, {"10.9.0.21_3306", "10.9.0.21"}, {"10.9.0.8_3306", "10.9.0.8"}, {"0.0.0.0_3306", "10.1.2.3"},
		} {
			l := c.listeners[dst.listener]
			if l == nil {
				out = append(out, dst.listener+": none")
				continue
			}
			out = append(out, fmt.Sprintf("%s %s:3306: %s", dst.listener, dst.ip, chainDoes(t, chainFor(l, dst.ip, 3306, probe{}), nil)))
		}
		return out
	}
	want := compareListings(t, describe, istiod, navarch)
	if !strings.Contains(want[0], "10.9.0.20_3307") {
		t.Errorf("istiod gave the client no listener of db's own port, which this test expects: %s", want[0])
	}
}

// compareListings compares, line by line, what describe says of istiod's
// configuration and of navarch's, once navarch's first line (the listeners there are)
// is istiod's, and returns istiod's.
func compareListings(t *testing.T, describe func(server string) []string, istiod, navarch string) []string {
	t.Helper()
	want := describe(istiod)
	var got []string
	eventually(t, 30*time.Second, "navarch's listeners", func() error {
		if got = describe(navarch); !slices.Equal(got[:1], want[:1]) {
			return fmt.Errorf("listeners %v, istiod's %v", got[0], want[0])
		}
		return nil
	})
	for i := range max(len(got), len(want)) {
		if at(got, i) != at(want, i) {
			t.Errorf("\n\tistiod:  %s\n\tnavarch: %s", at(want, i), at(got, i))
		}
	}
	return want
}

// TestSameTracingAsIstiod compares the tracing of a sidecar's outbound and inbound
// connection managers and a gateway's, from istiod and from navarch, under a zipkin
// provider the mesh config names by default and a Telemetry that samples the
// client side at 10% and adds tags, and two that select one workload (both apply,
// the later overriding): one takes Istio's own tags off its server side, the other
// samples it at 25%; its ProxyConfig names tags of its own. The provider's
// configuration, sampling, and the span tags, Istio's own (the workload's canonical
// service and revision, mesh, namespace, cluster, dry-run policies) and the
// ProxyConfig's (where Telemetry names none) included.
func TestSameTracingAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + "---\n" +
		meshConfigMap(`{defaultProviders: {tracing: [zipkin]}, extensionProviders: [{name: zipkin, zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}}]}`) + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9411, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.99}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: traces, namespace: default}
spec:
  tracing:
  - match: {mode: CLIENT}
    randomSamplingPercentage: 10
    customTags:
      team: {literal: {value: payments}}
      agent: {header: {name: user-agent, defaultValue: none}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web-traces, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  tracing:
  - match: {mode: SERVER}
    enableIstioTags: false
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web-traces-sampled, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  tracing:
  - randomSamplingPercentage: 25
`
	istiod, navarch := bothControlPlanes(t, bin, config)
	compareTracing(t, istiod, navarch, []tracingCase{
		{"sidecar~127.0.0.70~client-0.default~default.svc.cluster.local", "0.0.0.0_8081", "10.1.2.3",
			map[string]any{"app": "client", "service.istio.io/canonical-name": "client", "service.istio.io/canonical-revision": "v7"}, 8081, nil, "", "", nil},
		{"sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "virtualInbound", "127.0.0.66", map[string]any{"app": "web"}, 8081,
			map[string]any{"tracing": map[string]any{"customTags": map[string]any{
				"zone": map[string]any{"literal": map[string]any{"value": "z1"}},
				"pod":  map[string]any{"environment": map[string]any{"name": "POD_NAME", "defaultValue": "?"}},
				"ua":   map[string]any{"header": map[string]any{"name": "user-agent"}},
			}}}, "", "", nil},
		{"router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "0.0.0.0_80", "10.1.2.3", map[string]any{"istio": "ingressgateway"}, 80, nil, "", "", nil},
	})
}

// TestSameTracingProvidersAsIstiod compares, from istiod and from navarch, the
// outbound tracing of sidecars each of which a Telemetry sends to another
// provider: datadog (sampling at random, not by request id) and opentelemetry
// (which name spans by the node's cluster, so two sidecars of other clusters are
// compared), skywalking, and zipkin with W3C
// propagation for istio-proxies of several releases (1.27, before the trace context
// option; 1.28, before the collector service; 1.29, before
// disableContextPropagation; 1.30), a Telemetry turning context propagation off
// and a formatted tag (1.29 on); and opentelemetry under OpenTelemetry's semantic
// conventions, which names spans by the workload's annotation, labels, workload or
// pod, with resource detectors; and opentelemetry to Dynatrace with its sampler.
func TestSameTracingProvidersAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	collector := func(name string, port int, protocol string) string {
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: observability}
spec:
  hosts: [%[1]s.observability.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: %[2]d, name: %[3]s, protocol: %[4]s}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.98}]
`, name, port, strings.ToLower(protocol), protocol)
	}
	telemetryFor := func(app, spec string) string {
		return fmt.Sprintf(`---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: %[1]s, namespace: default}
spec:
  selector: {matchLabels: {app: %[1]s}}
  tracing: [%[2]s]
`, app, spec)
	}
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + "---\n" +
		meshConfigMap(`{extensionProviders: [
  {name: dd, datadog: {service: datadog.observability.svc.cluster.local, port: 8126, maxTagLength: 99}},
  {name: sky, skywalking: {service: skywalking.observability.svc.cluster.local, port: 11800}},
  {name: otel, opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}},
  {name: zipkin, zipkin: {service: zipkin.observability.svc.cluster.local, port: 9411, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}},
  {name: sem, opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317, serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS, resourceDetectors: {dynatrace: {}}}},
  {name: dt, opentelemetry: {service: dynatrace.observability.svc.cluster.local, port: 8443,
    http: {path: /api/v2/otlp/v1/traces, timeout: 3s, headers: [{name: Authorization, value: "Api-Token t"}]},
    dynatraceSampler: {tenant: abc, clusterId: 1234, rootSpansPerMinute: 500}}}]}`) +
		collector("datadog", 8126, "HTTP") + collector("skywalking", 11800, "GRPC") + collector("otel", 4317, "GRPC") + collector("zipkin", 9411, "HTTP") + collector("dynatrace", 8443, "HTTP") +
		telemetryFor("dd", `{providers: [{name: dd}], useRequestIdForTraceSampling: false}`) + telemetryFor("sky", `{providers: [{name: sky}]}`) +
		telemetryFor("otel", `{providers: [{name: otel}]}`) + telemetryFor("sem", `{providers: [{name: sem}]}`) +
		telemetryFor("dt", `{providers: [{name: dt}], randomSamplingPercentage: 10}`) +
		telemetryFor("zip", `{providers: [{name: zipkin}], disableContextPropagation: true, customTags: {route: {formatter: {value: "%ROUTE_NAME%"}}}}`)
	istiod, navarch := bothControlPlanes(t, bin, config)
	sidecar := func(n int, app, cluster, version string) tracingCase {
		return tracingCase{fmt.Sprintf("sidecar~127.0.0.%d~%s-%d.default~default.svc.cluster.local", 70+n, app, n), "0.0.0.0_8081", "10.1.2.3",
			map[string]any{"app": app}, 8081, nil, cluster, version, nil}
	}
	semantic := func(n int, labels, md map[string]any) tracingCase {
		c := sidecar(n, "sem", "sem.default", "")
		maps.Copy(c.labels, labels)
		c.metadata = md
		return c
	}
	got := compareTracing(t, istiod, navarch, []tracingCase{
		sidecar(0, "dd", "dd.default", ""),
		sidecar(1, "dd", "other.default", ""),
		sidecar(2, "sky", "sky.default", ""),
		sidecar(3, "otel", "otel.default", ""),
		sidecar(4, "otel", "", ""),
		sidecar(5, "zip", "zip.default", "1.27.3"),
		sidecar(6, "zip", "zip.default", "1.28.1"),
		sidecar(7, "zip", "zip.default", "1.29.0"),
		sidecar(8, "zip", "zip.default", "1.30.0"),
		semantic(9, map[string]any{"app.kubernetes.io/name": "nm"}, map[string]any{"ANNOTATIONS": map[string]any{"resource.opentelemetry.io/service.name": "checkout"}}),
		semantic(10, map[string]any{"app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"}, nil),
		semantic(11, nil, map[string]any{"WORKLOAD_NAME": "sem-deploy"}),
		semantic(12, nil, nil),
		sidecar(13, "dt", "dt.default", ""),
	})
	if got["provider"] != 14 {
		t.Errorf("istiod traced %v: the comparison is not what this test means it to be", got)
	}
}

// TestSameLegacyTracingAsIstiod compares tracing where no provider is named, which
// Envoy sends to its bootstrap's tracer: Istio's legacy tracing (no Telemetry
// traces, the mesh config's enableTracing on by default) on a sidecar's outbound
// and a gateway's connection managers, also under a ProxyConfig's sampling, span
// tags, maxPathTagLength and enableIstioTags; and none on web's server side, which a
// Telemetry samples without naming a provider (turning tracing off there, in
// istiod), nor anywhere with enableTracing false.
func TestSameLegacyTracingAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web-traces, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  tracing:
  - match: {mode: SERVER}
    randomSamplingPercentage: 30
`
	client := map[string]any{"app": "client", "service.istio.io/canonical-name": "client"}
	cases := []tracingCase{
		{"sidecar~127.0.0.70~client-0.default~default.svc.cluster.local", "0.0.0.0_8081", "10.1.2.3", client, 8081, nil, "", "", nil},
		{"sidecar~127.0.0.71~client-1.default~default.svc.cluster.local", "0.0.0.0_8081", "10.1.2.3", client, 8081,
			map[string]any{"tracing": map[string]any{"sampling": 7, "maxPathTagLength": 99, "enableIstioTags": false, "customTags": map[string]any{
				"zone": map[string]any{"literal": map[string]any{"value": "z1"}},
			}}}, "", "", nil},
		{"sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "virtualInbound", "127.0.0.66", map[string]any{"app": "web"}, 8081, nil, "", "", nil},
		{"router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "0.0.0.0_80", "10.1.2.3", map[string]any{"istio": "ingressgateway"}, 80, nil, "", "", nil},
	}
	t.Run("enableTracing by default", func(t *testing.T) {
		istiod, navarch := bothControlPlanes(t, bin, config)
		if got := compareTracing(t, istiod, navarch, cases); got["bootstrap's"] != 3 || got["none"] != 1 {
			t.Errorf("istiod traced %v: the comparison is not what this test means it to be", got)
		}
	})
	t.Run("enableTracing false", func(t *testing.T) {
		istiod, navarch := bothControlPlanes(t, bin, config+"---\n"+meshConfigMap(`{enableTracing: false}`))
		if got := compareTracing(t, istiod, navarch, cases[:2]); got["none"] != 2 {
			t.Errorf("istiod traced %v: the comparison is not what this test means it to be", got)
		}
	})
}

// tracingCase is a proxy (node id, labels, ProxyConfig) and the connection manager
// of one of its listeners (by name, and the destination of a connection to it);
// optionally, its node's cluster (istio-agent's service cluster) and its
// istio-proxy release (else istioProxyVersion).
type tracingCase struct {
	id, listener, ip string
	labels           map[string]any
	port             uint32
	proxyConfig      map[string]any
	cluster, version string
	metadata         map[string]any // more node metadata
}

// compareTracing compares the tracing of each case's connection manager from
// istiod and from navarch, field by field, and counts istiod's by whether it has a
// provider ("provider", "bootstrap's" or "none").
func compareTracing(t *testing.T, istiod, navarch string, cases []tracingCase) map[string]int {
	t.Helper()
	kinds := map[string]int{}
	for _, c := range cases {
		md := map[string]any{"NAMESPACE": "default", "LABELS": c.labels, "MESH_ID": "mesh1", "CLUSTER_ID": "Kubernetes"}
		if c.proxyConfig != nil {
			md["PROXY_CONFIG"] = c.proxyConfig
		}
		if c.version != "" {
			md["ISTIO_VERSION"] = c.version
		}
		maps.Copy(md, c.metadata)
		withCluster := func(n *corev3.Node) { n.Cluster = c.cluster }
		tracing := func(server string) map[string]string {
			h := httpManagerFor(t, server, envoyConfig(t, server, c.id, md, withCluster).listeners[c.listener], c.ip, c.port)
			if h.Tracing == nil {
				return map[string]string{"tracing": "none"}
			}
			fields := protoFields(t, h.Tracing, regexp.MustCompile(`^$`), nil)
			// Whether the request id decides sampling: istiod always says, navarch
			// only when not Envoy's default (yes).
			sampling := true
			if ext := h.GetRequestIdExtension(); ext != nil {
				var u uuidv3.UuidRequestIdConfig
				if err := ext.GetTypedConfig().UnmarshalTo(&u); err != nil {
					t.Fatal(err)
				}
				sampling = u.UseRequestIdForTraceSampling == nil || u.UseRequestIdForTraceSampling.Value
			}
			fields["requestIdExtension.useRequestIdForTraceSampling"] = strconv.FormatBool(sampling)
			return fields
		}
		want := tracing(istiod)
		// The node builds what was applied a moment after the apply returns.
		eventually(t, 30*time.Second, "navarch's listener "+c.listener, func() error {
			if envoyConfig(t, navarch, c.id, md, withCluster).listeners[c.listener] == nil {
				return fmt.Errorf("no listener %s yet", c.listener)
			}
			return nil
		})
		switch {
		case want["tracing"] == "none":
			kinds["none"]++
		case want["provider.name"] == "":
			kinds["bootstrap's"]++
		default:
			kinds["provider"]++
		}
		compareFields(t, map[string]map[string]string{c.id + " " + c.listener: want}, map[string]map[string]string{c.id + " " + c.listener: tracing(navarch)})
	}
	return kinds
}
