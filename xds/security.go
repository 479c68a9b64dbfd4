package xds

import (
	"cmp"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Certificates reach proxyless gRPC applications through grpc-go's certificate
// provider plugins, configured in their bootstrap (navarch bootstrap writes a
// file_watcher instance named "default" reading the files `navarch agent certs`
// keeps fresh). Resources refer to the instance and, as Istio names them, to the
// workload certificate "default" and the trust bundle "ROOTCA".
const (
	certProviderInstance = "default"
	certName             = "default"
	rootCertName         = "ROOTCA"
	tlsTransportSocket   = "envoy.transport_sockets.tls"
)

// mtlsMode is the effective PeerAuthentication mode of a workload.
type mtlsMode int

const (
	mtlsPermissive mtlsMode = iota
	mtlsStrict
	mtlsDisable
)

// peerAuthMode returns the mTLS mode a workload in namespace ns with labels serves
// port with, as Istio resolves PeerAuthentication: a policy selecting the workload
// (its port-level setting first), else its namespace's policy, else the mesh policy
// (root namespace, no selector); UNSET inherits from the next level. PERMISSIVE when
// nothing says otherwise.
func peerAuthMode(snap *registry.Snapshot, rootNS, ns string, labels map[string]string, port uint32) mtlsMode {
	mode, _ := peerAuthModeOf(snap, rootNS, ns, labels, port)
	return mode
}

// peerAuthModeOf is peerAuthMode with the policy that decided it (nil when none did).
func peerAuthModeOf(snap *registry.Snapshot, rootNS, ns string, labels map[string]string, port uint32) (mtlsMode, *api.Resource) {
	workload, namespace, mesh := peerAuthPolicies(snap, rootNS, ns, labels)
	if workload != nil {
		if m, ok := peerAuthSpec(workload).PortLevelMtls[port]; ok && m.GetMode() != security.PeerAuthentication_MutualTLS_UNSET {
			return modeOf(m.GetMode()), workload
		}
	}
	for _, r := range []*api.Resource{workload, namespace, mesh} {
		if m := peerAuthSpec(r).GetMtls().GetMode(); m != security.PeerAuthentication_MutualTLS_UNSET {
			return modeOf(m), r
		}
	}
	return mtlsPermissive, nil
}

// peerAuthSpec is r's PeerAuthentication, nil for a nil r.
func peerAuthSpec(r *api.Resource) *security.PeerAuthentication {
	if r == nil {
		return nil
	}
	return r.Spec.(*security.PeerAuthentication)
}

// peerAuthPorts returns the ports the PeerAuthentication selecting a workload sets a
// mode for.
func peerAuthPorts(snap *registry.Snapshot, ns string, labels map[string]string) []uint32 {
	workload, _, _ := peerAuthPolicies(snap, "", ns, labels)
	levels := peerAuthSpec(workload).GetPortLevelMtls()
	out := make([]uint32, 0, len(levels))
	for port := range levels {
		out = append(out, port)
	}
	return out
}

// peerAuthPolicies returns the PeerAuthentications that apply to a workload: the oldest
// selecting it, its namespace's, the mesh's (nil where there is none).
func peerAuthPolicies(snap *registry.Snapshot, rootNS, ns string, labels map[string]string) (workload, namespace, mesh *api.Resource) {
	for _, r := range snap.Config(api.PeerAuthentication) {
		sel := peerAuthSpec(r).GetSelector().GetMatchLabels()
		switch {
		case r.Meta.Namespace == ns && len(sel) > 0 && registry.LabelsMatch(labels, sel):
			if workload == nil {
				workload = r
			}
		case r.Meta.Namespace == ns && len(sel) == 0:
			if namespace == nil {
				namespace = r
			}
		case r.Meta.Namespace == rootNS && len(sel) == 0:
			if mesh == nil {
				mesh = r
			}
		}
	}
	return workload, namespace, mesh
}

func modeOf(m security.PeerAuthentication_MutualTLS_Mode) mtlsMode {
	switch m {
	case security.PeerAuthentication_MutualTLS_STRICT:
		return mtlsStrict
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return mtlsDisable
	}
	return mtlsPermissive
}

// clientUsesMTLS decides whether a proxyless client talks mTLS to a cluster: an
// explicit DestinationRule tls mode decides (ISTIO_MUTUAL yes, anything else no:
// grpc-go takes certificates only from provider instances, not from the files SIMPLE
// and MUTUAL name); without one, mTLS is used when every endpoint requires it
// (STRICT), since a proxyless server cannot tell TLS from plaintext on one port and so
// serves PERMISSIVE as plaintext.
func clientUsesMTLS(ctx *Context, tp *networking.TrafficPolicy, port registry.Port, wls []*registry.Workload) bool {
	if tls := tp.GetTls(); tls != nil {
		return tls.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL
	}
	if len(wls) == 0 || !autoMTLS(ctx) {
		return false
	}
	for _, w := range wls {
		if peerAuthMode(ctx.Snapshot, ctx.RootNamespace, w.Namespace, w.Labels, w.PortFor(port)) != mtlsStrict {
			return false
		}
	}
	return true
}

// takesAutoMTLS reports whether an Envoy's automatic mTLS talks mTLS to workload w
// on port, as Istio's does by endpoint: w has a proxy (registry.Workload.MeshTLS:
// Istio's tlsMode label, which its injector sets, or a WorkloadEntry's service
// account) and does not refuse mTLS (DISABLE). A workload without a proxy's mark
// under STRICT is taken to have none, as by istiod (its mtlsChecker).
func takesAutoMTLS(ctx *Context, w *registry.Workload, port registry.Port) bool {
	return w.MeshTLS() && peerAuthMode(ctx.Snapshot, ctx.RootNamespace, w.Namespace, w.Labels, w.PortFor(port)) != mtlsDisable
}

// endpointMTLS reports whether an Envoy talks mTLS to workload w on port under
// traffic policy tp, as istiod decides it by endpoint: a DestinationRule's TLS mode
// decides (ISTIO_MUTUAL yes, any other no), else automatic mTLS (takesAutoMTLS).
// Such endpoints carry the metadata autoMTLSMatches selects by (endpoints.go), and
// only they are reached through another network's gateways.
func endpointMTLS(ctx *Context, tp *networking.TrafficPolicy, w *registry.Workload, port registry.Port) bool {
	if tls := tp.GetTls(); tls != nil {
		return tls.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL
	}
	return takesAutoMTLS(ctx, w, port)
}

// transportSocketMatch is the endpoint metadata key Envoy matches transport sockets
// by, and tlsModeIstio the match of the endpoints that take mTLS.
const transportSocketMatch = "envoy.transport_socket_match"

var tlsModeIstio = &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}}

// autoMTLSMatches are the transport sockets of an Envoy cluster some of whose
// endpoints take mTLS and others not (takesAutoMTLS), as istiod builds them: mTLS to
// the endpoints whose metadata says tlsMode istio, plaintext to the rest.
func autoMTLSMatches(mtls *corev3.TransportSocket) []*clusterv3.Cluster_TransportSocketMatch {
	return []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: tlsModeIstio, TransportSocket: mtls},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{
			Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}}},
	}
}

// spiffeID is the identity of a workload's service account.
func spiffeID(trustDomain, ns, sa string) string {
	if sa == "" {
		sa = "default"
	}
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ALPN values Envoy sidecars offer and look for on mTLS between workloads, as Istio's:
// a sidecar serving PERMISSIVE terminates TLS only from a peer that offers them and
// passes other TLS through to the application.
var (
	alpnMesh   = []string{"istio-peer-exchange", "istio"}
	alpnMeshH2 = []string{"istio-peer-exchange", "istio", "h2"}
	// alpnMeshInbound is what an inbound chain (and an AUTO_PASSTHROUGH gateway's)
	// takes as mTLS from a peer: what navarch's sidecars offer, and what Istio's offer
	// besides (its istio.alpn filter names the HTTP version: istio-http/1.1,
	// istio-h2), in istiod's order.
	alpnMeshInbound = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
)

// certSource is where a proxy takes the certificate ("default") and trust bundle
// ("ROOTCA") of mTLS between workloads from.
type certSource int

const (
	// certProviders: grpc-go's certificate provider instances (the files `navarch
	// agent certs` or istio-agent writes).
	certProviders certSource = iota
	// certADS: SDS on the proxy's ADS stream, from the node that serves it (an
	// Envoy of navarch's bootstrap, which has no other SDS server).
	certADS
	// certAgent: SDS from istio-agent beside the proxy (istio-proxy), over its
	// bootstrap's sds-grpc cluster, as istiod has it: istio-agent makes the key,
	// which never leaves the workload, and has it signed by a node's CSR API.
	certAgent
)

// certSource is where the proxy takes its mesh certificate from (certSource).
func (ctx *Context) certSource() certSource {
	switch {
	case ctx.Proxy.Generator == GeneratorGRPC:
		return certProviders
	case ctx.Proxy.IstioProxy:
		return certAgent
	}
	return certADS
}

// sdsConfig is where an Envoy of src asks for the secrets of mTLS between workloads.
func (src certSource) sdsConfig() *corev3.ConfigSource {
	if src != certAgent {
		return adsConfigSource()
	}
	c := agentSDSConfig()
	c.InitialFetchTimeout = durationpb.New(0) // wait for istio-agent however long it takes
	return c
}

// agentSDSConfig is istio-agent's SDS server, through the sds-grpc cluster; without
// an initial fetch timeout of its own (Envoy's), as istiod asks it for files.
func agentSDSConfig() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:                   corev3.ApiConfigSource_GRPC,
			SetNodeOnFirstMessageOnly: true,
			TransportApiVersion:       corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: agentSDSCluster}}}},
		}},
		ResourceApiVersion: corev3.ApiVersion_V3,
	}
}

// agentSDSCluster is the cluster of istio-proxy's bootstrap that reaches
// istio-agent's SDS server.
const agentSDSCluster = "sds-grpc"

// upstreamTLS is the transport socket of a client talking mTLS to workloads whose
// certificates must carry one of sans; Envoy sends sni (meshSNI), by which a network
// gateway on the way forwards the connection. grpc-go takes its certificates from
// certificate provider instances; Envoy from SDS (src) and offers the mesh's ALPN
// (with h2 for HTTP/2 ports, so that a proxyless gRPC server, which insists on h2,
// accepts the connection).
func upstreamTLS(m *meshconfig.MeshConfig, sans []string, src certSource, http2 bool, sni string) *corev3.TransportSocket {
	vc := &tlsv3.CertificateValidationContext{}
	for _, s := range sans {
		//lint:ignore SA1019 grpc-go checks server identities only through this field
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}})
	}
	common := meshTLS(vc, src)
	envoy := src != certProviders
	if envoy {
		common.AlpnProtocols = alpnMesh
		if http2 {
			common.AlpnProtocols = alpnMeshH2
		}
		common.TlsParams = withTLSDefaults(upstreamTLSVersions(), m.GetTlsDefaults(), false)
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common}
	if envoy {
		ctx.Sni = sni // grpc-go has no use for it
	}
	return transportSocket(ctx)
}

// downstreamMTLS is the transport socket of a server that requires mTLS; alpn is what
// it offers clients (Envoy only). An Envoy server takes the mesh config's meshMTLS
// protocol version and cipher suites. A sidecar's (trustDomains given: those it takes
// peers of; nil for a gateway or a proxyless server) requires the peer's certificate
// to name a SPIFFE ID of one of them, and takes Istio's defaults for what meshMTLS
// leaves out, as istiod's sidecars do.
func downstreamMTLS(m *meshconfig.MeshConfig, trustDomains []string, src certSource, alpn ...string) *corev3.TransportSocket {
	vc := &tlsv3.CertificateValidationContext{}
	for _, td := range trustDomains {
		//lint:ignore SA1019 the typed replacement needs a SAN type; istiod sets this one
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}})
	}
	common := meshTLS(vc, src)
	common.AlpnProtocols = alpn
	if src != certProviders {
		common.TlsParams = meshMTLSParams(m, trustDomains != nil)
	}
	return transportSocket(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: common})
}

// meshTLS is the TLS context of mTLS between workloads: the workload certificate
// "default" and the trust bundle "ROOTCA" (validating the peer with vc), from
// certificate provider instances (grpc-go) or SDS (Envoy), as src says.
func meshTLS(vc *tlsv3.CertificateValidationContext, src certSource) *tlsv3.CommonTlsContext {
	if src != certProviders {
		return &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: src.sdsConfig()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         vc,
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: src.sdsConfig()},
			}},
		}
	}
	vc.CaCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: certProviderInstance, CertificateName: rootCertName}
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: certProviderInstance, CertificateName: certName},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}
}

func transportSocket(tlsContext proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: tlsTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsContext)}}
}

// originatedTLS is the transport socket of an Envoy originating TLS to a
// destination as a DestinationRule's SIMPLE or MUTUAL mode says, as istiod builds
// it; nil for other modes. (grpc-go cannot read certificate files named in xDS, so
// proxyless clients get no TLS from these modes.)
//
//   - Certificates and keys come from the files the mode names (for istio-proxy,
//     from istio-agent by SDS: file-cert:<cert>~<key>, file-root:<ca or system>),
//     or from SDS by credentialName (kubernetes://<name>, the CA certificates
//     <name>-cacert). A
//     sidecar takes a credential only from a DestinationRule that selects it
//     (workloadSelector): else, as in Istio, the setting gives it no TLS at all,
//     lest every sidecar in the rule's scope hold the credential.
//   - The server is verified against caCertificates, else the system's CA
//     certificates (systemRoots; istiod has istio-agent serve them), with the
//     rule's subjectAltNames, else, for a service that is no Kubernetes Service,
//     its ServiceEntry's and its workloads' identities; insecureSkipVerify verifies
//     nothing.
//   - An HTTP/2 cluster offers h2 in ALPN.
func originatedTLS(ctx *Context, t *networking.ClientTLSSettings, svc *registry.Service, dr *api.Resource, http2 bool) *corev3.TransportSocket {
	mode := t.GetMode()
	if mode != networking.ClientTLSSettings_SIMPLE && mode != networking.ClientTLSSettings_MUTUAL {
		return nil
	}
	cred := t.GetCredentialName()
	if cred != "" && ctx.Proxy.Type != TypeRouter && (dr == nil || dr.Spec.(*networking.DestinationRule).GetWorkloadSelector() == nil) {
		return nil
	}
	sans := t.GetSubjectAltNames()
	if len(sans) == 0 && !svc.IsKubernetesService() {
		sans = serverSANs(ctx, nil, svc, ctx.Snapshot.Endpoints(svc))
	}
	exactSANs := func() []*matcherv3.StringMatcher {
		var out []*matcherv3.StringMatcher
		for _, san := range sans {
			out = append(out, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}})
		}
		return out
	}
	verify := !t.GetInsecureSkipVerify().GetValue()
	common := &tlsv3.CommonTlsContext{}
	if cred != "" {
		if mode == networking.ClientTLSSettings_MUTUAL {
			common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{credentialSDS(cred)}
		}
		if verify {
			//lint:ignore SA1019 the typed replacement needs a SAN type Istio's field does not carry
			vc := &tlsv3.CertificateValidationContext{MatchSubjectAltNames: exactSANs()}
			common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: vc, ValidationContextSdsSecretConfig: credentialSDS(cred + caCertSuffix)}}
		}
	} else if ctx.certSource() == certAgent {
		// istio-proxy: istio-agent reads the files (or finds the system's roots)
		// and serves them by SDS, renewed as they change, as istiod has it.
		if mode == networking.ClientTLSSettings_MUTUAL {
			common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{
				Name: "file-cert:" + t.GetClientCertificate() + "~" + t.GetPrivateKey(), SdsConfig: agentSDSConfig()}}
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}
		if verify {
			//lint:ignore SA1019 see above
			vc := &tlsv3.CertificateValidationContext{MatchSubjectAltNames: exactSANs()}
			if crl := t.GetCaCrl(); crl != "" {
				vc.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: crl}}
			}
			common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: vc,
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{
						Name: "file-root:" + cmp.Or(t.GetCaCertificates(), "system"), SdsConfig: agentSDSConfig()}}}
		}
	} else {
		if mode == networking.ClientTLSSettings_MUTUAL {
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.GetClientCertificate()}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.GetPrivateKey()}},
			}}
		}
		vc := &tlsv3.CertificateValidationContext{}
		if verify {
			vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: cmp.Or(t.GetCaCertificates(), systemRoots)}}
			//lint:ignore SA1019 see above
			vc.MatchSubjectAltNames = exactSANs()
			if crl := t.GetCaCrl(); crl != "" {
				vc.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: crl}}
			}
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	common.TlsParams = withTLSDefaults(upstreamTLSVersions(), ctx.Mesh.GetTlsDefaults(), false)
	if http2 {
		common.AlpnProtocols = []string{"h2"}
	}
	return transportSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: t.GetSni()})
}

// systemRoots is the file of the system's CA certificates Envoy verifies servers
// against where a DestinationRule names none: Debian's and Ubuntu's, as in Istio's
// proxy image. (istiod has istio-agent find and serve them; Envoy itself cannot.)
const systemRoots = "/etc/ssl/certs/ca-certificates.crt"

// autoSNI makes an Envoy cluster originating TLS by a DestinationRule send, where
// the rule names no SNI, the request's host as SNI, and, where it names no SANs
// either and verifies the server, check the server's certificate against that
// host, as istiod sets it (Envoy's auto_sni and auto_san_validation, HTTP only). A
// cluster without an upstream protocol gets explicit HTTP/1, which Envoy requires
// of these options, as from istiod.
func autoSNI(c *clusterv3.Cluster, t *networking.ClientTLSSettings) {
	if t.GetSni() != "" {
		return
	}
	var opts httpv3.HttpProtocolOptions
	if a := c.TypedExtensionProtocolOptions[httpProtocolOptions]; a != nil {
		if err := a.UnmarshalTo(&opts); err != nil {
			return
		}
	}
	if opts.UpstreamHttpProtocolOptions == nil {
		opts.UpstreamHttpProtocolOptions = &corev3.UpstreamHttpProtocolOptions{}
	}
	opts.UpstreamHttpProtocolOptions.AutoSni = true
	opts.UpstreamHttpProtocolOptions.AutoSanValidation = len(t.GetSubjectAltNames()) == 0 && !t.GetInsecureSkipVerify().GetValue()
	if opts.UpstreamProtocolOptions == nil {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}
	}
	if c.TypedExtensionProtocolOptions == nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{}
	}
	c.TypedExtensionProtocolOptions[httpProtocolOptions] = mustAny(&opts)
}

// upstreamTLSVersions are the TLS versions an Envoy client offers, istiod's: 1.2 up to
// 1.3 (Envoy's own default stops a client at 1.2).
func upstreamTLSVersions() *tlsv3.TlsParameters {
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}
}

// meshMTLSParams are the TLS parameters of servers under mesh mTLS, as istiod's: the
// mesh config's meshMTLS minimum protocol version (TLS 1.2 by default) up to 1.3,
// and its cipher suites, else, for a sidecar, Istio's (meshCiphers); nil (Envoy's
// defaults) for a gateway when meshMTLS sets nothing.
func meshMTLSParams(m *meshconfig.MeshConfig, sidecar bool) *tlsv3.TlsParameters {
	mt := m.GetMeshMTLS()
	ciphers := api.CipherSuites(mt.GetCipherSuites())
	if !sidecar && mt.GetMinProtocolVersion() == meshconfig.MeshConfig_TLSConfig_TLS_AUTO && len(ciphers) == 0 {
		return nil
	}
	if len(ciphers) == 0 && sidecar {
		ciphers = meshCiphers
	}
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsVersion(mt.GetMinProtocolVersion()),
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3, CipherSuites: ciphers}
}

// meshCiphers are the cipher suites an Envoy server under mesh mTLS takes unless the
// mesh config names others: Istio's (AES-GCM only, with ECDHE first).
var meshCiphers = []string{"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-GCM-SHA256"}

// trustDomains are the trust domains whose workloads a sidecar takes mTLS from: the
// mesh's and its aliases (the mesh config's trustDomainAliases).
func (ctx *Context) trustDomains() []string {
	return append([]string{ctx.TrustDomain}, ctx.Mesh.GetTrustDomainAliases()...)
}

// tlsVersion is the Envoy version of a mesh config minimum: TLS 1.3 or 1.2, as Istio
// reads it.
func tlsVersion(v meshconfig.MeshConfig_TLSConfig_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	if v == meshconfig.MeshConfig_TLSConfig_TLSV1_3 {
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLSv1_2
}

// withTLSDefaults fills in p (nil for none) from the mesh config's tlsDefaults: ECDH
// curves and cipher suites p does not set, and for a server (downstream) the minimum
// protocol version. nil when neither sets anything. Curves and suites Envoy does
// not know are left out (the mesh config is accepted with a warning of them, as
// istiod takes it, but istiod sends them on and Envoy refuses the listener).
func withTLSDefaults(p *tlsv3.TlsParameters, d *meshconfig.MeshConfig_TLSConfig, downstream bool) *tlsv3.TlsParameters {
	if d == nil {
		return p
	}
	out := &tlsv3.TlsParameters{}
	if p != nil {
		out = proto.Clone(p).(*tlsv3.TlsParameters)
	}
	if len(out.EcdhCurves) == 0 {
		out.EcdhCurves = api.ECDHCurves(d.EcdhCurves)
	}
	if len(out.CipherSuites) == 0 {
		out.CipherSuites = api.CipherSuites(d.CipherSuites)
	}
	if downstream && out.TlsMinimumProtocolVersion == tlsv3.TlsParameters_TLS_AUTO && d.MinProtocolVersion != meshconfig.MeshConfig_TLSConfig_TLS_AUTO {
		out.TlsMinimumProtocolVersion = tlsVersion(d.MinProtocolVersion)
	}
	if proto.Equal(out, &tlsv3.TlsParameters{}) {
		return nil
	}
	return out
}
