package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

const (
	goodToken = "0123456789abcdef.secret"
	identity  = "spiffe://cluster.local/ns/default/sa/ratings"
)

// testCA is a root and an intermediate, as a node's CA.
type testCA struct {
	root, inter *x509.Certificate
	interKey    *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &testCA{interKey: interKey}
	ca.root = sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "root"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, rootKey, rootKey, time.Hour)
	ca.inter = sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "inter"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, ca.root, rootKey, interKey, time.Hour)
	return ca
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, parentKey, key *ecdsa.PrivateKey, ttl time.Duration) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(ttl)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemOf(cs ...*x509.Certificate) string { return string(encodeCerts(cs)) }

// csrServer is an in-process node's CSR API: Istio's service over TLS, issuing
// certificates of ttl for a join token or a certificate it issued.
type csrServer struct {
	pb.UnimplementedIstioCertificateServiceServer
	t    testing.TB
	ca   *testCA
	ttl  time.Duration
	addr string
	srv  *grpc.Server
	// refuse, when set, is returned to every request.
	refuse error

	mu    sync.Mutex
	calls []string // "token" or "certificate", per request
}

func startCSRServer(t testing.TB, ca *testCA, ttl time.Duration) *csrServer {
	t.Helper()
	s := &csrServer{t: t, ca: ca, ttl: ttl}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serving := sign(t, &x509.Certificate{DNSNames: []string{"navarch"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.inter, ca.interKey, key, time.Hour)
	pool := x509.NewCertPool()
	pool.AddCert(ca.root)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serving.Raw, ca.inter.Raw}, PrivateKey: key}},
		ClientAuth:   tls.VerifyClientCertIfGiven, ClientCAs: pool,
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	pb.RegisterIstioCertificateServiceServer(s.srv, s)
	go s.srv.Serve(lis)
	t.Cleanup(s.srv.Stop)
	return s
}

func (s *csrServer) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	if s.refuse != nil {
		return nil, s.refuse
	}
	how := ""
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("authorization")) > 0 {
		if md.Get("authorization")[0] != "Bearer "+goodToken {
			return nil, status.Error(codes.Unauthenticated, "bad token")
		}
		how = "token"
	} else if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			how = "certificate"
		}
	}
	if how == "" {
		return nil, status.Error(codes.Unauthenticated, "no credential")
	}
	b, _ := pem.Decode([]byte(req.Csr))
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	u, _ := url.Parse(identity)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(s.ttl),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.inter, csr.PublicKey, s.ca.interKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	s.mu.Lock()
	s.calls = append(s.calls, how)
	s.mu.Unlock()
	grpc.SetHeader(ctx, metadata.Pairs(trustBundleHeader, pemOf(s.ca.root)))
	return &pb.IstioCertificateResponse{CertChain: []string{pemOf(leaf), pemOf(s.ca.inter), pemOf(s.ca.root)}}, nil
}

func (s *csrServer) callLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// setup writes the token and the CA file and returns an agent configuration.
func setup(t testing.TB, ca *testCA, servers ...string) Config {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Servers = servers
	cfg.OutDir = filepath.Join(dir, "certs")
	cfg.TokenFile = filepath.Join(dir, "token")
	cfg.CAFile = filepath.Join(dir, "root.pem")
	cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	os.WriteFile(cfg.TokenFile, []byte(goodToken+"\n"), 0o600)
	os.WriteFile(cfg.CAFile, []byte(pemOf(ca.root)), 0o644)
	return cfg
}

func newAgent(t testing.TB, cfg Config, log *bytes.Buffer) *Agent {
	t.Helper()
	var h slog.Handler = slog.DiscardHandler
	if log != nil {
		h = slog.NewTextHandler(&lockedWriter{w: log}, nil)
	}
	a, err := New(cfg, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestFetchWritesIstiosFiles(t *testing.T) {
	ca := newTestCA(t)
	srv := startCSRServer(t, ca, time.Hour)
	cfg := setup(t, ca, srv.addr)
	certs, err := newAgent(t, cfg, nil).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if certs.Identity != identity {
		t.Fatalf("identity %s, want %s", certs.Identity, identity)
	}
	loaded, err := Load(cfg.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Identity != identity || len(loaded.Chain) != 2 || !loaded.Roots[0].Equal(ca.root) {
		t.Fatalf("files: identity %s, chain of %d (want leaf and intermediate), root %q", loaded.Identity, len(loaded.Chain), loaded.Roots[0].Subject)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(cfg.OutDir, ChainFile), filepath.Join(cfg.OutDir, KeyFile)); err != nil {
		t.Fatalf("the files are not a key pair grpc-go can load: %v", err)
	}
	st, _ := os.Stat(filepath.Join(cfg.OutDir, KeyFile))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(cfg.OutDir)
	if len(entries) != 3 {
		t.Errorf("the output directory holds %d files, want the 3 (no temporary files left)", len(entries))
	}
	if got := srv.callLog(); len(got) != 1 || got[0] != "token" {
		t.Errorf("calls %v, want one with the token", got)
	}
}

func TestFirstFetchTrust(t *testing.T) {
	ca := newTestCA(t)
	srv := startCSRServer(t, ca, time.Hour)
	t.Run("without --ca-file it refuses to trust a node", func(t *testing.T) {
		cfg := setup(t, ca, srv.addr)
		cfg.CAFile = ""
		if _, err := newAgent(t, cfg, nil).Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "--ca-file") {
			t.Fatalf("Fetch = %v, want an error naming --ca-file", err)
		}
	})
	t.Run("a --ca-file of another CA does not verify the node", func(t *testing.T) {
		cfg := setup(t, newTestCA(t), srv.addr)
		if _, err := newAgent(t, cfg, nil).Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Fetch = %v, want a TLS verification failure", err)
		}
	})
	t.Run("trust on first use logs the root's fingerprint", func(t *testing.T) {
		cfg := setup(t, ca, srv.addr)
		cfg.CAFile, cfg.InsecureFirstFetch = "", true
		var log bytes.Buffer
		if _, err := newAgent(t, cfg, &log).Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), Fingerprint(ca.root)) || !strings.Contains(log.String(), "navarch ca show") {
			t.Fatalf("log %q does not show the root's fingerprint", log.String())
		}
	})
}

// TestRenewalFailsOver: the agent renews with its certificate, not the token, and
// when the node it used dies the next renewal goes through another.
func TestRenewalFailsOver(t *testing.T) {
	ca := newTestCA(t)
	s1, s2 := startCSRServer(t, ca, 1500*time.Millisecond), startCSRServer(t, ca, 1500*time.Millisecond)
	cfg := setup(t, ca, s1.addr, s2.addr)
	var log bytes.Buffer
	a := newAgent(t, cfg, &log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitUntil(t, "two certificates from the first node", func() bool { return len(s1.callLog()) >= 2 })
	before, _ := os.ReadFile(filepath.Join(cfg.OutDir, ChainFile))
	s1.srv.Stop()
	waitUntil(t, "a renewal through the second node", func() bool { return len(s2.callLog()) >= 1 })
	waitUntil(t, "the files to change", func() bool {
		after, _ := os.ReadFile(filepath.Join(cfg.OutDir, ChainFile))
		return !bytes.Equal(before, after) && len(after) > 0
	})
	if calls := append(s1.callLog(), s2.callLog()...); calls[0] != "token" || calls[1] != "certificate" || s2.callLog()[0] != "certificate" {
		t.Fatalf("calls %v: want the token first, then certificates", calls)
	}
	if _, err := Load(cfg.OutDir); err != nil {
		t.Fatalf("files after renewal: %v", err)
	}
}

func TestARefusalIsNotRetriedElsewhere(t *testing.T) {
	ca := newTestCA(t)
	s1, s2 := startCSRServer(t, ca, time.Hour), startCSRServer(t, ca, time.Hour)
	s1.refuse = status.Error(codes.InvalidArgument, "csr: RSA key of 1024 bits")
	cfg := setup(t, ca, s1.addr, s2.addr)
	_, err := newAgent(t, cfg, nil).Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument: csr: RSA key of 1024 bits") {
		t.Fatalf("Fetch = %v, want the refusal", err)
	}
	if len(s2.callLog()) != 0 {
		t.Fatal("a refused request was sent to another node")
	}
}

func TestAnUnreachableNodeIsSkipped(t *testing.T) {
	ca := newTestCA(t)
	srv := startCSRServer(t, ca, time.Hour)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg := setup(t, ca, dead, srv.addr)
	if _, err := newAgent(t, cfg, nil).Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch with the first node dead = %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
