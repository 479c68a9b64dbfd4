package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// newSerial returns a random 127-bit serial number.
func newSerial() *big.Int {
	s, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return s.Add(s, big.NewInt(1))
}

// newSelfSignedCA creates a root (self-signed, valid for rootTTL) and an intermediate
// it signs (valid for intTTL), both with fresh ECDSA P-256 keys. The root's key is
// not returned: nothing needs it once the intermediate is signed, so it is never
// stored. Rotation makes a new root.
func newSelfSignedCA(trustDomain string, rootTTL, intTTL time.Duration, now time.Time) (root, inter *x509.Certificate, interKey crypto.Signer, err error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	stamp := now.UTC().Format("20060102T150405Z")
	rootTmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: "navarch mesh root " + stamp},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the root: %w", err)
	}
	if root, err = x509.ParseCertificate(rootDER); err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: "navarch mesh intermediate " + stamp},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(intTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the intermediate: %w", err)
	}
	if inter, err = x509.ParseCertificate(interDER); err != nil {
		return nil, nil, nil, err
	}
	return root, inter, key, nil
}

// encodeCert returns a certificate as PEM.
func encodeCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// parseCerts reads every CERTIFICATE block of a PEM text; what names the text in
// errors.
func parseCerts(what string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q, want CERTIFICATE", what, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", what, len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", what)
	}
	return out, nil
}

// parseKey reads a PEM private key (PKCS#8, SEC 1 EC or PKCS#1 RSA).
func parseKey(what string, data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM private key block", what)
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%s: unexpected PEM block %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", what, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", what, key)
	}
	return signer, nil
}

// checkKeyType accepts ECDSA P-256 and P-384 and RSA keys of 2048 to 4096 bits.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("ECDSA key on curve %s; allowed: ECDSA P-256 or P-384, RSA 2048-4096 bits", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return fmt.Errorf("RSA key of %d bits; allowed: ECDSA P-256 or P-384, RSA 2048-4096 bits", bits)
		}
		return nil
	}
	return fmt.Errorf("%s key; allowed: ECDSA P-256 or P-384, RSA 2048-4096 bits", keyTypeName(pub))
}

func keyTypeName(pub crypto.PublicKey) string {
	name := fmt.Sprintf("%T", pub)
	name = strings.TrimPrefix(strings.TrimPrefix(name, "*"), "crypto/")
	switch {
	case strings.HasPrefix(name, "ed25519."):
		return "Ed25519"
	case strings.HasPrefix(name, "ecdh."):
		return "ECDH"
	case strings.HasPrefix(name, "dsa."):
		return "DSA"
	}
	return name
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// Fingerprint returns the SHA-256 fingerprint of a certificate, as colon-separated
// upper-case hex (openssl x509 -fingerprint -sha256).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// isCA reports whether c may sign certificates.
func isCA(c *x509.Certificate) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return errors.New("is not a CA certificate (basic constraints CA:TRUE missing)")
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("may not sign certificates (key usage keyCertSign missing)")
	}
	return nil
}
