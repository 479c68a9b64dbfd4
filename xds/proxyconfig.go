package xds

import (
	"encoding/json"
	"fmt"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	preservecasev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/header_formatters/preserve_case/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// A proxy's ProxyConfig (Istio's meshconfig.ProxyConfig) is its own when it sends one
// (PROXY_CONFIG metadata: istio-agent sends the mesh config's defaultConfig with its
// pod's proxy.istio.io/config annotation merged over it), else the mesh config's
// defaultConfig, as istiod takes it. Of it navarch translates the headers its Envoys
// add, keep or take out (proxyHeaders), a gateway's topology (numTrustedProxies,
// forwardClientCertDetails, proxyProtocol) and of tracing the sampling, custom tags,
// maxPathTagLength and enableIstioTags; the rest is istio-agent's.

// parseProxyConfig reads the PROXY_CONFIG metadata v, keeping what navarch
// translates; fields this build does not know are skipped, as a newer istio-agent
// may send them.
func parseProxyConfig(v *structpb.Value) (*meshconfig.ProxyConfig, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var pc meshconfig.ProxyConfig
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &pc); err != nil {
		return nil, fmt.Errorf("PROXY_CONFIG: %w", err)
	}
	kept := &meshconfig.ProxyConfig{ProxyHeaders: pc.ProxyHeaders, GatewayTopology: pc.GatewayTopology}
	if pc.Tracing != nil {
		kept.Tracing = &meshconfig.Tracing{Sampling: pc.Tracing.Sampling, CustomTags: pc.Tracing.CustomTags,
			MaxPathTagLength: pc.Tracing.MaxPathTagLength, EnableIstioTags: pc.Tracing.EnableIstioTags}
	}
	return kept, nil
}

// proxyConfig is the ProxyConfig of the proxy being built for.
func (ctx *Context) proxyConfig() *meshconfig.ProxyConfig {
	if ctx.Proxy.ProxyConfig != nil {
		return ctx.Proxy.ProxyConfig
	}
	return ctx.Mesh.GetDefaultConfig()
}

// listenerClass is the side of an Envoy an HTTP connection manager is on.
type listenerClass int

const (
	classOutbound listenerClass = iota // a sidecar's traffic out
	classInbound                       // a sidecar's traffic in
	classGateway                       // a gateway's
)

// proxyHeaders are what an Envoy's HTTP connection managers (and their routers and
// routes) do with headers, from the ProxyConfig's proxyHeaders, with istiod's
// defaults: the server header istio-envoy in responses from the inbound side and
// gateways (outbound keeps Envoy's, "envoy"), x-request-id generated,
// x-envoy-attempt-count sent upstream, x-envoy-* debug headers added, a client
// certificate's details appended to x-forwarded-client-cert on the inbound side.
type proxyHeaders struct {
	serverName      string
	serverTransform hcmv3.HttpConnectionManager_ServerHeaderTransformation
	requestID       *wrapperspb.BoolValue // nil: Envoy's default, generated
	attemptCount    bool
	suppressDebug   bool
	xForwardedPort  bool
	xForwardedHost  bool // on routes that rewrite, and to unknown hosts
	// preserveCase keeps the case of HTTP/1 header names, from the client through
	// to the workload and back (Envoy lower-cases them).
	preserveCase bool
	// skipMXHeaders keeps a client's metadata exchange headers from destinations
	// outside the mesh (metadataExchangeHeaders IN_MESH).
	skipMXHeaders bool
	// Inbound only (a gateway's come from its topology).
	forwardClientCert hcmv3.HttpConnectionManager_ForwardClientCertDetails
	currentCert       *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails
}

// headersFor returns the proxy headers of the connection managers of class, worked
// out once per build (every connection manager, rewriting route and route
// configuration asks).
func headersFor(ctx *Context, class listenerClass) proxyHeaders {
	return derived(ctx, "proxy-headers-"+strconv.Itoa(int(class)), func() proxyHeaders { return buildHeaders(ctx, class) })
}

func buildHeaders(ctx *Context, class listenerClass) proxyHeaders {
	ph := proxyHeaders{serverName: envoyServerName, serverTransform: hcmv3.HttpConnectionManager_OVERWRITE, attemptCount: true,
		forwardClientCert: hcmv3.HttpConnectionManager_APPEND_FORWARD}
	if class == classOutbound {
		ph.serverName = ""
	}
	c := ctx.proxyConfig().GetProxyHeaders()
	switch {
	case c.GetServer().GetDisabled().GetValue():
		ph.serverName, ph.serverTransform = "", hcmv3.HttpConnectionManager_PASS_THROUGH
	case c.GetServer().GetValue() != "":
		ph.serverName = c.GetServer().GetValue()
	}
	if c.GetRequestId().GetDisabled().GetValue() {
		ph.requestID = wrapperspb.Bool(false)
	}
	ph.attemptCount = !c.GetAttemptCount().GetDisabled().GetValue()
	ph.suppressDebug = c.GetEnvoyDebugHeaders().GetDisabled().GetValue()
	ph.xForwardedPort = c.GetXForwardedPort().GetEnabled().GetValue()
	ph.xForwardedHost = c.GetXForwardedHost().GetEnabled().GetValue()
	ph.preserveCase = c.GetPreserveHttp1HeaderCase().GetValue()
	ph.skipMXHeaders = c.GetMetadataExchangeHeaders().GetMode() == meshconfig.ProxyConfig_ProxyHeaders_IN_MESH
	if f := c.GetForwardedClientCert(); f != meshconfig.ForwardClientCertDetails_UNDEFINED {
		ph.forwardClientCert = envoyForwardClientCert(f)
	}
	cur := c.GetSetCurrentClientCertDetails()
	ph.currentCert = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
		Subject: wrapperspb.Bool(cur.GetSubject() == nil || cur.GetSubject().GetValue()),
		Uri:     cur.GetUri() == nil || cur.GetUri().GetValue(),
		Dns:     cur.GetDns() == nil || cur.GetDns().GetValue(),
		Cert:    cur.GetCert().GetValue(),
		Chain:   cur.GetChain().GetValue(),
	}
	return ph
}

// apply sets on hcm what the headers say of it (but the client certificate's, which
// the inbound side and gateways set apart).
func (ph proxyHeaders) apply(hcm *hcmv3.HttpConnectionManager) {
	hcm.ServerName, hcm.ServerHeaderTransformation = ph.serverName, ph.serverTransform
	hcm.GenerateRequestId = ph.requestID
	hcm.AppendXForwardedPort = ph.xForwardedPort
	if ph.preserveCase {
		if hcm.HttpProtocolOptions == nil {
			hcm.HttpProtocolOptions = &corev3.Http1ProtocolOptions{}
		}
		hcm.HttpProtocolOptions.HeaderKeyFormat = preserveCaseFormat()
	}
}

// preserveCaseFormat is Envoy's stateful header formatter that writes HTTP/1 header
// names in the case they were read in.
func preserveCaseFormat() *corev3.Http1ProtocolOptions_HeaderKeyFormat {
	return &corev3.Http1ProtocolOptions_HeaderKeyFormat{HeaderFormat: &corev3.Http1ProtocolOptions_HeaderKeyFormat_StatefulFormatter{
		StatefulFormatter: &corev3.TypedExtensionConfig{Name: "preserve_case", TypedConfig: mustAny(&preservecasev3.PreserveCaseFormatterConfig{})}}}
}

// preserveClusterCase makes an Envoy cluster of a port that may speak HTTP/1 (http1:
// HTTP/1 or detected) keep the case of header names, as istiod does under
// preserveHttp1HeaderCase: in the HTTP/1 options of whatever upstream protocol it
// has, or, with none, explicit HTTP/1. A cluster that speaks HTTP/2 is left as it is.
func preserveClusterCase(c *clusterv3.Cluster, http1 bool) {
	var opts httpv3.HttpProtocolOptions
	if a := c.TypedExtensionProtocolOptions[httpProtocolOptions]; a != nil {
		if err := a.UnmarshalTo(&opts); err != nil {
			return // not navarch's to change (an EnvoyFilter's own)
		}
	}
	switch u := opts.UpstreamProtocolOptions.(type) {
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		d := u.UseDownstreamProtocolConfig
		if d.HttpProtocolOptions == nil {
			d.HttpProtocolOptions = &corev3.Http1ProtocolOptions{}
		}
		d.HttpProtocolOptions.HeaderKeyFormat = preserveCaseFormat()
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		h1 := u.ExplicitHttpConfig.GetHttpProtocolOptions()
		if h1 == nil {
			return // HTTP/2
		}
		h1.HeaderKeyFormat = preserveCaseFormat()
	case nil:
		if !http1 {
			return
		}
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
				HttpProtocolOptions: &corev3.Http1ProtocolOptions{HeaderKeyFormat: preserveCaseFormat()}}}}
	default:
		return // HTTP/3
	}
	if c.TypedExtensionProtocolOptions == nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{}
	}
	c.TypedExtensionProtocolOptions[httpProtocolOptions] = mustAny(&opts)
}

// router is the router filter, which adds no x-envoy-* debug headers where the
// proxyHeaders say so.
func (ph proxyHeaders) router() *hcmv3.HttpFilter {
	if !ph.suppressDebug {
		return routerHTTPFilter()
	}
	return &hcmv3.HttpFilter{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{SuppressEnvoyHeaders: true})}}
}

// envoyForwardClientCert is Envoy's value of the mesh config's enum (which has
// UNDEFINED first).
func envoyForwardClientCert(f meshconfig.ForwardClientCertDetails) hcmv3.HttpConnectionManager_ForwardClientCertDetails {
	return hcmv3.HttpConnectionManager_ForwardClientCertDetails(f - 1)
}

// gatewayClientCert is what a gateway does with x-forwarded-client-cert: its
// topology's forwardClientCertDetails, else SANITIZE_SET; the details of the
// client's certificate are set where the header is set or appended to.
func gatewayClientCert(ctx *Context) (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	f := hcmv3.HttpConnectionManager_SANITIZE_SET
	if t := ctx.proxyConfig().GetGatewayTopology().GetForwardClientCertDetails(); t != meshconfig.ForwardClientCertDetails_UNDEFINED {
		f = envoyForwardClientCert(t)
	}
	if f != hcmv3.HttpConnectionManager_APPEND_FORWARD && f != hcmv3.HttpConnectionManager_SANITIZE_SET {
		return f, nil
	}
	return f, &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Cert: true, Dns: true, Uri: true}
}
