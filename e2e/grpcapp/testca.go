package grpcapp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// TestCA is a throwaway certificate authority for tests that need workload
// certificates without a navarch CA: it writes the files `navarch agent certs`
// writes.
type TestCA struct {
	TrustDomain string
	cert        *x509.Certificate
	der         []byte
	key         *ecdsa.PrivateKey
}

// NewTestCA creates a root for trustDomain.
func NewTestCA(trustDomain string) (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &TestCA{TrustDomain: trustDomain, cert: cert, der: der, key: key}, nil
}

// WriteWorkload writes cert-chain.pem, key.pem and root-cert.pem for the identity
// spiffe://<td>/ns/<ns>/sa/<sa> into dir.
func (ca *TestCA) WriteWorkload(dir, ns, sa string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	id, _ := url.Parse(fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", ca.TrustDomain, ns, sa))
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, block := range map[string]*pem.Block{
		"cert-chain.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":        {Type: "PRIVATE KEY", Bytes: keyDER},
		"root-cert.pem":  {Type: "CERTIFICATE", Bytes: ca.der},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}
