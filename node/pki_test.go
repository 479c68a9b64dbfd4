package node

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
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
	files, err := cas[0].issueNodeCert(t.TempDir(), "n1", "127.0.0.1", cas[1:]...)
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
