package xds

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

const scopeServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: other}
spec:
  hosts: [billing.other.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: squid, namespace: egress}
spec:
  hosts: [squid.egress.svc.cluster.local]
  ports: [{number: 3128, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.3}]
`

// outboundScope is what an Envoy sidecar's outbound side does with what it does not
// know, and which hosts its port 80 routes.
type outboundScope struct {
	tcpFallback string   // the virtual outbound listener's cluster
	httpLast    string   // the name of the last virtual host of route configuration 80
	http502     bool     // whether that virtual host answers 502
	httpCluster string   // or the cluster it routes to
	hosts       []string // the other virtual hosts of route configuration 80
}

func scopeOf(t *testing.T, ns string, labels map[string]string, config ...string) (outboundScope, error) {
	t.Helper()
	p := grpcProxy(ns, labels)
	p.Generator = ""
	sets, err := sidecarProfile().build(newContext(snapshotOf(t, append([]string{scopeServices}, config...)...), p, "cluster.local", "istio-system"))
	var out outboundScope
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualOutbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var tcp tcpv3.TcpProxy
	if err := l.FilterChains[len(l.FilterChains)-1].Filters[0].GetTypedConfig().UnmarshalTo(&tcp); err != nil { // the catch-all
		t.Fatal(err)
	}
	out.tcpFallback = tcp.GetCluster()
	var rc routev3.RouteConfiguration
	if err := sets[RouteType].ByName["80"].Body.UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	last := rc.VirtualHosts[len(rc.VirtualHosts)-1]
	out.httpLast = last.Name
	out.http502 = last.Routes[0].GetDirectResponse().GetStatus() == 502
	out.httpCluster = last.Routes[0].GetRoute().GetCluster()
	for _, vh := range rc.VirtualHosts[:len(rc.VirtualHosts)-1] {
		out.hosts = append(out.hosts, vh.Domains[0])
	}
	return out, err
}

// TestSidecarScope checks which Sidecar scopes an Envoy sidecar (its namespace's,
// else the root namespace's default) and what its outboundTrafficPolicy makes of
// destinations the proxy does not know.
func TestSidecarScope(t *testing.T) {
	const registryOnlyMesh = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`
	const shopAllowsAll = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["*/*"]}]
`
	for _, tt := range []struct {
		name    string
		config  []string
		want    outboundScope
		wantErr string
	}{
		{name: "without a Sidecar everything is seen and unknown traffic passes through",
			want: outboundScope{tcpFallback: passthroughCluster, httpLast: "allow_any", httpCluster: passthroughCluster,
				hosts: []string{"billing.other.svc.cluster.local", "orders.shop.svc.cluster.local"}}},
		{name: "the root namespace's Sidecar is the mesh default: own namespace only, unknown traffic dropped",
			config: []string{registryOnlyMesh},
			want:   outboundScope{tcpFallback: blackHoleCluster, httpLast: "block_all", http502: true, hosts: []string{"orders.shop.svc.cluster.local"}}},
		{name: "a namespace's own Sidecar replaces the mesh default",
			config: []string{registryOnlyMesh, shopAllowsAll},
			want: outboundScope{tcpFallback: passthroughCluster, httpLast: "allow_any", httpCluster: passthroughCluster,
				hosts: []string{"billing.other.svc.cluster.local", "orders.shop.svc.cluster.local"}}},
		{name: "a selecting Sidecar wins over the namespace's",
			config: []string{shopAllowsAll, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: orders, namespace: shop}
spec:
  workloadSelector: {labels: {app: orders}}
  egress: [{hosts: ["other/*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`},
			want: outboundScope{tcpFallback: blackHoleCluster, httpLast: "block_all", http502: true, hosts: []string{"billing.other.svc.cluster.local"}}},
		{name: "an egress proxy takes traffic for unknown destinations",
			config: []string{`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*", "egress/*"]}]
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: squid.egress.svc.cluster.local, port: {number: 3128}}}
`},
			want: outboundScope{tcpFallback: "outbound|3128||squid.egress.svc.cluster.local", httpLast: "allow_any",
				httpCluster: "outbound|3128||squid.egress.svc.cluster.local", hosts: []string{"orders.shop.svc.cluster.local"}}},
		{name: "an egress proxy the proxy does not see is reported, and nothing goes out",
			config: []string{`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: squid.egress.svc.cluster.local, port: {number: 3128}}}
`},
			want:    outboundScope{tcpFallback: blackHoleCluster, httpLast: "block_all", http502: true, hosts: []string{"orders.shop.svc.cluster.local"}},
			wantErr: "Sidecar shop/default spec.outboundTrafficPolicy.egressProxy: squid.egress.svc.cluster.local:3128 is not a service port this proxy sees"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scopeOf(t, "shop", map[string]string{"app": "orders"}, tt.config...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected build error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("want error %q, got %v", tt.wantErr, err)
			}
			if got.tcpFallback != tt.want.tcpFallback || got.httpLast != tt.want.httpLast || got.http502 != tt.want.http502 ||
				got.httpCluster != tt.want.httpCluster || strings.Join(got.hosts, ",") != strings.Join(tt.want.hosts, ",") {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}

	// Gateways are not scoped by Sidecars.
	gw := &Proxy{ID: "router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local", Type: TypeRouter, Namespace: "istio-system"}
	if sc := sidecarFor(snapshotOf(t, registryOnlyMesh), gw, "istio-system"); sc != nil {
		t.Errorf("a gateway got Sidecar %s/%s", sc.Meta.Namespace, sc.Meta.Name)
	}
}

// TestSidecarIngress checks that a Sidecar's ingress listeners replace the ports of
// the services selecting the workload, each port's traffic going where its
// defaultEndpoint says, limited by its connection pool, TLS terminated where it says.
func TestSidecarIngress(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: vms}
spec:
  hosts: [app.vms.svc.cluster.local]
  ports: [{number: 5000, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: legacy}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: legacy, namespace: vms}
spec:
  workloadSelector: {labels: {app: legacy}}
  ingress:
  - {port: {number: 8080, protocol: HTTP, name: web}, defaultEndpoint: "127.0.0.1:18080", connectionPool: {tcp: {maxConnections: 5}}}
  - {port: {number: 9090, protocol: TCP, name: db}, defaultEndpoint: "0.0.0.0:19090"}
  - {port: {number: 7070, protocol: GRPC, name: api}, defaultEndpoint: "unix:///var/run/app.sock"}
  - port: {number: 6060, protocol: HTTPS, name: admin}
    defaultEndpoint: "127.0.0.1:16060"
    tls: {mode: SIMPLE, privateKey: /etc/app/key.pem, serverCertificate: /etc/app/cert.pem}
  inboundConnectionPool: {tcp: {maxConnections: 50}}
`)
	sets := envoySidecar(t, snap, "vms", map[string]string{"app": "legacy"})
	clusters := sets[ClusterType].ByName
	if clusters["inbound|5000||"] != nil {
		t.Error("the service's port got a cluster although the Sidecar's ingress listeners replace it")
	}
	for name, want := range map[string]string{
		"inbound|8080||": "STATIC 127.0.0.1:18080",
		"inbound|9090||": "ORIGINAL_DST port 19090",
		"inbound|7070||": "STATIC unix:///var/run/app.sock",
		"inbound|6060||": "STATIC 127.0.0.1:16060",
	} {
		r := clusters[name]
		if r == nil {
			t.Errorf("no cluster %s", name)
			continue
		}
		var c clusterv3.Cluster
		if err := r.Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		var got string
		switch c.GetType() {
		case clusterv3.Cluster_ORIGINAL_DST:
			got = fmt.Sprintf("ORIGINAL_DST port %d", c.GetOriginalDstLbConfig().GetUpstreamPortOverride().GetValue())
		case clusterv3.Cluster_STATIC:
			a := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
			if pipe := a.GetPipe(); pipe != nil {
				got = "STATIC unix://" + pipe.Path
			} else {
				got = fmt.Sprintf("STATIC %s:%d", a.GetSocketAddress().GetAddress(), a.GetSocketAddress().GetPortValue())
			}
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
	for name, want := range map[string]uint32{"inbound|8080||": 5, "inbound|9090||": 50} {
		var c clusterv3.Cluster
		if err := clusters[name].Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		if got := c.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue(); got != want {
			t.Errorf("%s: max connections %d, want %d (the ingress listener's pool, else the Sidecar's inboundConnectionPool)", name, got, want)
		}
	}
	if c := clusters["inbound|7070||"]; c != nil {
		var cl clusterv3.Cluster
		_ = c.Body.UnmarshalTo(&cl)
		if cl.TypedExtensionProtocolOptions == nil {
			t.Error("a GRPC ingress port must speak HTTP/2 to the application")
		}
	}
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	ports := map[uint32]bool{}
	for _, fc := range l.FilterChains {
		if dp := fc.GetFilterChainMatch().GetDestinationPort(); dp != nil {
			ports[dp.Value] = true
		}
	}
	for _, n := range []uint32{8080, 9090, 7070, 6060} {
		if !ports[n] {
			t.Errorf("no inbound chain for ingress port %d", n)
		}
	}
	// The port with tls terminates it with its own certificate, instead of mTLS:
	// istio-proxy takes the files by SDS from istio-agent, as from istiod.
	for _, fc := range l.FilterChains {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != 6060 {
			continue
		}
		var tlsCtx tlsv3.DownstreamTlsContext
		if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
			t.Fatalf("chain %s: %v", fc.Name, err)
		}
		sds := tlsCtx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
		if len(sds) != 1 || sds[0].GetName() != "file-cert:/etc/app/cert.pem~/etc/app/key.pem" ||
			sds[0].GetSdsConfig().GetApiConfigSource().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != agentSDSCluster {
			t.Errorf("chain %s: certificates by SDS %v, want the ingress listener's files from istio-agent", fc.Name, sds)
		}
	}
	if ports[5000] {
		t.Error("the service's port 5000 got chains although the Sidecar's ingress listeners replace it")
	}
}

// TestSidecarEgressPorts: an egress listener with a port decides what the proxy
// reaches on that port, the one without a port on the others; a Sidecar without
// egress listeners imports what the namespace sees, as in Istio.
func TestSidecarEgressPorts(t *testing.T) {
	got, err := scopeOf(t, "shop", nil, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - {port: {number: 80, protocol: HTTP, name: web}, hosts: ["other/*"]}
  - hosts: ["./*"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.hosts, ",") != "billing.other.svc.cluster.local" {
		t.Errorf("port 80: %v, want only the port's egress listener's hosts", got.hosts)
	}
	got, err = scopeOf(t, "shop", nil, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.hosts, ",") != "billing.other.svc.cluster.local,orders.shop.svc.cluster.local" || got.tcpFallback != blackHoleCluster {
		t.Errorf("a Sidecar without egress: %+v, want every service and unknown destinations dropped", got)
	}
}

// TestSidecarEgressPortProtocol: an egress listener's port protocol is the protocol
// of that port's outbound listener and routes, for the services on it: an opaque
// TCP port routed by HTTP, an HTTP port proxied as bytes. Without the Sidecar each
// port keeps its service's protocol.
func TestSidecarEgressPortProtocol(t *testing.T) {
	const services = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  addresses: [10.0.0.5]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  addresses: [10.0.0.6]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.6}]
`
	const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 9000, protocol: HTTP, name: http-db}
    hosts: ["./*"]
  - port: {number: 8080, protocol: TCP, name: tcp-web}
    hosts: ["./*"]
  - hosts: ["./*"]
`
	outbound := func(config ...string) (listeners map[string]string, routes []string) {
		t.Helper()
		p := grpcProxy("shop", nil)
		p.Generator = ""
		sets, err := sidecarProfile().build(newContext(snapshotOf(t, config...), p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		listeners = map[string]string{}
		for name, r := range sets[ListenerType].ByName {
			if name == virtualOutbound || name == virtualInbound {
				continue
			}
			var l listenerv3.Listener
			if err := r.Body.UnmarshalTo(&l); err != nil {
				t.Fatal(err)
			}
			listeners[name] = l.FilterChains[len(l.FilterChains)-1].Filters[0].Name
		}
		for name, r := range sets[RouteType].ByName {
			var rc routev3.RouteConfiguration
			if err := r.Body.UnmarshalTo(&rc); err != nil {
				t.Fatal(err)
			}
			for _, vh := range rc.VirtualHosts {
				if strings.HasSuffix(vh.Name, ".svc.cluster.local:"+name) {
					routes = append(routes, vh.Name)
				}
			}
		}
		return listeners, routes
	}
	const hcm, tcp = "envoy.filters.network.http_connection_manager", "envoy.filters.network.tcp_proxy"
	check := func(what string, config []string, wantListeners map[string]string, wantRoutes []string) {
		t.Helper()
		listeners, routes := outbound(config...)
		if fmt.Sprint(listeners) != fmt.Sprint(wantListeners) || fmt.Sprint(routes) != fmt.Sprint(wantRoutes) {
			t.Errorf("%s: listeners %v routes %v, want %v %v", what, listeners, routes, wantListeners, wantRoutes)
		}
	}
	check("without a Sidecar", []string{services},
		map[string]string{"10.0.0.5_9000": tcp, "0.0.0.0_8080": hcm}, []string{"web.shop.svc.cluster.local:8080"})
	check("with the egress ports' protocols", []string{services, sidecar},
		map[string]string{"0.0.0.0_9000": hcm, "10.0.0.6_8080": tcp}, []string{"db.shop.svc.cluster.local:9000"})
}
