package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// serveCSR serves a's CSR API over TLS on a loopback port and returns its address.
func serveCSR(t *testing.T, a *Authority) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(a.ServerTLS([]string{"node-1.example"}))))
	NewCertificateService(a, nil, testLog()).Register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// call sends a CSR to addr, trusting roots, with a token or a client certificate.
func call(t *testing.T, addr string, roots []*x509.Certificate, token string, cert *tls.Certificate, csr []byte) ([]string, string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "navarch", MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Sent whatever CAs the server names as acceptable: Go's client would
		// otherwise send no certificate when its issuer's name is not among them,
		// and a foreign CA's name differs from the mesh's only when the two were
		// made in different seconds.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	var hdr metadata.MD
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr)}, grpc.Header(&hdr))
	var bundle string
	if v := hdr.Get(TrustBundleHeader); len(v) > 0 {
		bundle = v[0]
	}
	return resp.GetCertChain(), bundle, err
}

// tlsCert turns a chain and key into a client certificate.
func tlsCert(t *testing.T, chain []string, key *ecdsa.PrivateKey) *tls.Certificate {
	t.Helper()
	c := &tls.Certificate{PrivateKey: key}
	for _, p := range chain[:len(chain)-1] {
		b, _ := pem.Decode([]byte(p))
		c.Certificate = append(c.Certificate, b.Bytes)
	}
	return c
}

func TestCertificateService(t *testing.T) {
	st := openStore(t)
	a := startAuthority(t, st, DefaultConfig(), GenerateKEK())
	applyGroup(t, st, ratingsGroup)
	token, _, err := a.CreateToken(context.Background(), "bookinfo/ratings", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveCSR(t, a)
	roots := a.TrustBundle()
	want := "spiffe://cluster.local/ns/bookinfo/sa/ratings-sa"

	key := p256(t)
	chain, bundle, err := call(t, addr, roots, token, nil, csrFor(t, key, nil))
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if certs[0].URIs[0].String() != want || !certs[len(certs)-1].Equal(roots[0]) {
		t.Fatalf("leaf %v, root %q; want %s chained to the bundle's root", certs[0].URIs, certs[len(certs)-1].Subject, want)
	}
	if bundle != a.TrustBundlePEM() {
		t.Fatalf("trust bundle header %q, want the bundle", bundle)
	}

	t.Run("the serving certificate is the mesh CA's, for the node's names", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: poolOf(roots), ServerName: "istiod.istio-system.svc", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		leaf := conn.ConnectionState().PeerCertificates[0]
		for _, name := range []string{"navarch", "node-1.example", "127.0.0.1", "localhost"} {
			if err := leaf.VerifyHostname(name); err != nil {
				t.Errorf("serving certificate: %v", err)
			}
		}
	})
	t.Run("renewal with the certificate, no token", func(t *testing.T) {
		renewed, _, err := call(t, addr, roots, "", tlsCert(t, chain, key), csrFor(t, p256(t), nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := parseChain(t, renewed)[0].URIs[0].String(); got != want {
			t.Fatalf("renewed as %s, want %s", got, want)
		}
	})
	t.Run("refusals carry a status code and the reason", func(t *testing.T) {
		other := memAuthority(t, DefaultConfig())
		foreign, err := other.Sign(csrFor(t, key, &x509.CertificateRequest{URIs: []*url.URL{mustURL(t, want)}}), ratingsID(), 0)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			token string
			cert  *tls.Certificate
			csr   []byte
			code  codes.Code
			want  string
		}{
			{"no credential", "", nil, csrFor(t, p256(t), nil), codes.Unauthenticated, "no credential"},
			{"a bad token", "x.y", nil, csrFor(t, p256(t), nil), codes.Unauthenticated, "malformed join token"},
			{"a garbage CSR", token, nil, []byte("garbage"), codes.InvalidArgument, "csr: no PEM block"},
			{"a certificate of another CA", "", tlsCert(t, foreign, key), csrFor(t, p256(t), nil), codes.Unavailable, ""},
		}
		for _, tt := range tests {
			_, _, err := call(t, addr, roots, tt.token, tt.cert, tt.csr)
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %v, want %s %q", tt.name, err, tt.code, tt.want)
			}
		}
	})
}

func ratingsID() Identity {
	return Identity{TrustDomain: "cluster.local", Namespace: "bookinfo", ServiceAccount: "ratings-sa"}
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestServingCertificateDuringRotation: while old and new roots are both trusted, a
// node's serving certificate still chains to the old root, so a workload that has
// not renewed yet can reach it; once the rotation is finished it chains to the new.
func TestServingCertificateDuringRotation(t *testing.T) {
	st := openStore(t)
	a := startAuthority(t, st, DefaultConfig(), GenerateKEK())
	addr := serveCSR(t, a)
	oldRoot := a.TrustBundle()[0]
	handshake := func(root *x509.Certificate) error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: poolOf([]*x509.Certificate{root}), ServerName: "navarch", NextProtos: []string{"h2"}})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := a.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	newRoot := a.TrustBundle()[0]
	if err := handshake(oldRoot); err != nil {
		t.Fatalf("during the overlap, a workload trusting only the old root cannot reach the node: %v", err)
	}
	if err := a.FinishRotation(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := handshake(newRoot); err != nil {
		t.Fatalf("after finishing, the serving certificate does not chain to the new root: %v", err)
	}
	if err := handshake(oldRoot); err == nil {
		t.Fatal("after finishing, the serving certificate still chains to the old root")
	}
}
