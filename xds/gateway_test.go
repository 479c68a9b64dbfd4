package xds

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// TestTranslateGateway compares what an ingress gateway gets for
// testdata/inputs/gateway.yaml with its golden file, checks the server it must leave
// out is reported (one mixing HTTP into a TCP port), and that a credential's
// certificate and CA are asked for by SDS.
func TestTranslateGateway(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	gw := &Proxy{ID: "router~10.0.0.2~ingress.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
	wantErr := "edge/other.0: port 9000: cannot share the port with edge/ingress.3"
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Errorf("build error %v, want it to report %q", err, wantErr)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 1 { // once, though listeners and routes both use the servers
		t.Errorf("%d errors reported, want 1: %v", n, err)
	}
	// The credential's certificate and CA come by SDS under Istio's names.
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_8443"].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var dtls tlsv3.DownstreamTlsContext
	if err := l.FilterChains[0].TransportSocket.GetTypedConfig().UnmarshalTo(&dtls); err != nil {
		t.Fatal(err)
	}
	common := dtls.CommonTlsContext
	if got := common.TlsCertificateSdsSecretConfigs[0].GetName(); got != "kubernetes://shop-cert" {
		t.Errorf("certificate by SDS %q", got)
	}
	if got := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(); got != "kubernetes://shop-cert-cacert" || !dtls.RequireClientCertificate.GetValue() {
		t.Errorf("client certificates checked against %q (required: %v)", got, dtls.RequireClientCertificate.GetValue())
	}

	// AUTO_PASSTHROUGH: a chain per service port and subset of the admitted namespace,
	// by Istio's SNI name, to the SNI-DNAT cluster of that name: the service's
	// endpoints, without TLS of its own (the client's mTLS passes through).
	var ew listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_15443"].Body.UnmarshalTo(&ew); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fc := range ew.FilterChains {
		var tp tcpv3.TcpProxy
		if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			t.Fatal(err)
		}
		got[strings.Join(fc.FilterChainMatch.ServerNames, ",")] = tp.GetCluster()
	}
	regular := map[string]string{ // SNI -> the service's own cluster
		"outbound_.8080_._.shop.shop.svc.cluster.local":      "outbound|8080||shop.shop.svc.cluster.local",
		"outbound_.5432_._.db.shop.svc.cluster.local":        "outbound|5432||db.shop.svc.cluster.local",
		"outbound_.5432_.primary_.db.shop.svc.cluster.local": "outbound|5432|primary|db.shop.svc.cluster.local",
		"outbound_.6432_._.db.shop.svc.cluster.local":        "outbound|6432||db.shop.svc.cluster.local",
		"outbound_.6432_.primary_.db.shop.svc.cluster.local": "outbound|6432|primary|db.shop.svc.cluster.local",
	}
	if len(got) != len(regular) {
		t.Errorf("AUTO_PASSTHROUGH chains %v, want one for each of %v", got, regular)
	}
	withEndpoints := 0
	for sni, name := range regular {
		if got[sni] != sni {
			t.Errorf("AUTO_PASSTHROUGH chain for %s goes to %q, want the SNI-DNAT cluster of that name", sni, got[sni])
		}
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, sni, &c)
		if c.TransportSocket != nil || len(c.TransportSocketMatches) > 0 || c.GetEdsClusterConfig().GetServiceName() != sni {
			t.Errorf("SNI-DNAT cluster %s: TLS %v %v, EDS service %q", sni, c.TransportSocket, c.TransportSocketMatches, c.GetEdsClusterConfig().GetServiceName())
		}
		var dnat, own endpointv3.ClusterLoadAssignment
		resourceOf(t, sets, EndpointType, sni, &dnat)
		resourceOf(t, sets, EndpointType, name, &own)
		dnat.ClusterName, own.ClusterName = "", ""
		if !proto.Equal(&dnat, &own) {
			t.Errorf("SNI-DNAT endpoints %s: %v, want the service's: %v", sni, &dnat, &own)
		}
		if len(own.Endpoints) > 0 {
			withEndpoints++
		}
	}
	if withEndpoints == 0 {
		t.Error("no service behind the AUTO_PASSTHROUGH server has endpoints: the comparison shows nothing")
	}
	checkGolden(t, filepath.Join("testdata", "gateway.golden.yaml"), dump(t, sets))
}

// TestGatewayTLSParameters: a server's protocol versions, cipher suites and client
// certificate pins reach its TLS context; without them Envoy's defaults stand.
func TestGatewayTLSParameters(t *testing.T) {
	tls := func(settings string) *tlsv3.DownstreamTlsContext {
		var s networking.ServerTLSSettings
		if err := protojson.Unmarshal([]byte(settings), &s); err != nil {
			t.Fatal(err)
		}
		var ctx tlsv3.DownstreamTlsContext
		if err := serverTLS(&Context{Proxy: &Proxy{Type: TypeRouter}}, &s, true).GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatal(err)
		}
		return &ctx
	}
	ctx := tls(`{"mode": "MUTUAL", "credentialName": "web", "minProtocolVersion": "TLSV1_3", "cipherSuites": ["ECDHE-ECDSA-AES256-GCM-SHA384"],
		"verifyCertificateSpki": ["NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="]}`)
	p := ctx.GetCommonTlsContext().GetTlsParams()
	if p.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || len(p.GetCipherSuites()) != 1 {
		t.Errorf("TLS parameters %v", p)
	}
	vc := ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
	if len(vc.GetVerifyCertificateSpki()) != 1 {
		t.Errorf("client certificate pins %v", vc)
	}
	if p := tls(`{"mode": "SIMPLE", "credentialName": "web"}`).GetCommonTlsContext().GetTlsParams(); p != nil {
		t.Errorf("no versions or suites set: want Envoy's defaults, got %v", p)
	}
	// Istio accepts unknown and repeated suites with a warning and leaves them
	// out; Envoy would refuse the listener.
	p = tls(`{"mode": "SIMPLE", "credentialName": "web", "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256", "NOT-A-CIPHER",
		"ECDHE-RSA-AES128-GCM-SHA256", "-AES128-SHA", "AES256-SHA"]}`).GetCommonTlsContext().GetTlsParams()
	if want := []string{"ECDHE-RSA-AES128-GCM-SHA256", "-AES128-SHA", "AES256-SHA"}; !slices.Equal(p.GetCipherSuites(), want) {
		t.Errorf("cipher suites %q, want %q", p.GetCipherSuites(), want)
	}
}

// TestGatewayBind: servers with a bind address listen there, apart from the servers
// of the same port on every address, each with its own routes.
func TestGatewayBind(t *testing.T) {
	snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 8080, name: internal, protocol: HTTP}, hosts: ["*"], bind: 10.0.0.5}
  - {port: {number: 0, name: uds, protocol: HTTP}, hosts: ["*"], bind: "unix:///var/run/gw.sock"}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  gateways: [edge]
  http: [{route: [{destination: {host: orders.shop.svc.cluster.local}}]}]
`)
	gw := &Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop",
		Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"0.0.0.0_8080": "http.8080", "10.0.0.5_8080": "http.8080.10.0.0.5", "unix:///var/run/gw.sock": "http.0.unix:///var/run/gw.sock"} {
		r := sets[ListenerType].ByName[name]
		if r == nil {
			t.Errorf("no listener %s", name)
			continue
		}
		var l listenerv3.Listener
		if err := r.Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		if sets[RouteType].ByName[want] == nil {
			t.Errorf("%s: no route configuration %s", name, want)
		}
		if name == "10.0.0.5_8080" && l.GetAddress().GetSocketAddress().GetAddress() != "10.0.0.5" {
			t.Errorf("%s listens on %v", name, l.GetAddress())
		}
		if name == "unix:///var/run/gw.sock" && l.GetAddress().GetPipe().GetPath() != "/var/run/gw.sock" {
			t.Errorf("%s listens on %v", name, l.GetAddress())
		}
	}
}

// TestGatewayPortTranslation: a Gateway's server listens on the target port of the
// gateway's own service for the server's port, as istiod translates it (80 is 8080
// behind a Kubernetes gateway Service), whether the service selects the gateway or
// lists an endpoint at its address; its route configuration is named by that port
// and routes by the Gateway's, which the VirtualService's match names. A service
// labelled to opt out, or a port no service of the gateway has, stays as written.
func TestGatewayPortTranslation(t *testing.T) {
	const gateway = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 9000, name: http-admin, protocol: HTTP}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [edge]
  http: [{match: [{port: 80}], route: [{destination: {host: orders.shop.svc.cluster.local}}]}]
`
	service := func(extra string) string {
		return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ingress, namespace: shop` + extra + `}
spec:
  hosts: [ingress.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, targetPort: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
`
	}
	for _, tc := range []struct {
		name, config, listener string
	}{
		{"a service selecting the gateway", service("") + "  workloadSelector: {labels: {istio: ingressgateway}}\n", "0.0.0.0_8080"},
		{"an endpoint at the gateway's address", service("") + "  endpoints: [{address: 10.0.0.5}]\n", "0.0.0.0_8080"},
		{"opted out", service(", labels: {networking.istio.io/disable-gateway-port-translation: \"true\"}") +
			"  workloadSelector: {labels: {istio: ingressgateway}}\n", "0.0.0.0_80"},
		{"no service of the gateway", service("") + "  workloadSelector: {labels: {app: other}}\n", "0.0.0.0_80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshotOf(t, scopeServices, gateway, tc.config)
			labels := map[string]string{"istio": "ingressgateway"}
			gw := (&Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop",
				Labels: labels, BootstrapLabels: labels}).withAddressWorkload(snap)
			sets := mustBuild(t, gatewayProfile(), snap, gw)
			var l listenerv3.Listener
			resourceOf(t, sets, ListenerType, tc.listener, &l)
			if got := l.GetAddress().GetSocketAddress().GetPortValue(); strconv.Itoa(int(got)) != strings.TrimPrefix(tc.listener, "0.0.0.0_") {
				t.Errorf("%s listens on port %d", tc.listener, got)
			}
			if sets[ListenerType].ByName["0.0.0.0_9000"] == nil {
				t.Errorf("the server of port 9000, which no service has, moved: %v", sets[ListenerType].Names())
			}
			var rc routev3.RouteConfiguration
			resourceOf(t, sets, RouteType, "http."+strings.TrimPrefix(tc.listener, "0.0.0.0_"), &rc)
			routed := false
			for _, vh := range rc.VirtualHosts {
				routed = routed || (vh.Name == "*:80" && len(vh.Routes) > 0 && vh.Routes[0].GetRoute().GetCluster() == "outbound|80||orders.shop.svc.cluster.local")
			}
			if !routed {
				t.Errorf("route configuration %s does not route port 80's VirtualService: %v", rc.Name, rc.VirtualHosts)
			}
		})
	}
}

// TestUnprivilegedGateway: an unprivileged gateway (UNPRIVILEGED_POD) gets no
// listener on a port below 1024, reported, as from istiod; one its service
// translates to a port above 1023 it gets.
func TestUnprivilegedGateway(t *testing.T) {
	snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: cert}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ingress, namespace: shop}
spec:
  hosts: [ingress.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 443, targetPort: 8443, name: https, protocol: HTTPS}]
  resolution: STATIC
  workloadSelector: {labels: {istio: ingressgateway}}
`)
	gw := &Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop",
		Labels: map[string]string{"istio": "ingressgateway"}, Unprivileged: true}
	sets, err := gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err == nil || !strings.Contains(err.Error(), "port 80: an unprivileged gateway cannot bind a port below 1024") {
		t.Errorf("build error %v, want port 80 reported", err)
	}
	if got := sets[ListenerType].Names(); !slices.Equal(got, []string{"0.0.0.0_8443"}) {
		t.Errorf("listeners %v, want only 0.0.0.0_8443", got)
	}
}
