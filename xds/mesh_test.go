package xds

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
)

// meshDoc is a mesh config document with the given spec (flow-style YAML).
func meshDoc(spec string) string {
	return "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: istio, namespace: istio-system}\nspec: " + spec + "\n"
}

// strictOrders is a service whose one workload requires mTLS.
const strictOrders = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: orders}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: orders-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: orders}, serviceAccount: orders, locality: us/east}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
`

// webWorkload is web, an HTTP service on 8080, and its one workload (app: web in
// shop, the label of the tests' sidecar).
const webWorkload = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
`

// TestMeshConfigSettings checks the mesh config's settings one by one against
// Istio's defaults, in what an Envoy sidecar gets.
func TestMeshConfigSettings(t *testing.T) {
	build := func(t *testing.T, docs ...string) (*Context, map[string]*clusterv3.Cluster) {
		t.Helper()
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator, p.Locality = "", "us/west"
		ctx := newContext(snapshotOf(t, append([]string{strictOrders}, docs...)...), p, "cluster.local", "istio-system")
		sets, err := sidecarProfile().build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clusters := map[string]*clusterv3.Cluster{}
		for name, r := range sets[ClusterType].ByName {
			var c clusterv3.Cluster
			if err := r.Body.UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			clusters[name] = &c
		}
		return ctx, clusters
	}
	const orders = "outbound|8080||orders.shop.svc.cluster.local"

	t.Run("defaults", func(t *testing.T) {
		ctx, clusters := build(t)
		for _, name := range []string{orders, passthroughCluster, inboundPassthroughCluster} {
			if got := clusters[name].GetConnectTimeout().AsDuration(); got != 10*time.Second {
				t.Errorf("%s: connect timeout %s, want Istio's 10s", name, got)
			}
		}
		if meshMTLSSocket(clusters[orders]) == nil {
			t.Error("no mTLS to a STRICT service's workloads by default (automatic mTLS)")
		}
		if unknownDestinations(ctx) != passthroughCluster {
			t.Error("unknown destinations are not let out by default (ALLOW_ANY)")
		}
		if lb := balanceByPlace(ctx, nil, ctx.Services[0]).locality; lb == nil {
			t.Error("no locality load balancing by default")
		}
	})
	t.Run("set", func(t *testing.T) {
		ctx, clusters := build(t, meshDoc(`{connectTimeout: 250ms, enableAutoMtls: false, outboundTrafficPolicy: {mode: REGISTRY_ONLY},
  localityLbSetting: {enabled: false}}`))
		for _, name := range []string{orders, passthroughCluster, inboundPassthroughCluster} {
			if got := clusters[name].GetConnectTimeout().AsDuration(); got != 250*time.Millisecond {
				t.Errorf("%s: connect timeout %s, want the mesh config's 250ms", name, got)
			}
		}
		if clusters[orders].GetTransportSocket() != nil {
			t.Error("mTLS chosen for the client with automatic mTLS off")
		}
		if got := unknownDestinations(ctx); got != "" {
			t.Errorf("unknown destinations go to %q under REGISTRY_ONLY", got)
		}
		if lb := balanceByPlace(ctx, nil, ctx.Services[0]).locality; lb != nil {
			t.Errorf("locality load balancing %v with the mesh's turned off", lb)
		}
	})
	t.Run("a Sidecar and a DestinationRule still decide for themselves", func(t *testing.T) {
		ctx, clusters := build(t, meshDoc(`{enableAutoMtls: false, outboundTrafficPolicy: {mode: REGISTRY_ONLY}}`), `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec: {outboundTrafficPolicy: {mode: ALLOW_ANY}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec: {host: orders.shop.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
`)
		if clusters[orders].GetTransportSocket() == nil {
			t.Error("ISTIO_MUTUAL of a DestinationRule not applied with automatic mTLS off")
		}
		if unknownDestinations(ctx) != passthroughCluster {
			t.Error("the Sidecar's ALLOW_ANY did not win over the mesh's REGISTRY_ONLY")
		}
	})
	t.Run("a policy without a mode is REGISTRY_ONLY, as Istio reads it", func(t *testing.T) {
		ctx, _ := build(t, meshDoc(`{outboundTrafficPolicy: {}}`))
		if got := unknownDestinations(ctx); got != "" {
			t.Errorf("unknown destinations go to %q", got)
		}
	})
	t.Run("the default traffic policy, below a DestinationRule's", func(t *testing.T) {
		const mesh = `{defaultTrafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}, outlierDetection: {consecutive5xxErrors: 3}}}`
		maxConns := func(c *clusterv3.Cluster) uint32 {
			return c.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue()
		}
		_, clusters := build(t, meshDoc(mesh))
		if maxConns(clusters[orders]) != 7 || clusters[orders].GetOutlierDetection().GetConsecutive_5Xx().GetValue() != 3 {
			t.Errorf("orders: circuit breakers %v, outlier detection %v; want the mesh's", clusters[orders].GetCircuitBreakers(), clusters[orders].GetOutlierDetection())
		}
		if maxConns(clusters[passthroughCluster]) != 7 || clusters[passthroughCluster].GetOutlierDetection() != nil {
			t.Errorf("passthrough: %v, %v; want the mesh's connection pool only", clusters[passthroughCluster].GetCircuitBreakers(), clusters[passthroughCluster].GetOutlierDetection())
		}
		_, clusters = build(t, meshDoc(mesh), `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec: {host: orders.shop.svc.cluster.local, trafficPolicy: {connectionPool: {tcp: {maxConnections: 100}}}}
`)
		if maxConns(clusters[orders]) != 100 || clusters[orders].GetOutlierDetection().GetConsecutive_5Xx().GetValue() != 3 {
			t.Errorf("orders under a DestinationRule: %v, %v; want its pool and the mesh's outlier detection", clusters[orders].GetCircuitBreakers(), clusters[orders].GetOutlierDetection())
		}
	})
	t.Run("inbound traffic to localhost", func(t *testing.T) {
		const inbound = "inbound|8080||"
		_, clusters := build(t, webWorkload, meshDoc(`{inboundTrafficPolicy: {mode: LOCALHOST}}`))
		c := clusters[inbound]
		addr := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if c.GetType() != clusterv3.Cluster_STATIC || addr.GetAddress() != "127.0.0.1" || addr.GetPortValue() != 8080 {
			t.Errorf("%s: %v %v, want a static cluster to 127.0.0.1:8080", inbound, c.GetType(), addr)
		}
	})
	t.Run("a mesh locality setting applies without a DestinationRule's", func(t *testing.T) {
		ctx, _ := build(t, meshDoc(`{localityLbSetting: {failover: [{from: us, to: eu}]}}`))
		lb := balanceByPlace(ctx, &networking.TrafficPolicy{}, ctx.Services[0]).locality
		if len(lb.GetFailover()) != 1 || lb.Failover[0].To != "eu" {
			t.Errorf("effective locality setting %v, want the mesh's failover", lb)
		}
	})
}

func TestTrustDomainAliases(t *testing.T) {
	snap := snapshotOf(t, meshDoc(`{trustDomainAliases: [old.example, cluster.local]}`))
	ctx := newContext(snap, grpcProxy("shop", nil), "new.example", "istio-system")
	for _, tc := range []struct {
		principal string
		want      []string
	}{
		{"new.example/ns/shop/sa/web", []string{"new.example/ns/shop/sa/web", "old.example/ns/shop/sa/web", "cluster.local/ns/shop/sa/web"}},
		{"old.example/ns/shop/sa/web", []string{"new.example/ns/shop/sa/web", "old.example/ns/shop/sa/web", "cluster.local/ns/shop/sa/web"}},
		{"other.example/ns/shop/sa/web", []string{"other.example/ns/shop/sa/web"}},
		{"*/ns/shop/sa/web", []string{"*/ns/shop/sa/web"}},
		{"*", []string{"*"}},
	} {
		if got := withTrustDomainAliases(ctx, tc.principal); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v, want %v", tc.principal, got, tc.want)
		}
	}
	// Without aliases, cluster.local stands for the mesh's trust domain.
	ctx = newContext(snapshotOf(t), grpcProxy("shop", nil), "new.example", "istio-system")
	if got := withTrustDomainAliases(ctx, "cluster.local/ns/shop/sa/web"); len(got) != 1 || got[0] != "new.example/ns/shop/sa/web" {
		t.Errorf("cluster.local without aliases: %v", got)
	}
}

// TestExportDefaults: the mesh config's default exportTo applies to services,
// VirtualServices and DestinationRules that set none, and only to those.
func TestExportDefaults(t *testing.T) {
	const docs = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: billing}
spec: {hosts: [private.billing.svc.cluster.local], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: public, namespace: billing}
spec: {hosts: [public.billing.svc.cluster.local], exportTo: ["*"], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: billing}
spec: {hosts: [public.billing.svc.cluster.local], http: [{route: [{destination: {host: public.billing.svc.cluster.local}}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: public, namespace: billing}
spec: {host: public.billing.svc.cluster.local, exportTo: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: private, namespace: billing}
spec: {host: private.billing.svc.cluster.local}
`
	see := func(t *testing.T, mesh string, ns string) string {
		t.Helper()
		in := []string{docs}
		if mesh != "" {
			in = append(in, meshDoc(mesh))
		}
		snap := snapshotOf(t, in...)
		ctx := newContext(snap, grpcProxy(ns, nil), "cluster.local", "istio-system")
		var out []string
		for _, svc := range ctx.Services {
			out = append(out, strings.TrimSuffix(svc.Hostname, ".billing.svc.cluster.local"))
		}
		rules := snap.DestinationRules(ns, "istio-system")
		out = append(out, fmt.Sprintf("vs=%d dr=%t,%t", len(snap.VirtualServices(ns)),
			rules.For("public.billing.svc.cluster.local", "billing", nil) != nil, rules.For("private.billing.svc.cluster.local", "billing", nil) != nil))
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ mesh, ns, want string }{
		{"", "shop", "private public vs=1 dr=true,true"},
		{`{defaultServiceExportTo: ["."], defaultVirtualServiceExportTo: ["."], defaultDestinationRuleExportTo: ["."]}`, "shop", "public vs=0 dr=true,false"},
		{`{defaultServiceExportTo: ["."], defaultVirtualServiceExportTo: ["."], defaultDestinationRuleExportTo: ["."]}`, "billing", "private public vs=1 dr=true,true"},
		{`{defaultServiceExportTo: [shop]}`, "shop", "private public vs=1 dr=true,true"},
		{`{defaultServiceExportTo: [shop]}`, "web", "public vs=1 dr=true,true"},
	} {
		if got := see(t, tc.mesh, tc.ns); got != tc.want {
			t.Errorf("mesh %s, from %s: %q, want %q", tc.mesh, tc.ns, got, tc.want)
		}
	}
}

// TestMeshTLSSettings: the mesh config's meshMTLS sets what sidecars accept under
// mesh mTLS; its tlsDefaults what they originate and what gateways serve, where the
// Gateway does not say.
func TestMeshTLSSettings(t *testing.T) {
	const mesh = `{meshMTLS: {minProtocolVersion: TLSV1_3}, tlsDefaults: {ecdhCurves: [P-256], cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384], minProtocolVersion: TLSV1_3}}`
	params := func(t *testing.T, ts interface {
		GetTypedConfig() *anypb.Any
	}, downstream bool) *tlsv3.TlsParameters {
		t.Helper()
		if downstream {
			var d tlsv3.DownstreamTlsContext
			if err := ts.GetTypedConfig().UnmarshalTo(&d); err != nil {
				t.Fatal(err)
			}
			return d.GetCommonTlsContext().GetTlsParams()
		}
		var u tlsv3.UpstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&u); err != nil {
			t.Fatal(err)
		}
		return u.GetCommonTlsContext().GetTlsParams()
	}
	for _, withMesh := range []bool{false, true} {
		docs := []string{strictOrders, webWorkload, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: edge-cert}}]
`}
		if withMesh {
			docs = append(docs, meshDoc(mesh))
		}
		snap := snapshotOf(t, docs...)
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator = ""
		sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		if err := sets[ClusterType].ByName["outbound|8080||orders.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		var in listenerv3.Listener
		if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&in); err != nil {
			t.Fatal(err)
		}
		var server *tlsv3.TlsParameters
		for _, fc := range in.FilterChains {
			if fc.TransportSocket != nil && fc.GetFilterChainMatch().GetDestinationPort() != nil {
				server = params(t, fc.TransportSocket, true) // a port's mTLS chain
			}
		}
		gw := &Proxy{ID: "router~10.0.0.9~gw.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.9", Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
		gsets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var gl listenerv3.Listener
		if err := gsets[ListenerType].ByName["0.0.0.0_443"].Body.UnmarshalTo(&gl); err != nil {
			t.Fatal(err)
		}
		client, gateway := params(t, meshMTLSSocket(&c), false), params(t, gl.FilterChains[0].TransportSocket, true)
		tls12to13 := client.GetTlsMinimumProtocolVersion() == tlsv3.TlsParameters_TLSv1_2 && client.GetTlsMaximumProtocolVersion() == tlsv3.TlsParameters_TLSv1_3
		if !withMesh {
			if !tls12to13 || len(client.GetCipherSuites()) > 0 || gateway != nil ||
				server.GetTlsMaximumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || !slices.Equal(server.GetCipherSuites(), meshCiphers) {
				t.Errorf("without a mesh config: client %v, server %v, gateway %v; want TLS 1.2 to 1.3 for both sides of mesh mTLS, the server with Istio's ciphers, Envoy's defaults for the gateway (as istiod)", client, server, gateway)
			}
			continue
		}
		if server.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || server.GetTlsMaximumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 {
			t.Errorf("mesh mTLS server: %v, want TLS 1.3 only", server)
		}
		if strings.Join(client.GetEcdhCurves(), ",") != "P-256" || strings.Join(client.GetCipherSuites(), ",") != "ECDHE-ECDSA-AES256-GCM-SHA384" || !tls12to13 {
			t.Errorf("client: %v, want the TLS defaults' curves and ciphers, TLS 1.2 to 1.3", client)
		}
		if gateway.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || strings.Join(gateway.GetEcdhCurves(), ",") != "P-256" {
			t.Errorf("gateway: %v, want the TLS defaults", gateway)
		}
	}
}

// TestMeshTLSLeavesOutWhatEnvoyLacks: curves and cipher suites of the mesh config
// that Envoy does not know (which the mesh config is accepted with, warned of)
// and repeats are left out of the TLS parameters, which Envoy would refuse.
func TestMeshTLSLeavesOutWhatEnvoyLacks(t *testing.T) {
	d := &meshconfig.MeshConfig_TLSConfig{EcdhCurves: []string{"P-256", "P-999", "P-256", "X25519"},
		CipherSuites: []string{"NOT-A-CIPHER", "AES128-SHA", "AES128-SHA"}}
	p := withTLSDefaults(nil, d, false)
	if !slices.Equal(p.GetEcdhCurves(), []string{"P-256", "X25519"}) || !slices.Equal(p.GetCipherSuites(), []string{"AES128-SHA"}) {
		t.Errorf("tlsDefaults gave curves %q and suites %q", p.GetEcdhCurves(), p.GetCipherSuites())
	}
	m := &meshconfig.MeshConfig{MeshMTLS: &meshconfig.MeshConfig_TLSConfig{CipherSuites: []string{"NOT-A-CIPHER"}}}
	if got := meshMTLSParams(m, true).GetCipherSuites(); !slices.Equal(got, meshCiphers) {
		t.Errorf("meshMTLS of unknown suites only: a sidecar serves %q, want Istio's defaults", got)
	}
}

// TestMeshConnectionSettings: the mesh config's h2UpgradePolicy upgrades an HTTP
// port's clusters to HTTP/2 unless a DestinationRule says otherwise, its
// tcpKeepalive turns keepalive on under a rule's own settings, and its
// pathNormalization sets how every connection manager normalizes paths.
func TestMeshConnectionSettings(t *testing.T) {
	snap := snapshotOf(t, strictOrders, meshDoc(`{h2UpgradePolicy: UPGRADE, tcpKeepalive: {time: 600s, probes: 4}, pathNormalization: {normalization: MERGE_SLASHES}}`), `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: orders.shop.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {tcpKeepalive: {time: 60s}}}
  subsets:
  - name: h1
    labels: {app: orders}
    trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}}
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	for _, c := range []struct {
		name  string
		h2    bool
		ka    uint32
		probe uint32
	}{
		{"outbound|8080||orders.shop.svc.cluster.local", true, 60, 4},
		// The subset's connection pool replaces the rule's, keepalive and all.
		{"outbound|8080|h1|orders.shop.svc.cluster.local", false, 600, 4},
		{passthroughCluster, false, 600, 4},
	} {
		var cl clusterv3.Cluster
		resourceOf(t, sets, ClusterType, c.name, &cl)
		var opts httpv3.HttpProtocolOptions
		if a := cl.TypedExtensionProtocolOptions[httpProtocolOptions]; a != nil {
			if err := a.UnmarshalTo(&opts); err != nil {
				t.Fatal(err)
			}
		}
		h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
		ka := cl.GetUpstreamConnectionOptions().GetTcpKeepalive()
		if h2 && !c.h2 || !h2 && c.h2 || ka.GetKeepaliveTime().GetValue() != c.ka || ka.GetKeepaliveProbes().GetValue() != c.probe {
			t.Errorf("%s: HTTP/2 options %v (want HTTP/2 %v), keepalive %v (want time %d, probes %d)", c.name, h2, c.h2, ka, c.ka, c.probe)
		}
	}
	var l listenerv3.Listener
	resourceOf(t, sets, ListenerType, "0.0.0.0_8080", &l)
	var hcm hcmv3.HttpConnectionManager
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && !hcm.GetMergeSlashes() {
				t.Errorf("0.0.0.0_8080: a connection manager that does not merge slashes under MERGE_SLASHES")
			}
		}
	}
}

// meshMTLSSocket is the transport socket an Envoy cluster talks mTLS to the mesh's
// workloads with: the cluster's own, or automatic mTLS's (its tlsMode-istio match).
func meshMTLSSocket(c *clusterv3.Cluster) *corev3.TransportSocket {
	if c.GetTransportSocket() != nil {
		return c.TransportSocket
	}
	for _, m := range c.GetTransportSocketMatches() {
		if m.Name == "tlsMode-istio" {
			return m.TransportSocket
		}
	}
	return nil
}
