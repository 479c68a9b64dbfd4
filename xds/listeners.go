package xds

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// HTTP filter names, as Envoy and Istio name them. Per-route fault configuration is
// keyed by faultFilter.
const (
	faultFilter  = "envoy.filters.http.fault"
	routerFilter = "envoy.filters.http.router"
	corsFilter   = "envoy.filters.http.cors"
	// hcmFilterName is the HTTP connection manager's network filter name.
	hcmFilterName = "envoy.filters.network.http_connection_manager"
)

// grpcListeners builds an API listener per service port, named host:port as a
// proxyless gRPC client asks for it when it dials xds:///host:port. Its HTTP connection
// manager takes routes by RDS from the route configuration outbound|<port>||<host> and
// runs the fault filter before the router.
type grpcListeners struct{}

func (grpcListeners) Name() string    { return "grpc-listeners" }
func (grpcListeners) TypeURL() string { return ListenerType }

func (grpcListeners) Generate(ctx *Context) []named {
	var out []named
	for _, svc := range ctx.Services {
		for _, port := range svc.Ports {
			if isUDP(port) || !ctx.importedOn(svc, port.Number) {
				continue
			}
			name := listenerName(svc.Hostname, port.Number)
			// An API listener depends on nothing but its service and port.
			out = append(out, shared(name, "", func() proto.Message { return apiListener(name, svc.Hostname, port.Number) }))
		}
	}
	return out
}

func apiListener(name, host string, port uint32) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + strconv.FormatUint(uint64(port), 10) + "_" + host,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: clusterName(host, port, ""),
		}},
		HttpFilters: clientFilters(),
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)}}
}

// envoyConnectionManager is an Envoy's HTTP connection manager as its network
// filter, with what istiod sets on every connection manager of a sidecar and a
// gateway: WebSocket upgrades; no stream idle timeout (Envoy's default, 5 minutes,
// would end quiet gRPC streams and long polls); paths normalized (RFC 3986) before
// routes and RBAC see them, so that /a/../admin cannot get past a rule on /admin
// (the mesh config's pathNormalization, BASE unless it says otherwise: NONE leaves
// paths as they come, MERGE_SLASHES merges repeated slashes too, and
// DECODE_AND_MERGE_SLASHES also decodes escaped slashes, %2F, first; escaped
// slashes are otherwise left as they are); 100-continue passed through; and what
// the proxy's metadata asks for, HTTP/1.0 (HTTP10) and an idle timeout of its
// connections (IDLE_TIMEOUT).
func envoyConnectionManager(ctx *Context, hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	mesh := ctx.Mesh
	if ctx.Proxy.AcceptHTTP10 {
		if hcm.HttpProtocolOptions == nil {
			hcm.HttpProtocolOptions = &corev3.Http1ProtocolOptions{}
		}
		hcm.HttpProtocolOptions.AcceptHttp_10 = true
	}
	if ctx.Proxy.IdleTimeout != nil {
		hcm.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: ctx.Proxy.IdleTimeout}
	}
	hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	hcm.StreamIdleTimeout = durationpb.New(0)
	hcm.NormalizePath = wrapperspb.Bool(true)
	hcm.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	switch mesh.GetPathNormalization().GetNormalization() {
	case meshconfig.MeshConfig_ProxyPathNormalization_NONE:
		hcm.NormalizePath = wrapperspb.Bool(false)
	case meshconfig.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		hcm.MergeSlashes = true
	case meshconfig.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		hcm.MergeSlashes = true
		hcm.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	}
	hcm.Proxy_100Continue = true
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
}

// clientFilters is the HTTP filter chain of outbound traffic: fault injection, then the
// router (grpc-go requires the router last).
func clientFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		{Name: faultFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
		routerHTTPFilter(),
	}
}

// routerHTTPFilter is the router, the last HTTP filter of every chain.
func routerHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
}

// mustAny wraps a message in an Any. Marshalling a generated message that we built
// cannot fail short of a bug, so a failure panics. A message that fails its Validate
// is packed as a mark that makes the resource holding it invalid (validateNested).
func mustAny(m proto.Message) *anypb.Any {
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			// Marked, for the resource that holds it to be refused (validateNested).
			return &anypb.Any{TypeUrl: invalidAnyType, Value: []byte(string(proto.MessageName(m)) + ": " + err.Error())}
		}
	}
	b, err := deterministic.Marshal(m)
	if err != nil {
		panic("marshalling " + string(proto.MessageName(m)) + ": " + err.Error())
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(proto.MessageName(m)), Value: b}
}
