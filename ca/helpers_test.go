package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

func testLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openStore starts a one-member etcd for the test.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClientURL, cfg.PeerURL = store.AnyLoopbackURL, store.AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	cfg.HeartbeatMs, cfg.ElectionMs = 10, 100
	s, err := store.Open(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// applied reads the configuration applied to st, where tests put WorkloadGroups.
func applied(st *store.Store) store.Layered {
	return store.Layered{St: st, Spaces: []store.Space{store.ConfigSpace}}
}

// startAuthority runs an authority on st (a "node") until the test ends and waits
// until it is ready.
func startAuthority(t *testing.T, st *store.Store, cfg Config, kek KEK) *Authority {
	t.Helper()
	return startAuthorityReading(t, st, cfg, kek, applied(st))
}

// startAuthorityReading is startAuthority with WorkloadGroups read from config.
func startAuthorityReading(t *testing.T, st *store.Store, cfg Config, kek KEK, config ConfigReader) *Authority {
	t.Helper()
	a, err := New(cfg, st.Client(), kek, config, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("authority stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("authority not ready after 10s")
	}
	return a
}

// memAuthority is an authority with a fresh self-signed signer and no etcd, for the
// checks that need none (signing, authentication by certificate).
func memAuthority(t *testing.T, cfg Config) *Authority {
	t.Helper()
	root, inter, key, err := newSelfSignedCA(cfg.TrustDomain, cfg.RootTTL, cfg.IntermediateTTL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := &Authority{cfg: cfg, kek: GenerateKEK(), log: testLog(), ready: make(chan struct{}), changed: make(chan struct{})}
	a.tokens.m = map[string]*tokenRecord{}
	a.cur.Store(newIssuer(&a.cfg, SourceSelfSigned, []*x509.Certificate{inter}, []*x509.Certificate{root}, key, 1, time.Now()))
	return a
}

// csrFor makes a PEM CSR signed by key, with the given SANs.
func csrFor(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// parseChain parses a response chain (leaf first, root last).
func parseChain(t *testing.T, chain []string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for i, p := range chain {
		cs, err := parseCerts("chain", []byte(p))
		if err != nil || len(cs) != 1 {
			t.Fatalf("chain[%d]: %v (%d certificates)", i, err, len(cs))
		}
		out = append(out, cs[0])
	}
	return out
}

// verifyAgainst reports whether leaf (with the chain's intermediates) verifies
// against the roots.
func verifyAgainst(leaf *x509.Certificate, inters []*x509.Certificate, roots []*x509.Certificate) error {
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	for _, c := range inters {
		ip.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// applyGroup stores a WorkloadGroup.
func applyGroup(t *testing.T, st *store.Store, doc string) {
	t.Helper()
	rs, _, err := api.Decode("test", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), store.ConfigSpace, rs); err != nil {
		t.Fatal(err)
	}
}

// testCA makes a CA certificate and key signed by parent (self-signed when parent is
// nil), for import tests.
func testCA(t *testing.T, name string, parent *x509.Certificate, parentKey crypto.Signer, key crypto.Signer, mutate func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * 365 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if mutate != nil {
		mutate(tmpl)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keyPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
