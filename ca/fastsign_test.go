package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"
	"time"
)

// TestLeafEncoderMatchesX509: the fast path produces exactly the to-be-signed bytes
// x509.CreateCertificate produces for the same certificate, and a signature that
// verifies; signers it does not handle fall back to x509.
func TestLeafEncoderMatchesX509(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name     string
		key      crypto.Signer
		fastPath bool
	}{
		{"an ECDSA P-256 intermediate", p256(t), true},
		{"an ECDSA P-384 intermediate", p384, true},
		{"an RSA intermediate", rsaKey, false},
	}
	id := Identity{TrustDomain: "cluster.local", Namespace: "bookinfo", ServiceAccount: "ratings"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootKey := p256(t)
			root := testCA(t, "root", nil, nil, rootKey, nil)
			inter := testCA(t, "inter", root, rootKey, tt.key, func(c *x509.Certificate) { c.SubjectKeyId = []byte{1, 2, 3, 4} })
			cfg := DefaultConfig()
			is := newIssuer(&cfg, SourceImported, []*x509.Certificate{inter}, []*x509.Certificate{root}, tt.key, 1, time.Now())
			if (is.enc != nil) != tt.fastPath {
				t.Fatalf("fast path: %v, want %v", is.enc != nil, tt.fastPath)
			}
			leafKey := p256(t)
			chain, notAfter, err := is.issue(id, leafKey.Public(), time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			got := parseChain(t, chain)[0]
			if err := got.CheckSignatureFrom(inter); err != nil {
				t.Fatalf("the leaf's signature does not verify: %v", err)
			}
			if !got.NotAfter.Equal(notAfter) {
				t.Errorf("NotAfter %s, reported %s", got.NotAfter, notAfter)
			}
			// The same certificate through x509.CreateCertificate.
			tmpl := is.leafTemplate(id, time.Hour, time.Now())
			tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = got.SerialNumber, got.NotBefore, got.NotAfter
			der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, leafKey.Public(), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := x509.ParseCertificate(der)
			if !bytes.Equal(got.RawTBSCertificate, want.RawTBSCertificate) {
				t.Fatalf("to-be-signed bytes differ from x509.CreateCertificate's:\n got %x\nwant %x", got.RawTBSCertificate, want.RawTBSCertificate)
			}
		})
	}
}
