package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// The TLS a gateway's (or a Sidecar ingress listener's) server terminates.

// serverTLS is the transport socket of a server terminating TLS: certificates by SDS
// from the credentials it names (credentialName, credentialNames) or from the files
// it names (which istio-proxy takes by SDS from istio-agent, as "file-cert:" and
// "file-root:" secrets, and a plain Envoy reads), or the workload's for ISTIO_MUTUAL; client certificates required for
// MUTUAL and ISTIO_MUTUAL, checked if offered for OPTIONAL_MUTUAL, against the CA of
// caCertCredentialName, of the first credential, or of the caCertificates file. The
// mesh config's tlsDefaults fill in the protocol and ciphers the settings leave out.
func serverTLS(ctx *Context, t *networking.ServerTLSSettings, http bool) *corev3.TransportSocket {
	m := ctx.Mesh
	var alpn []string
	if http {
		alpn = []string{"h2", "http/1.1"}
	}
	if t.GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL {
		return downstreamMTLS(m, nil, ctx.certSource(), alpn...)
	}
	common := &tlsv3.CommonTlsContext{AlpnProtocols: alpn}
	creds := t.GetCredentialNames()
	if t.GetCredentialName() != "" {
		creds = append([]string{t.GetCredentialName()}, creds...)
	}
	for _, name := range creds {
		common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, credentialSDS(name))
	}
	certs := t.GetTlsCertificates()
	if t.GetServerCertificate() != "" {
		certs = append([]*networking.ServerTLSSettings_TLSCertificate{{ServerCertificate: t.GetServerCertificate(), PrivateKey: t.GetPrivateKey()}}, certs...)
	}
	src := ctx.certSource()
	for _, c := range certs {
		if src == certAgent {
			// istio-agent reads the files and serves them by SDS, renewed as
			// they change, as istiod has istio-proxy take them.
			common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs,
				&tlsv3.SdsSecretConfig{Name: "file-cert:" + c.GetServerCertificate() + "~" + c.GetPrivateKey(), SdsConfig: agentSDSConfig()})
			continue
		}
		common.TlsCertificates = append(common.TlsCertificates, &tlsv3.TlsCertificate{
			CertificateChain: fileSource(c.GetServerCertificate()),
			PrivateKey:       fileSource(c.GetPrivateKey()),
		})
	}
	mutual := t.GetMode() == networking.ServerTLSSettings_MUTUAL || t.GetMode() == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	caCred := t.GetCaCertCredentialName()
	if caCred == "" && len(creds) > 0 && t.GetCaCertificates() == "" {
		caCred = creds[0]
	}
	if mutual && (caCred != "" || t.GetCaCertificates() != "") {
		vc := &tlsv3.CertificateValidationContext{VerifyCertificateSpki: t.GetVerifyCertificateSpki(), VerifyCertificateHash: t.GetVerifyCertificateHash()}
		if crl := t.GetCaCrl(); crl != "" && len(creds) == 0 {
			vc.Crl = fileSource(crl) // with a credential istiod ignores the file too
		}
		for _, san := range t.GetSubjectAltNames() {
			// A SAN of any type (DNS, URI, email, IP), as Istio matches it.
			//lint:ignore SA1019 the typed replacement needs a SAN type Istio's field does not carry
			vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, exact(san))
		}
		switch {
		case caCred != "":
			common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: vc, ValidationContextSdsSecretConfig: credentialSDS(caCred + caCertSuffix)}}
		case src == certAgent:
			common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: vc, ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "file-root:" + t.GetCaCertificates(), SdsConfig: agentSDSConfig()}}}
		default:
			vc.TrustedCa = fileSource(t.GetCaCertificates())
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	common.TlsParams = withTLSDefaults(tlsParams(t), m.GetTlsDefaults(), true)
	// Set either way, as istiod sets it.
	tc := &tlsv3.DownstreamTlsContext{CommonTlsContext: common, RequireClientCertificate: wrapperspb.Bool(t.GetMode() == networking.ServerTLSSettings_MUTUAL)}
	return transportSocket(tc)
}

// tlsParams are the protocol versions and cipher suites a server allows, when its
// settings name them (Envoy's defaults otherwise: TLS 1.2 to 1.3). Cipher suites Envoy
// does not know, and repeated ones, are left out, as Istio leaves them (it warns of
// them when the config is applied): Envoy refuses a listener that names one.
func tlsParams(t *networking.ServerTLSSettings) *tlsv3.TlsParameters {
	version := map[networking.ServerTLSSettings_TLSProtocol]tlsv3.TlsParameters_TlsProtocol{
		networking.ServerTLSSettings_TLSV1_0: tlsv3.TlsParameters_TLSv1_0,
		networking.ServerTLSSettings_TLSV1_1: tlsv3.TlsParameters_TLSv1_1,
		networking.ServerTLSSettings_TLSV1_2: tlsv3.TlsParameters_TLSv1_2,
		networking.ServerTLSSettings_TLSV1_3: tlsv3.TlsParameters_TLSv1_3,
	}
	p := &tlsv3.TlsParameters{TlsMinimumProtocolVersion: version[t.GetMinProtocolVersion()],
		TlsMaximumProtocolVersion: version[t.GetMaxProtocolVersion()], CipherSuites: api.CipherSuites(t.GetCipherSuites())}
	if proto.Equal(p, &tlsv3.TlsParameters{}) {
		return nil
	}
	return p
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}
