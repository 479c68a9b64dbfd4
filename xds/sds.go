package xds

import (
	"context"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Identity is who a proxy proved to be: the namespace and service account of its
// SPIFFE ID.
type Identity struct {
	Namespace      string
	ServiceAccount string
}

// Authenticator tells who is at the other end of a stream: from its TLS client
// certificate or a bearer token. It may block briefly (a token lookup); it is called
// once per stream, from the stream's goroutine.
type Authenticator interface {
	Authenticate(ctx context.Context) (Identity, error)
}

// SecretSource issues what SDS serves: a workload certificate and key for an
// identity, the trust bundle, and the credentials gateways serve with (credentials.go).
// Implementations cache certificates and renew them well before they expire. Called
// from push workers and stream goroutines.
type SecretSource interface {
	WorkloadSecret(ctx context.Context, id Identity) (certChainPEM, keyPEM []byte, expires time.Time, err error)
	TrustBundlePEM() []byte
	// Credential returns the credential namespace/name; ok is false when there is none.
	Credential(namespace, name string) (certChainPEM, keyPEM, caPEM []byte, ok bool)
}

// Secret names, as Istio's SDS names them.
const (
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
)

// secrets returns the secrets a stream may have: none for a proxy that did not
// authenticate, else its own certificate and the trust bundle. They are built per
// stream and never shared through a class build, so a private key only ever goes to
// the identity it belongs to.
func (s *Server) secrets(ctx context.Context, c *conn) (map[string]*Resource, error) {
	if c.identity == nil || s.secretSource == nil {
		return nil, nil
	}
	chain, key, _, err := s.secretSource.WorkloadSecret(ctx, *c.identity)
	if err != nil {
		return nil, fmt.Errorf("issuing the certificate of %s/%s: %w", c.identity.Namespace, c.identity.ServiceAccount, err)
	}
	out := map[string]*Resource{}
	def := &tlsv3.Secret{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chain}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}},
	}}}
	root := &tlsv3.Secret{Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.secretSource.TrustBundlePEM()}},
	}}}
	for _, sec := range []*tlsv3.Secret{def, root} {
		r, err := newResource(SecretType, sec.Name, sec)
		if err != nil {
			return nil, err
		}
		out[sec.Name] = r
	}
	return out, nil
}

// offer is what a stream can be sent of one type: every resource (for wildcard
// subscriptions) and a lookup by name that may build on demand.
type offer struct {
	all map[string]*Resource
	// Either the build and type the resources come from, or, for secrets, lookup.
	build  *Build
	typ    string
	lookup func(name string) *Resource
}

// get returns the resource of the offer's type named n, or nil.
func (o offer) get(n string) *Resource {
	if o.lookup != nil {
		return o.lookup(n)
	}
	return o.build.get(o.typ, n)
}

// offerFor returns what stream c can be sent of type t: its class's build (the name
// table built on the first stream's request), or, for secrets, its own.
func (s *Server) offerFor(c *conn, b *Build, t string) offer {
	if t == SecretType {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		secs, err := s.secrets(ctx, c)
		if err != nil {
			s.log.Error("no secrets for the proxy", "proxy", c.proxy.ID, "err", err)
		}
		return offer{all: secs, lookup: func(n string) *Resource {
			if r := secs[n]; r != nil {
				return r
			}
			return s.credentialSecret(c, n)
		}}
	}
	var all map[string]*Resource
	if t == NameTableType { // built for the classes whose proxies ask for it
		if r := b.get(t, ""); r != nil {
			all = map[string]*Resource{"": r}
		}
		return offer{all: all, build: b, typ: t}
	}
	if set := b.Types[t]; set != nil {
		all = set.ByName
	}
	return offer{all: all, build: b, typ: t}
}
