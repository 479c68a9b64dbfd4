package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// operatorCA is an operator's root and the intermediate it signed, as Istio's
// cacerts files.
type operatorCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newOperatorCA(t *testing.T) operatorCA {
	rootKey, interKey := p256(t), p256(t)
	root := testCA(t, "operator root", nil, nil, rootKey, nil)
	inter := testCA(t, "operator intermediate", root, rootKey, interKey, nil)
	return operatorCA{root: root, inter: inter, rootKey: rootKey, interKey: interKey}
}

// files returns the cacerts files, cert-chain.pem holding ca-cert and root as
// Istio's tooling writes it.
func (o operatorCA) files(t *testing.T) ImportFiles {
	return ImportFiles{
		Cert:  []byte(encodeCert(o.inter)),
		Key:   keyPEM(t, o.interKey),
		Chain: []byte(encodeCert(o.inter) + encodeCert(o.root)),
		Root:  []byte(encodeCert(o.root)),
	}
}

func TestImportValidation(t *testing.T) {
	op := newOperatorCA(t)
	other := newOperatorCA(t)
	notCAKey := p256(t)
	notCA := testCA(t, "leaf", op.root, op.rootKey, notCAKey, func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature })
	expiredKey := p256(t)
	expired := testCA(t, "expired", op.root, op.rootKey, expiredKey, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := testCA(t, "weak", op.root, op.rootKey, weakKey, nil)
	// A second level: root -> mid -> issuing intermediate.
	midKey, leafCAKey := p256(t), p256(t)
	mid := testCA(t, "mid", op.root, op.rootKey, midKey, nil)
	deep := testCA(t, "deep", mid, midKey, leafCAKey, nil)

	tests := []struct {
		name   string
		mutate func(f *ImportFiles)
		want   string // "" = valid
		depth  int    // length of the signing chain when valid
	}{
		{name: "Istio's cacerts files", depth: 1},
		{name: "without cert-chain.pem, signed by the root directly", mutate: func(f *ImportFiles) { f.Chain = nil }, depth: 1},
		{name: "a two-level chain", depth: 2, mutate: func(f *ImportFiles) {
			f.Cert, f.Key, f.Chain = []byte(encodeCert(deep)), keyPEM(t, leafCAKey), []byte(encodeCert(deep)+encodeCert(mid)+encodeCert(op.root))
		}},
		{name: "a key that does not match the certificate", mutate: func(f *ImportFiles) { f.Key = keyPEM(t, other.interKey) }, want: "ca-key.pem does not match ca-cert.pem"},
		{name: "a certificate that is not a CA", mutate: func(f *ImportFiles) { f.Cert, f.Key = []byte(encodeCert(notCA)), keyPEM(t, notCAKey) }, want: "is not a CA certificate"},
		{name: "a chain to another root", mutate: func(f *ImportFiles) { f.Root = []byte(encodeCert(other.root)) }, want: "ca-cert.pem does not chain through cert-chain.pem to root-cert.pem"},
		{name: "a missing intermediate", mutate: func(f *ImportFiles) {
			f.Cert, f.Key, f.Chain = []byte(encodeCert(deep)), keyPEM(t, leafCAKey), nil
		}, want: "does not chain"},
		{name: "an expired certificate", mutate: func(f *ImportFiles) { f.Cert, f.Key = []byte(encodeCert(expired)), keyPEM(t, expiredKey) }, want: "does not chain"},
		{name: "an RSA-1024 CA key", mutate: func(f *ImportFiles) { f.Cert, f.Key = []byte(encodeCert(weak)), keyPEM(t, weakKey) }, want: "RSA key of 1024 bits"},
		{name: "a root that is not self-signed", mutate: func(f *ImportFiles) { f.Root = []byte(encodeCert(mid)) }, want: "is not self-signed"},
		{name: "garbage for a key", mutate: func(f *ImportFiles) { f.Key = []byte("nope") }, want: "ca-key.pem: no PEM private key block"},
		{name: "two certificates in ca-cert.pem", mutate: func(f *ImportFiles) { f.Cert = append(f.Cert, f.Root...) }, want: "holds 2 certificates"},
		{name: "no root", mutate: func(f *ImportFiles) { f.Root = nil }, want: "root-cert.pem: no PEM CERTIFICATE block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := op.files(t)
			if tt.mutate != nil {
				tt.mutate(&f)
			}
			chain, roots, _, err := checkImport(f, time.Now())
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("checkImport = %v, want an error containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != tt.depth || !roots[0].Equal(op.root) {
				t.Fatalf("chain of %d (want %d), root %q", len(chain), tt.depth, roots[0].Subject)
			}
		})
	}
}

// TestImport: after an import, certificates chain to the operator's root, the old
// root stays trusted until the overlap is finished, and another node follows.
func TestImport(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	n1 := startAuthority(t, st, DefaultConfig(), kek)
	n2 := startAuthority(t, st, DefaultConfig(), kek)
	op := newOperatorCA(t)
	oldRoot := n1.TrustBundle()[0]
	bad := op.files(t)
	bad.Key = keyPEM(t, p256(t))
	if err := n1.Import(context.Background(), bad); !errors.Is(err, ErrRefused) {
		t.Fatalf("import of a mismatched key = %v, want a refusal", err)
	}
	if !n1.TrustBundle()[0].Equal(oldRoot) {
		t.Fatal("a refused import changed the CA")
	}
	if err := n1.Import(context.Background(), op.files(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other node has the operator's root", func() bool { return n2.TrustBundle()[0].Equal(op.root) })
	if b := n2.TrustBundle(); len(b) != 2 || !b[1].Equal(oldRoot) {
		t.Fatalf("bundle of %d roots, want the operator's and the old one", len(b))
	}
	leaf, inters := issue(t, n2)
	if err := verifyAgainst(leaf, inters, []*x509.Certificate{op.root}); err != nil {
		t.Fatalf("a certificate after import does not chain to the operator's root: %v", err)
	}
	if leaf.Issuer.String() != op.inter.Subject.String() {
		t.Fatalf("issued by %q, want the operator's intermediate", leaf.Issuer)
	}
	info, _ := n2.Info()
	if info.Source != SourceImported || !info.Rotating {
		t.Fatalf("info: source %s rotating %v", info.Source, info.Rotating)
	}
}
