package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/e2e/grpcapp"
)

// certAuth authenticates a stream by the SPIFFE ID of its client certificate.
type certAuth struct{}

func (certAuth) Authenticate(ctx context.Context) (Identity, error) {
	// spiffe://cluster.local/ns/<ns>/sa/<sa>
	parts := strings.Split(grpcapp.PeerSPIFFE(ctx), "/")
	if len(parts) != 7 || parts[3] != "ns" || parts[5] != "sa" {
		return Identity{}, errors.New("no client certificate with a SPIFFE ID")
	}
	return Identity{Namespace: parts[4], ServiceAccount: parts[6]}, nil
}

// fakeSecrets issues a fixed certificate per identity.
type fakeSecrets struct{ issued map[Identity]int }

func (f *fakeSecrets) WorkloadSecret(_ context.Context, id Identity) ([]byte, []byte, time.Time, error) {
	f.issued[id]++
	return []byte("chain of " + id.Namespace + "/" + id.ServiceAccount), []byte("key of " + id.ServiceAccount), time.Now().Add(time.Hour), nil
}
func (f *fakeSecrets) TrustBundlePEM() []byte { return []byte("bundle") }

// Credential holds two credentials with CAs: shop/shop-cert and bank/vault-cert.
func (f *fakeSecrets) Credential(ns, name string) ([]byte, []byte, []byte, bool) {
	if (ns == "shop" && name == "shop-cert") || (ns == "bank" && name == "vault-cert") {
		return []byte("chain of " + name), []byte("key of " + name), []byte("ca of " + name), true
	}
	return nil, nil, nil, false
}

// TestSDSOnlyToItsIdentity: over TLS a proxy proves who it is and gets its own
// certificate; a proxy that claims another namespace is refused; over plaintext no
// secrets are sent.
func TestSDSOnlyToItsIdentity(t *testing.T) {
	ca, _ := grpcapp.NewTestCA("cluster.local")
	dir := t.TempDir()
	for _, sa := range []string{"server", "web"} {
		if err := ca.WriteWorkload(filepath.Join(dir, sa), "shop", sa); err != nil {
			t.Fatal(err)
		}
	}
	load := func(sa string) (tls.Certificate, *x509.CertPool) {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, sa, "cert-chain.pem"), filepath.Join(dir, sa, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		root, _ := os.ReadFile(filepath.Join(dir, sa, "root-cert.pem"))
		pool.AppendCertsFromPEM(root)
		return cert, pool
	}
	serverCert, pool := load("server")
	secrets := &fakeSecrets{issued: map[Identity]int{}}
	s := NewServer(DefaultConfig(), newFakeSource(snapshotOf(t)), NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	s.SetSecurity(certAuth{}, secrets)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	tlsLis, _ := net.Listen("tcp", "127.0.0.1:0")
	plainLis, _ := net.Listen("tcp", "127.0.0.1:0")
	secure := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool})))
	plain := grpc.NewServer()
	for _, gs := range []*grpc.Server{secure, plain} {
		discovery.RegisterAggregatedDiscoveryServiceServer(gs, s)
	}
	go secure.Serve(tlsLis)
	go plain.Serve(plainLis)
	defer secure.Stop()
	defer plain.Stop()

	webCert, _ := load("web")
	ask := func(addr string, creds credentials.TransportCredentials, ns string, names ...string) (*discovery.DiscoveryResponse, error) {
		if len(names) == 0 {
			names = []string{SecretDefault, SecretRootCA}
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(rctx)
		if err != nil {
			return nil, err
		}
		md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "SERVICE_ACCOUNT": "web"})
		st.Send(&discovery.DiscoveryRequest{Node: &corev3.Node{Id: "sidecar~10.0.0.1~web-1." + ns + "~" + ns + ".svc.cluster.local", Metadata: md},
			TypeUrl: SecretType, ResourceNames: names})
		return st.Recv()
	}
	// The test server's certificate carries only a SPIFFE ID; what is tested is the
	// server authenticating the client.
	tlsCreds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{webCert}, InsecureSkipVerify: true})

	resp, err := ask(tlsLis.Addr().String(), tlsCreds, "shop")
	if err != nil || len(resp.Resources) != 2 {
		t.Fatalf("authenticated proxy: %v, %d secrets; want default and ROOTCA", err, len(resp.GetResources()))
	}
	got := map[string]*tlsv3.Secret{}
	for _, a := range resp.Resources {
		var sec tlsv3.Secret
		a.UnmarshalTo(&sec)
		got[sec.Name] = &sec
	}
	if chain := string(got[SecretDefault].GetTlsCertificate().GetCertificateChain().GetInlineBytes()); chain != "chain of shop/web" {
		t.Fatalf("secret default holds %q, want the certificate of shop/web", chain)
	}
	if bundle := string(got[SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()); bundle != "bundle" {
		t.Fatalf("secret ROOTCA holds %q, want the trust bundle", bundle)
	}

	if _, err := ask(tlsLis.Addr().String(), tlsCreds, "bank"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a proxy claiming another namespace: %v, want PermissionDenied", err)
	}
	resp, err = ask(plainLis.Addr().String(), insecure.NewCredentials(), "shop")
	if err != nil || len(resp.Resources) != 0 {
		t.Fatalf("plaintext proxy: %v, %d secrets; want none", err, len(resp.GetResources()))
	}

	// Credentials: the proxy's namespace's only, and never over plaintext.
	resp, err = ask(tlsLis.Addr().String(), tlsCreds, "shop", "kubernetes://shop-cert", "kubernetes://shop-cert-cacert", "kubernetes://vault-cert")
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]*tlsv3.Secret{}
	for _, a := range resp.Resources {
		var sec tlsv3.Secret
		a.UnmarshalTo(&sec)
		got[sec.Name] = &sec
	}
	if len(got) != 2 || string(got["kubernetes://shop-cert"].GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "key of shop-cert" ||
		string(got["kubernetes://shop-cert-cacert"].GetValidationContext().GetTrustedCa().GetInlineBytes()) != "ca of shop-cert" {
		t.Fatalf("credentials for a shop proxy: %v; want shop-cert and its CA only", got)
	}
	resp, err = ask(plainLis.Addr().String(), insecure.NewCredentials(), "shop", "kubernetes://shop-cert")
	if err != nil || len(resp.Resources) != 0 {
		t.Fatalf("plaintext proxy asking for a credential: %v, %d secrets; want none", err, len(resp.GetResources()))
	}
	if len(secrets.issued) != 1 {
		t.Fatalf("issued for %v, want only shop/web", secrets.issued)
	}
}
