package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSignRefusesWhatItMustNotSign(t *testing.T) {
	cfg := DefaultConfig()
	a := memAuthority(t, cfg)
	caller := Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"}
	own := caller.URL()
	other := mustURL(t, "spiffe://cluster.local/ns/default/sa/reviews")
	key := p256(t)

	ed := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	rsaKey := func(bits int) crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	goodCSR := csrFor(t, key, nil)
	badSig := func() []byte {
		b, _ := pem.Decode(goodCSR)
		der := bytes.Clone(b.Bytes)
		der[len(der)-1] ^= 0xff
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	registeredIDSAN := func() []byte {
		val, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03}}})
		if err != nil {
			t.Fatal(err)
		}
		return csrFor(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: oidSAN, Value: val}}})
	}
	tests := []struct {
		name string
		csr  []byte
		ttl  time.Duration
		id   Identity
		want string // in the error
	}{
		{name: "garbage is not a CSR", csr: []byte("hello, CA"), want: "no PEM block"},
		{name: "a PEM block of another type", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), want: `PEM block "CERTIFICATE"`},
		{name: "a CSR of garbage bytes", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")}), want: "csr: malformed"},
		{name: "a CSR whose signature does not verify", csr: badSig(), want: "signature does not verify"},
		{name: "an Ed25519 key", csr: csrFor(t, ed(), nil), want: "Ed25519 key; allowed: ECDSA P-256 or P-384, RSA 2048-4096 bits"},
		{name: "an RSA-1024 key", csr: csrFor(t, rsaKey(1024), nil), want: "RSA key of 1024 bits"},
		{name: "a P-521 key", csr: csrFor(t, p521, nil), want: "curve P-521"},
		{name: "a SAN of another identity", csr: csrFor(t, key, &x509.CertificateRequest{URIs: []*url.URL{other}}), want: "subject alternative name spiffe://cluster.local/ns/default/sa/reviews is not the caller's identity spiffe://cluster.local/ns/default/sa/ratings"},
		{name: "the caller's SAN and another", csr: csrFor(t, key, &x509.CertificateRequest{URIs: []*url.URL{own, other}}), want: "is not the caller's identity"},
		{name: "a DNS SAN", csr: csrFor(t, key, &x509.CertificateRequest{DNSNames: []string{"ratings.default.svc"}}), want: "DNS subject alternative names are not allowed (got ratings.default.svc)"},
		{name: "an email SAN", csr: csrFor(t, key, &x509.CertificateRequest{EmailAddresses: []string{"a@b.c"}}), want: "email subject alternative names are not allowed"},
		{name: "an IP SAN", csr: csrFor(t, key, &x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}), want: "IP subject alternative names are not allowed (got 10.0.0.1)"},
		{name: "a kind of SAN Go does not parse", csr: registeredIDSAN(), want: "registeredID subject alternative names are not allowed"},
		{name: "an oversized SAN list", csr: csrFor(t, key, &x509.CertificateRequest{URIs: []*url.URL{own, own, own, own, own}}), want: "5 subject alternative names, at most 4 allowed"},
		{name: "an oversized CSR", csr: append(bytes.Repeat([]byte(" "), cfg.MaxCSRBytes), goodCSR...), want: "at most 16384 allowed"},
		{name: "a lifetime over the maximum", csr: goodCSR, ttl: 30 * 24 * time.Hour, want: "requested lifetime 720h0m0s is longer than the maximum 168h0m0s"},
		{name: "a negative lifetime", csr: goodCSR, ttl: -time.Second, want: "negative"},
		{name: "an identity of another trust domain", csr: goodCSR, id: Identity{TrustDomain: "other.local", Namespace: "default", ServiceAccount: "ratings"}, want: "is not of trust domain cluster.local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := caller
			if tt.id != (Identity{}) {
				id = tt.id
			}
			chain, err := a.Sign(tt.csr, id, tt.ttl)
			if err == nil {
				t.Fatalf("signed (%d certificates), want a refusal containing %q", len(chain), tt.want)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("error %v does not match ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSignIssuesTheCallersIdentityOnly(t *testing.T) {
	a := memAuthority(t, DefaultConfig())
	caller := Identity{TrustDomain: "cluster.local", Namespace: "bookinfo", ServiceAccount: "ratings"}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name string
		key  crypto.Signer
		tmpl *x509.CertificateRequest
		ttl  time.Duration
	}{
		{name: "a CSR without SANs gets the caller's", key: p256(t)},
		{name: "a CSR naming the caller", key: p256(t), tmpl: &x509.CertificateRequest{URIs: []*url.URL{caller.URL()}}},
		{name: "a CSR with a subject, which is ignored", key: p256(t), tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}}},
		{name: "a P-384 key", key: p384, ttl: time.Hour},
		{name: "an RSA-2048 key", key: rsa2048, ttl: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			chain, err := a.Sign(csrFor(t, tt.key, tt.tmpl), caller, tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			certs := parseChain(t, chain)
			if len(certs) != 3 {
				t.Fatalf("chain of %d certificates, want leaf, intermediate, root", len(certs))
			}
			leaf, root := certs[0], certs[len(certs)-1]
			if err := verifyAgainst(leaf, certs[1:len(certs)-1], []*x509.Certificate{root}); err != nil {
				t.Fatalf("leaf does not verify against the chain's root: %v", err)
			}
			if !root.Equal(a.TrustBundle()[0]) {
				t.Error("the chain's root is not the trust bundle's")
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != caller.SPIFFE() || len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
				t.Errorf("leaf SANs: URIs %v DNS %v email %v IP %v; want only %s", leaf.URIs, leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses, caller.SPIFFE())
			}
			if leaf.Subject.CommonName != "" || leaf.IsCA {
				t.Errorf("leaf subject %q, CA %v; want an empty subject and not a CA", leaf.Subject, leaf.IsCA)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("key usage %b", leaf.KeyUsage)
			}
			if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ext key usage %v, want server and client auth", leaf.ExtKeyUsage)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature algorithm %s, want ECDSA-SHA256", leaf.SignatureAlgorithm)
			}
			if !leaf.NotBefore.Before(before) {
				t.Errorf("NotBefore %s is not in the past", leaf.NotBefore)
			}
			ttl := tt.ttl
			if ttl == 0 {
				ttl = DefaultConfig().DefaultTTL
			}
			if got := leaf.NotAfter.Sub(before); got < ttl-time.Second || got > ttl+time.Second {
				t.Errorf("lifetime %s, want %s", got, ttl)
			}
			if !publicKeysEqual(leaf.PublicKey, tt.key.Public()) {
				t.Error("the leaf does not certify the CSR's key")
			}
		})
	}
}

func TestIdentityParsing(t *testing.T) {
	tests := []struct {
		in   string
		want Identity
		err  string
	}{
		{in: "spiffe://cluster.local/ns/default/sa/ratings", want: Identity{"cluster.local", "default", "ratings"}},
		{in: "spiffe://example.org/ns/a-b/sa/x.y", want: Identity{"example.org", "a-b", "x.y"}},
		{in: "https://cluster.local/ns/default/sa/ratings", err: "must be spiffe://"},
		{in: "spiffe://cluster.local/ns/default", err: "path must be /ns/<namespace>/sa/<service account>"},
		{in: "spiffe://cluster.local/ns/Default/sa/x", err: `namespace "Default"`},
		{in: "spiffe://Cluster.Local/ns/default/sa/x", err: "trust domain"},
		{in: "spiffe://cluster.local:8080/ns/default/sa/x", err: "must be spiffe://"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSPIFFE(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSPIFFE = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || got.SPIFFE() != tt.in {
				t.Fatalf("ParseSPIFFE = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// BenchmarkSign measures the CA's share of a CSR: checks, one signature and its
// verification. The CSR is made once.
func BenchmarkSign(b *testing.B) {
	t := &testing.T{}
	a := memAuthority(t, DefaultConfig())
	id := Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "bench"}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Sign(csr, id, 0); err != nil {
			b.Fatal(err)
		}
	}
}
