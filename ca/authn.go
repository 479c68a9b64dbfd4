package ca

import (
	"context"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Authenticate returns the identity of the caller of a gRPC request: from a join
// token sent as metadata "authorization: Bearer <token>" (a VM's first request), or
// else from the caller's TLS client certificate (a renewal, an xDS stream), which must
// verify against the current trust bundle and carry exactly one SPIFFE URI SAN of
// this trust domain. A token that is present but not valid is an error even if a
// certificate is presented too. Errors match ErrUnauthenticated and say what is wrong.
// It may read etcd (a token created on another node a moment ago), bounded by ctx.
func (a *Authority) Authenticate(ctx context.Context) (Identity, error) {
	if a.cur.Load() == nil {
		return Identity{}, ErrNotReady
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get("authorization"); len(vals) > 0 {
			scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
			if !strings.EqualFold(scheme, "bearer") {
				return Identity{}, unauthenticatedf("authorization metadata must be \"Bearer <join token>\"")
			}
			return a.authenticateToken(ctx, strings.TrimSpace(token))
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			return a.AuthenticateCertificate(ti.State.PeerCertificates)
		}
	}
	return Identity{}, unauthenticatedf("no credential: send a join token (authorization: Bearer <token>) or present a client certificate issued by the mesh CA")
}

// AuthenticateCertificate returns the identity of a client certificate chain (leaf
// first, as presented in a TLS handshake): the leaf must verify for client
// authentication against the current trust bundle (during a rotation, old and new
// roots) and carry exactly one SPIFFE URI SAN of this trust domain.
func (a *Authority) AuthenticateCertificate(chain []*x509.Certificate) (Identity, error) {
	is := a.cur.Load()
	if is == nil {
		return Identity{}, ErrNotReady
	}
	leaf := chain[0]
	inters := x509.NewCertPool()
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	for _, c := range is.chain[:len(is.chain)-1] {
		inters.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: is.pool, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return Identity{}, unauthenticatedf("client certificate (serial %x) does not verify against the trust bundle: %v", leaf.SerialNumber, err)
	}
	if leaf.IsCA {
		return Identity{}, unauthenticatedf("client certificate (serial %x) is a CA certificate", leaf.SerialNumber)
	}
	if len(leaf.URIs) != 1 {
		return Identity{}, unauthenticatedf("client certificate (serial %x) must carry exactly one SPIFFE URI SAN, has %d", leaf.SerialNumber, len(leaf.URIs))
	}
	id, err := identityFromURL(leaf.URIs[0])
	if err != nil {
		return Identity{}, unauthenticatedf("client certificate: %v", err)
	}
	if id.TrustDomain != a.cfg.TrustDomain {
		return Identity{}, unauthenticatedf("client certificate identity %s is not of trust domain %s", id, a.cfg.TrustDomain)
	}
	return id, nil
}
