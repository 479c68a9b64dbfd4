package main

import (
	"bytes"
	"encoding/json"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/navarch/navarch/xds"
)

// proxyConfigDump is a /debug/proxy-config answer holding msgs, by type URL.
func proxyConfigDump(t *testing.T, msgs map[string][]proto.Message) []byte {
	t.Helper()
	out := map[string][]map[string]any{}
	for typ, ms := range msgs {
		for _, m := range ms {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			out[typ] = append(out[typ], map[string]any{"name": "x", "version": "1", "resource": json.RawMessage(b)})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAnyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The views of proxy-config summarize a proxy's resources as istioctl's
// subcommands do, one row per cluster, filter chain, route or endpoint, narrowed
// by their flags.
func TestProxyConfigViews(t *testing.T) {
	vsMeta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
		"config": structpb.NewStringValue("/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews")}}}}
	drMeta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
		"config": structpb.NewStringValue("/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews")}}}}
	eds := &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	hcm := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "9080"}}}
	tcp := &tcpv3.TcpProxy{ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "PassthroughCluster"}}
	raw := proxyConfigDump(t, map[string][]proto.Message{
		xds.ClusterType: {
			&clusterv3.Cluster{Name: "outbound|9080|v1|reviews.shop.svc.cluster.local", ClusterDiscoveryType: eds, Metadata: drMeta},
			&clusterv3.Cluster{Name: "outbound|9080||reviews.shop.svc.cluster.local", ClusterDiscoveryType: eds, Metadata: drMeta},
			&clusterv3.Cluster{Name: "outbound|443||api.example.com", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}},
			&clusterv3.Cluster{Name: "PassthroughCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}},
		},
		xds.ListenerType: {
			&listenerv3.Listener{Name: "0.0.0.0_9080",
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}},
				FilterChains: []*listenerv3.FilterChain{{
					FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
					Filters:          []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyOf(t, hcm)}}},
				}},
				DefaultFilterChain: &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyOf(t, tcp)}}}},
			},
			&listenerv3.Listener{Name: "reviews.shop.svc.cluster.local:9080", ApiListener: &listenerv3.ApiListener{ApiListener: mustAnyOf(t, &hcmv3.HttpConnectionManager{
				RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "outbound|9080||reviews.shop.svc.cluster.local"}}})}},
		},
		xds.RouteType: {
			&routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{
				{Name: "reviews.shop.svc.cluster.local:9080", Domains: []string{"reviews.shop.svc.cluster.local", "reviews.shop", "reviews"}, Routes: []*routev3.Route{
					{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}, Headers: []*routev3.HeaderMatcher{{Name: "end-user"}}}, Metadata: vsMeta},
					{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/v[0-9]+"}}}, Metadata: vsMeta},
					{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}},
				}},
			}},
			&routev3.RouteConfiguration{Name: "http.80"},
		},
		xds.EndpointType: {
			&endpointv3.ClusterLoadAssignment{ClusterName: "outbound|9080|v1|reviews.shop.svc.cluster.local", Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality: &corev3.Locality{Region: "us-east", Zone: "a"},
				LbEndpoints: []*endpointv3.LbEndpoint{
					{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
						SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
						HealthStatus: corev3.HealthStatus_HEALTHY, LoadBalancingWeight: wrapperspb.UInt32(1)},
					{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
						SocketAddress: &corev3.SocketAddress{Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
						HealthStatus: corev3.HealthStatus_UNHEALTHY},
				},
			}}},
		},
	})
	for _, tt := range []struct {
		view string
		f    proxyConfigFilter
		want string
	}{
		{"clusters", proxyConfigFilter{}, `SERVICE FQDN                    PORT  SUBSET  DIRECTION  TYPE          DESTINATION RULE
PassthroughCluster              -     -       -          ORIGINAL_DST  -
api.example.com                 443   -       outbound   STRICT_DNS    -
reviews.shop.svc.cluster.local  9080  -       outbound   EDS           reviews.shop
reviews.shop.svc.cluster.local  9080  v1      outbound   EDS           reviews.shop
`},
		{"clusters", proxyConfigFilter{fqdn: "reviews", subset: "v1"}, `SERVICE FQDN                    PORT  SUBSET  DIRECTION  TYPE  DESTINATION RULE
reviews.shop.svc.cluster.local  9080  v1      outbound   EDS   reviews.shop
`},
		{"listeners", proxyConfigFilter{}, `NAME                                 ADDRESS  PORT  MATCH                                    DESTINATION
0.0.0.0_9080                         0.0.0.0  9080  transport raw_buffer; alpn http/1.1,h2c  Route: 9080
0.0.0.0_9080                         0.0.0.0  9080  ALL                                      Cluster: PassthroughCluster
reviews.shop.svc.cluster.local:9080  -        9080  ALL                                      Route: outbound|9080||reviews.shop.svc.cluster.local
`},
		{"listeners", proxyConfigFilter{address: "0.0.0.0"}, `NAME          ADDRESS  PORT  MATCH                                    DESTINATION
0.0.0.0_9080  0.0.0.0  9080  transport raw_buffer; alpn http/1.1,h2c  Route: 9080
0.0.0.0_9080  0.0.0.0  9080  ALL                                      Cluster: PassthroughCluster
`},
		{"routes", proxyConfigFilter{}, `NAME  VHOST NAME                           DOMAINS          MATCH             VIRTUAL SERVICE
9080  reviews.shop.svc.cluster.local:9080  reviews +2 more  /api* (+headers)  reviews.shop
9080  reviews.shop.svc.cluster.local:9080  reviews +2 more  /v[0-9]+          reviews.shop
9080  reviews.shop.svc.cluster.local:9080  reviews +2 more  /*                -
`},
		{"routes", proxyConfigFilter{name: "http.80"}, "NAME  VHOST NAME  DOMAINS  MATCH  VIRTUAL SERVICE\n"},
		{"endpoints", proxyConfigFilter{}, `ENDPOINT       STATUS     LOCALITY   WEIGHT  CLUSTER
10.0.0.1:9080  HEALTHY    us-east/a  1       outbound|9080|v1|reviews.shop.svc.cluster.local
10.0.0.2:9080  UNHEALTHY  us-east/a  -       outbound|9080|v1|reviews.shop.svc.cluster.local
`},
		{"endpoints", proxyConfigFilter{status: "unhealthy"}, `ENDPOINT       STATUS     LOCALITY   WEIGHT  CLUSTER
10.0.0.2:9080  UNHEALTHY  us-east/a  -       outbound|9080|v1|reviews.shop.svc.cluster.local
`},
	} {
		var out bytes.Buffer
		if err := writeProxyConfigView(&out, tt.view, raw, tt.f); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("%s %+v:\n%s\nwant\n%s", tt.view, tt.f, out.String(), tt.want)
		}
	}
}
