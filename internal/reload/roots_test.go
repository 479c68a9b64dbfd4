package reload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newCA returns a self-signed CA certificate and a server certificate for host it
// signed.
func newCA(t *testing.T, host string) (ca, leaf *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	lkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ltmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{host}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, ltmpl, ca, &lkey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return ca, leaf
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestRootsFollowTheFile: a server is verified against the bundle the file holds
// now; a half-written file keeps the last bundle; a file without a certificate is
// refused at the start.
func TestRootsFollowTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(path, []byte("not a certificate"), 0o600)
	if _, err := OpenRoots(path, "test CA file", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("OpenRoots of a file without a certificate succeeded")
	}
	oldCA, oldLeaf := newCA(t, "consul.example")
	newCA, newLeaf := newCA(t, "consul.example")
	os.WriteFile(path, pemOf(oldCA), 0o600)
	r, err := OpenRoots(path, "test CA file", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.file.now = func() time.Time { return clock }
	server := func(leaf *x509.Certificate) tls.ConnectionState {
		return tls.ConnectionState{ServerName: "consul.example", PeerCertificates: []*x509.Certificate{leaf}}
	}
	if err := r.VerifyServer(server(oldLeaf)); err != nil {
		t.Fatalf("a server of the file's CA: %v", err)
	}
	if err := r.VerifyServer(server(newLeaf)); err == nil {
		t.Fatal("a server of another CA was verified")
	}
	if err := r.VerifyServer(tls.ConnectionState{ServerName: "other.example", PeerCertificates: []*x509.Certificate{oldLeaf}}); err == nil {
		t.Fatal("a certificate for another name was verified")
	}

	os.WriteFile(path, pemOf(newCA)[:20], 0o600) // half written
	clock = clock.Add(interval)
	if err := r.VerifyServer(server(oldLeaf)); err != nil {
		t.Fatalf("with a half-written file: %v, want the last bundle kept", err)
	}
	os.WriteFile(path, pemOf(newCA), 0o600)
	clock = clock.Add(interval)
	if err := r.VerifyServer(server(newLeaf)); err != nil {
		t.Fatalf("after the file moved to the new CA: %v", err)
	}
	if err := r.VerifyServer(server(oldLeaf)); err == nil {
		t.Fatal("the old CA is still trusted after the file dropped it")
	}
}
