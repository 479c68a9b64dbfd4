package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseProxy(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{
		"NAMESPACE": "shop", "GENERATOR": "grpc", "SERVICE_ACCOUNT": "cart", "NETWORK": "east",
		"LABELS": map[string]any{"app": "cart", "version": "v2"},
	})
	tests := []struct {
		name    string
		node    *corev3.Node
		wantNS  string
		wantErr string
	}{
		{"istio sidecar id with metadata", &corev3.Node{Id: "sidecar~10.0.0.7~cart-1.shop~shop.svc.cluster.local", Metadata: md}, "shop", ""},
		{"namespace from the id", &corev3.Node{Id: "router~10.0.0.7~gw-1.edge~edge.svc.cluster.local"}, "edge", ""},
		{"missing id", &corev3.Node{}, "", "missing"},
		{"three parts", &corev3.Node{Id: "sidecar~10.0.0.7~cart"}, "", "type~ip~name~domain"},
		{"unknown type", &corev3.Node{Id: "gateway~10.0.0.7~x.y~y.svc.cluster.local"}, "", "invalid node type"},
		{"bad ip", &corev3.Node{Id: "sidecar~host~x.y~y.svc.cluster.local"}, "", "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProxy(tt.node)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Namespace != tt.wantNS {
				t.Fatalf("namespace %q, want %q", p.Namespace, tt.wantNS)
			}
		})
	}
	p, _ := ParseProxy(&corev3.Node{Id: "sidecar~10.0.0.7~cart-1.shop~shop.svc.cluster.local", Metadata: md})
	if p.Generator != GeneratorGRPC || p.ServiceAccount != "cart" || p.Labels["version"] != "v2" || p.Network != "east" {
		t.Fatalf("metadata not read: %+v", p)
	}
	q := *p
	q.Labels = map[string]string{"version": "v2", "app": "cart"}
	if p.classKey() != q.classKey() {
		t.Fatal("equal proxies must share a class")
	}
	q.Labels = map[string]string{"version": "v1", "app": "cart"}
	if p.classKey() == q.classKey() {
		t.Fatal("proxies with different labels must not share a class")
	}
}

// TestProxyConfigFromMetadata: a proxy's PROXY_CONFIG (as istio-agent sends it) is
// read for what navarch translates, fields this build does not know skipped; it
// makes the proxy a class of its own, and replaces the mesh config's defaultConfig;
// one that is not a ProxyConfig refuses the proxy, naming it.
func TestProxyConfigFromMetadata(t *testing.T) {
	node := func(pc any) *corev3.Node {
		fields := map[string]any{"NAMESPACE": "shop"}
		if pc != nil {
			fields["PROXY_CONFIG"] = pc
		}
		md, err := structpb.NewStruct(fields)
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Node{Id: "sidecar~10.0.0.7~cart-1.shop~shop.svc.cluster.local", Metadata: md}
	}
	plain, err := ParseProxy(node(nil))
	if err != nil {
		t.Fatal(err)
	}
	own, err := ParseProxy(node(map[string]any{
		"proxyHeaders":    map[string]any{"server": map[string]any{"disabled": true}},
		"gatewayTopology": map[string]any{"numTrustedProxies": 2},
		"binaryPath":      "/usr/local/bin/envoy", // istio-agent's business, not kept
		"aFieldOfLater":   true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !own.ProxyConfig.GetProxyHeaders().GetServer().GetDisabled().GetValue() || own.ProxyConfig.GetGatewayTopology().GetNumTrustedProxies() != 2 || own.ProxyConfig.GetBinaryPath() != "" {
		t.Fatalf("PROXY_CONFIG read as %v", own.ProxyConfig)
	}
	if plain.classKey() == own.classKey() {
		t.Fatal("a proxy with a ProxyConfig of its own shares the class of one without")
	}
	snap := snapshotOf(t, meshDoc(`{defaultConfig: {proxyHeaders: {server: {value: edge}}}}`))
	if ph := headersFor(newContext(snap, plain, "cluster.local", "istio-system"), classInbound); ph.serverName != "edge" {
		t.Errorf("without a ProxyConfig of its own the mesh's applies: server %q, want edge", ph.serverName)
	}
	if ph := headersFor(newContext(snap, own, "cluster.local", "istio-system"), classInbound); ph.serverName != "" || ph.serverTransform != hcmv3.HttpConnectionManager_PASS_THROUGH {
		t.Errorf("the proxy's own ProxyConfig applies: server %q (%v), want none passed through", ph.serverName, ph.serverTransform)
	}
	if _, err := ParseProxy(node(map[string]any{"proxyHeaders": "on"})); err == nil || !strings.Contains(err.Error(), "PROXY_CONFIG") {
		t.Fatalf("a PROXY_CONFIG that is no ProxyConfig: %v, want an error naming it", err)
	}
}

// TestPreserveHeaderCase: under preserveHttp1HeaderCase every connection manager and
// every cluster that may speak HTTP/1 keeps header names' case; a cluster that
// speaks HTTP/2 is left as it was.
func TestPreserveHeaderCase(t *testing.T) {
	snap := snapshotOf(t, meshDoc(`{defaultConfig: {proxyHeaders: {preserveHttp1HeaderCase: true}}}`), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}, {number: 7000, name: any}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
`)
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "client"})
	preserved := func(name string) bool {
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, name, &c)
		var opts httpv3.HttpProtocolOptions
		if a := c.TypedExtensionProtocolOptions[httpProtocolOptions]; a == nil || a.UnmarshalTo(&opts) != nil {
			return false
		}
		h1 := opts.GetExplicitHttpConfig().GetHttpProtocolOptions()
		if h1 == nil {
			h1 = opts.GetUseDownstreamProtocolConfig().GetHttpProtocolOptions()
		}
		return h1.GetHeaderKeyFormat().GetStatefulFormatter().GetName() == "preserve_case"
	}
	for name, want := range map[string]bool{"outbound|80||web.shop.svc.cluster.local": true, "outbound|7000||web.shop.svc.cluster.local": true,
		"outbound|9090||web.shop.svc.cluster.local": false, passthroughCluster: true, inboundPassthroughCluster: true} {
		if got := preserved(name); got != want {
			t.Errorf("%s keeps header case: %v, want %v", name, got, want)
		}
	}
	var l listenerv3.Listener
	resourceOf(t, sets, ListenerType, "0.0.0.0_80", &l)
	var hcm hcmv3.HttpConnectionManager
	if err := l.FilterChains[len(l.FilterChains)-1].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if hcm.GetHttpProtocolOptions().GetHeaderKeyFormat() == nil {
		t.Error("the outbound connection manager does not keep header case")
	}
}

// A proxy's xDS client is named as its node says: grpc-go by its user agent
// version, Envoy by its build version.
func TestUserAgent(t *testing.T) {
	for _, tt := range []struct {
		node *corev3.Node
		want string
	}{
		{&corev3.Node{UserAgentName: "gRPC Go", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.75.0"}}, "gRPC Go 1.75.0"},
		{&corev3.Node{UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 36, Patch: 2}}}}, "envoy 1.36.2"},
		{&corev3.Node{UserAgentName: "envoy"}, "envoy"},
		{&corev3.Node{}, ""},
	} {
		if got := userAgent(tt.node); got != tt.want {
			t.Errorf("userAgent(%v) = %q, want %q", tt.node, got, tt.want)
		}
	}
}
