package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// trustBundleHeader is the response header in which nodes send every trusted root
// (PEM; a binary header, base64 on the wire).
const trustBundleHeader = "x-navarch-trust-bundle-bin"

// credential is what a request authenticates with: the current certificate (a
// renewal) or a join token.
type credential struct {
	cert  *Certs
	token string
}

func (c credential) String() string {
	if c.cert != nil {
		return "certificate"
	}
	return "token"
}

// fetchFrom sends a CSR for a new key to one node and returns what it issued. roots
// verify the node; nil trusts it on first use, and then only checks that the node's
// own certificate chains to the roots it returned.
func (a *Agent) fetchFrom(ctx context.Context, server string, cred credential, roots []*x509.Certificate) (*Certs, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	tlsCfg := clientTLS(cred.cert, roots, a.cfg.ServerName) // nil roots: trust on first use, checked below
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	if cred.token != "" {
		rctx = metadata.AppendToOutgoingContext(rctx, "authorization", "Bearer "+cred.token)
	}
	var hdr metadata.MD
	var p peer.Peer
	req := &pb.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		ValidityDuration: int64(a.cfg.TTL.Seconds()),
	}
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx, req, grpc.Header(&hdr), grpc.Peer(&p))
	if err != nil {
		st := status.Convert(err)
		msg := st.Message()
		if strings.Contains(msg, "x509: ") && strings.Contains(msg, "failed to verify") {
			msg = "the node's certificate does not verify against the trusted roots (--ca-file, or root-cert.pem in --out; compare with navarch ca show): " + msg
		}
		return nil, &requestError{code: st.Code(), msg: msg}
	}
	certs, err := responseCerts(resp.GetCertChain(), hdr, key)
	if err != nil {
		return nil, err
	}
	if roots == nil {
		if err := checkServer(p, certs, a.cfg.ServerName); err != nil {
			return nil, err
		}
	}
	return certs, nil
}

// responseCerts turns a node's answer into Certs: the chain without its root, the
// trust bundle from the response header (or the chain's root), and key.
func responseCerts(chain []string, hdr metadata.MD, key *ecdsa.PrivateKey) (*Certs, error) {
	if len(chain) == 0 {
		return nil, errors.New("the node returned no certificate")
	}
	var all []*x509.Certificate
	for i, p := range chain {
		cs, err := parseCerts(fmt.Sprintf("cert_chain[%d]", i), []byte(p))
		if err != nil {
			return nil, err
		}
		all = append(all, cs...)
	}
	bundle := []byte(encodeCerts(all[len(all)-1:]))
	if v := hdr.Get(trustBundleHeader); len(v) > 0 && v[0] != "" {
		bundle = []byte(v[0])
	}
	roots, err := parseCerts("trust bundle", bundle)
	if err != nil {
		return nil, err
	}
	var leafAndInters []*x509.Certificate
	for _, c := range all {
		if !contains(roots, c) {
			leafAndInters = append(leafAndInters, c)
		}
	}
	if len(leafAndInters) == 0 {
		return nil, errors.New("the node returned only roots")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return newCerts(encodeCerts(leafAndInters), keyPEM, bundle)
}

// checkServer verifies, after a first fetch trusted on first use, that the node's
// serving certificate chains to the roots it returned and is for serverName: the
// answer is at least self-consistent.
func checkServer(p peer.Peer, certs *Certs, serverName string) error {
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return errors.New("the node presented no certificate")
	}
	pcs := ti.State.PeerCertificates
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range certs.Roots {
		roots.AddCert(r)
	}
	for _, c := range pcs[1:] {
		inters.AddCert(c)
	}
	if _, err := pcs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: serverName}); err != nil {
		return fmt.Errorf("the node's own certificate does not chain to the roots it returned: %w", err)
	}
	return nil
}

func contains(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// requestError is a node's refusal or failure.
type requestError struct {
	code codes.Code
	msg  string
}

func (e *requestError) Error() string { return e.code.String() + ": " + e.msg }

// final reports whether another node would answer the same: the request itself is
// wrong (the CSR, the token), so trying the next node is pointless.
func final(err error) bool {
	var re *requestError
	if !errors.As(err, &re) {
		return false
	}
	switch re.code {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}
