package xds

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Credentials are the TLS key pairs a Gateway server's (or a DestinationRule's)
// credentialName names, which navarch's CA holds (`navarch credential`). Envoy asks
// for them by SDS under Istio's names: kubernetes://<name> for the certificate and
// key, kubernetes://<name>-cacert for the CA certificates client certificates must
// chain to. A proxy gets only credentials of the namespace it authenticated in (its
// certificate's), over the TLS xDS port; a plaintext proxy gets none.

const (
	credentialSDSPrefix = "kubernetes://"
	caCertSuffix        = "-cacert"
)

// credentialSDS is the SDS reference to credential name (name+caCertSuffix for its CA).
func credentialSDS(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: credentialSDSPrefix + name, SdsConfig: adsConfigSource()}
}

// credentialSecret builds the SDS secret named name (kubernetes://...) for stream c:
// nil unless c authenticated and its namespace holds the credential.
func (s *Server) credentialSecret(c *conn, name string) *Resource {
	cred, ok := strings.CutPrefix(name, credentialSDSPrefix)
	if !ok || c.identity == nil || s.secretSource == nil {
		return nil
	}
	ns := c.identity.Namespace
	var sec *tlsv3.Secret
	if chain, key, _, ok := s.secretSource.Credential(ns, cred); ok {
		sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chain}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}},
		}}}
	} else if base, isCA := strings.CutSuffix(cred, caCertSuffix); isCA {
		if _, _, ca, ok := s.secretSource.Credential(ns, base); ok && len(ca) > 0 {
			sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca}},
			}}}
		}
	}
	if sec == nil {
		s.log.Warn("a proxy asked for a credential its namespace does not hold", "proxy", c.proxy.ID, "namespace", ns, "credential", cred)
		return nil
	}
	r, err := newResource(SecretType, name, sec)
	if err != nil {
		s.log.Error("building a credential secret", "credential", ns+"/"+cred, "err", err)
		return nil
	}
	return r
}
