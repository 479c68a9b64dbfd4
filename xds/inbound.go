package xds

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// InboundListenerPrefix names the listener a proxyless gRPC server (xds.NewGRPCServer)
// asks for: its bootstrap's server_listener_resource_name_template is
// InboundListenerPrefix + "%s", and grpc-go puts the address it listens on ("ip:port")
// in place of %s. It is Istio's, so Istio bootstraps work unchanged.
const InboundListenerPrefix = "xds.istio.io/grpc/lds/inbound/"

// inboundListener builds the listener of a proxyless gRPC server listening on the
// address its name carries: one filter chain that requires mTLS when PeerAuthentication
// says STRICT for the workload and port (plaintext otherwise: grpc-go cannot tell TLS
// from plaintext on one port, so PERMISSIVE is served as plaintext, unless the
// workload carries Istio's security.istio.io/tlsMode: istio, which tells clients it
// takes mTLS: then, as istiod does, mTLS), and an HTTP
// connection manager whose routes let every RPC through to the server application
// after the RBAC filters of the AuthorizationPolicies that apply. ok is false when
// the name is not an inbound listener name.
func inboundListener(ctx *Context, name string) (*listenerv3.Listener, bool) {
	addr, ok := strings.CutPrefix(name, InboundListenerPrefix)
	if !ok {
		return nil, false
	}
	host, port, ok := splitHostPort(addr)
	if !ok {
		return nil, false
	}
	host = strings.Trim(host, "[]")
	p := ctx.Proxy
	filters := append(rbacFilters(ctx, p.Namespace, p.Labels), routerHTTPFilter())
	portStr := strconv.FormatUint(uint64(port), 10)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_" + portStr,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "inbound|" + portStr,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "inbound|" + portStr,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	fc := &listenerv3.FilterChain{
		Name: "inbound|" + portStr,
		Filters: []*listenerv3.Filter{{
			Name:       hcmFilterName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if mode := peerAuthMode(ctx.Snapshot, ctx.RootNamespace, p.Namespace, p.Labels, port); mode == mtlsStrict ||
		(mode == mtlsPermissive && p.Labels[tlsModeLabel] == "istio") {
		fc.TransportSocket = downstreamMTLS(nil, nil, certProviders)
	}
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(host, port),
		FilterChains:     []*listenerv3.FilterChain{fc},
		TrafficDirection: corev3.TrafficDirection_INBOUND,
	}, true
}

// tlsModeLabel is the label Istio's injector puts on workloads with a proxy (or a
// proxyless gRPC agent), "istio": they take mTLS.
const tlsModeLabel = "security.istio.io/tlsMode"
