package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TokenReviewer asks a Kubernetes cluster who a service-account token belongs to
// (TokenReview). The Kubernetes adapter implements it; node wires it.
type TokenReviewer interface {
	// ReviewToken returns the namespace and service account of a valid token;
	// rejected is why the cluster refused it (then the others are empty); err is a
	// failure to ask.
	ReviewToken(ctx context.Context, token string) (namespace, serviceAccount, rejected string, err error)
}

// SetTokenReviewer makes the authority accept Kubernetes service-account tokens,
// reviewed by r, as istiod does for pods. Safe to call while serving.
func (a *Authority) SetTokenReviewer(r TokenReviewer) { a.reviewer.Store(&r) }

// Authenticate returns the identity of the caller of a gRPC request: from a join
// token sent as metadata "authorization: Bearer <token>" (a VM's first request), or a
// Kubernetes service-account token there (a pod's, when a reviewer is set), or else
// from the caller's TLS client certificate (a renewal, an xDS stream), which must
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
			token = strings.TrimSpace(token)
			if r := a.reviewer.Load(); r != nil && !tokenShape.MatchString(token) && strings.Count(token, ".") == 2 {
				return a.reviewToken(ctx, *r, token)
			}
			return a.authenticateToken(ctx, token)
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			return a.AuthenticateCertificate(ti.State.PeerCertificates)
		}
	}
	return Identity{}, unauthenticatedf("no credential: send a join token (authorization: Bearer <token>) or present a client certificate issued by the mesh CA")
}

// reviewToken returns the identity of a Kubernetes service-account token (a JWT).
func (a *Authority) reviewToken(ctx context.Context, r TokenReviewer, token string) (Identity, error) {
	ns, sa, rejected, err := r.ReviewToken(ctx, token)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: reviewing the Kubernetes service-account token: %w", ErrUnavailable, err)
	}
	if rejected != "" {
		return Identity{}, unauthenticatedf("Kubernetes service-account token refused: %s", rejected)
	}
	return Identity{TrustDomain: a.cfg.TrustDomain, Namespace: ns, ServiceAccount: sa}, nil
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
