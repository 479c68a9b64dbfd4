package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A secret file holds the secret in use first, then those still accepted: keys
// come in that order, the etcd token from the one in use, and a node's certificate
// is signed by the first CA while its CA file trusts them all.
func TestSecretFileWithSecretsBeingRotated(t *testing.T) {
	const oldSecret, newSecret = "the-old-cluster-secret-0123", "the-new-cluster-secret-4567"
	old, err := deriveSecrets(oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	both, err := deriveSecrets(newSecret + "\n\n  " + oldSecret + "  \n")
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := deriveSecrets(newSecret)
	if len(both.gossipKeys) != 2 || !bytes.Equal(both.gossipKeys[0], fresh.gossipKeys[0]) || !bytes.Equal(both.gossipKeys[1], old.gossipKeys[0]) ||
		!bytes.Equal(both.caSeeds[1], old.caSeeds[0]) || both.token != fresh.token {
		t.Fatalf("keys of new then old: %+v", both)
	}
	if _, err := deriveSecrets(newSecret + "\nshort"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a short second secret: %v, want an error naming its line", err)
	}

	var cas []*clusterCA
	for _, seed := range both.caSeeds {
		ca, err := derivedCA(seed)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, ca)
	}
	files, notAfter, err := cas[0].issueNodeCert(t.TempDir(), "n1", "127.0.0.1", cas[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := os.ReadFile(files.CAFile)
	if n := bytes.Count(bundle, []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Errorf("the CA file holds %d certificates, want both CAs", n)
	}
	certPEM, _ := os.ReadFile(files.CertFile)
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(notAfter) {
		t.Errorf("issueNodeCert says the certificate expires at %s; it does at %s", notAfter, cert.NotAfter)
	}
	for i, ca := range cas {
		pool := x509.NewCertPool()
		pool.AddCert(ca.cert)
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if (err == nil) != (i == 0) {
			t.Errorf("the node certificate against CA %d: %v; want it signed by the first only", i, err)
		}
	}
	if _, err := clientTLS(files); err != nil {
		t.Errorf("loading the node's TLS files: %v", err)
	}
}

// An operator's cluster CA bounds the node certificates it signs, and one that has
// expired (or is not valid yet) is refused at start, saying so.
func TestOperatorClusterCAValidity(t *testing.T) {
	dir := t.TempDir()
	writeCA := func(name string, notBefore, notAfter time.Time) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		return certFile, keyFile
	}
	now := time.Now().Truncate(time.Second)

	shortCert, shortKey := writeCA("short", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	ca, also, err := loadCA(shortCert, shortKey)
	if err != nil || len(also) != 0 {
		t.Fatalf("loading a CA alone: %v, %d more trusted", err, len(also))
	}
	_, notAfter, err := ca.issueNodeCert(filepath.Join(dir, "tls"), "n1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !notAfter.Equal(ca.cert.NotAfter) {
		t.Errorf("the node certificate of a CA ending %s ends %s; want no later than its CA", ca.cert.NotAfter, notAfter)
	}

	// Moving to another CA: the certificate file holds the one in use first, then
	// the other, trusted as well.
	nextCert, _ := writeCA("next", now.Add(-time.Hour), now.Add(10*365*24*time.Hour))
	first, _ := os.ReadFile(shortCert)
	second, _ := os.ReadFile(nextCert)
	both := filepath.Join(dir, "both.crt")
	os.WriteFile(both, append(first, second...), 0o644)
	if ca, also, err = loadCA(both, shortKey); err != nil || len(also) != 1 || also[0].cert.Subject.CommonName != "next" {
		t.Fatalf("loading a CA with another after it: %v, also %v; want the other trusted", err, also)
	}
	files, _, err := ca.issueNodeCert(filepath.Join(dir, "tls2"), "n1", "127.0.0.1", also...)
	if err != nil {
		t.Fatal(err)
	}
	if bundle, _ := os.ReadFile(files.CAFile); bytes.Count(bundle, []byte("BEGIN CERTIFICATE")) != 2 {
		t.Errorf("the CA file of a node moving between CAs does not hold both:\n%s", bundle)
	}

	for name, validity := range map[string][2]time.Time{
		"expired": {now.Add(-48 * time.Hour), now.Add(-time.Hour)},
		"future":  {now.Add(time.Hour), now.Add(48 * time.Hour)},
	} {
		if _, _, err := loadCA(writeCA(name, validity[0], validity[1])); err == nil || !strings.Contains(err.Error(), "not now") {
			t.Errorf("a CA valid from %s to %s: %v, want it refused as not valid now", validity[0], validity[1], err)
		}
	}
}
