package agent

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The files the agent keeps in its output directory: Istio's names, which grpc-go's
// file_watcher certificate provider (navarch bootstrap --certs-dir) reads.
const (
	ChainFile = "cert-chain.pem" // the workload certificate, then its intermediates
	KeyFile   = "key.pem"        // its private key (PKCS#8), mode 0600
	RootFile  = "root-cert.pem"  // every trusted root: two during a root rotation
)

// Certs is a workload's certificate, its key and the trust bundle.
type Certs struct {
	ChainPEM, KeyPEM, BundlePEM []byte
	// Chain is the certificate (first) and its intermediates.
	Chain []*x509.Certificate
	Key   crypto.Signer
	Roots []*x509.Certificate
	// Identity is the certificate's SPIFFE ID.
	Identity string
	// Received is when the agent got (or loaded) them: renewal is scheduled from it.
	Received time.Time
}

// Leaf returns the workload certificate.
func (c *Certs) Leaf() *x509.Certificate { return c.Chain[0] }

// newCerts parses and checks what a node returned (or the files held): the key is
// the certificate's, the certificate chains to one of the roots and carries exactly
// one SPIFFE URI SAN.
func newCerts(chainPEM, keyPEM, bundlePEM []byte) (*Certs, error) {
	c := &Certs{ChainPEM: chainPEM, KeyPEM: keyPEM, BundlePEM: bundlePEM, Received: time.Now()}
	var err error
	if c.Chain, err = parseCerts(ChainFile, chainPEM); err != nil {
		return nil, err
	}
	if c.Roots, err = parseCerts(RootFile, bundlePEM); err != nil {
		return nil, err
	}
	if c.Key, err = parseKey(keyPEM); err != nil {
		return nil, err
	}
	leaf := c.Leaf()
	if eq, ok := c.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: %s does not match the certificate in %s", errKeyMismatch, KeyFile, ChainFile)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].Scheme != "spiffe" {
		return nil, fmt.Errorf("the certificate carries %d URI SANs (%v), want exactly one SPIFFE ID", len(leaf.URIs), leaf.URIs)
	}
	c.Identity = leaf.URIs[0].String()
	if err := c.verify(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)); err != nil {
		return nil, err
	}
	return c, nil
}

// verify checks that the certificate chains to the roots at time at.
func (c *Certs) verify(at time.Time) error {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range c.Roots {
		roots.AddCert(r)
	}
	for _, i := range c.Chain[1:] {
		inters.AddCert(i)
	}
	_, err := c.Leaf().Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return fmt.Errorf("the certificate does not chain to the trust bundle: %w", err)
	}
	return nil
}

// Valid reports whether the certificate is valid at now.
func (c *Certs) Valid(now time.Time) bool {
	return now.After(c.Leaf().NotBefore) && now.Before(c.Leaf().NotAfter)
}

// errKeyMismatch is a key and certificate of different pairs.
var errKeyMismatch = errors.New("key mismatch")

// Load reads and checks the files of dir. The files are replaced one at a time,
// so a reader may catch the key of a new pair with the certificate of the old one:
// Load reads them again, a few times, before it calls that a mismatch.
func Load(dir string) (*Certs, error) {
	for attempt := 1; ; attempt++ {
		c, err := loadOnce(dir)
		if !errors.Is(err, errKeyMismatch) || attempt == 5 {
			return c, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func loadOnce(dir string) (*Certs, error) {
	var data [3][]byte
	for i, name := range []string{ChainFile, KeyFile, RootFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	c, err := newCerts(data[0], data[1], data[2])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, nil
}

// loadRoots reads the roots of a PEM file.
func loadRoots(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCerts(path, b)
}

// write replaces the files of dir, each atomically (a temporary file renamed over
// it), the key first: a reader that sees the new certificate finds its key.
func (c *Certs) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, c.KeyPEM, 0o600}, {ChainFile, c.ChainPEM, 0o644}, {RootFile, c.BundlePEM, 0o644}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func parseCerts(what string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", what)
	}
	return out, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM \"PRIVATE KEY\"", KeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New(KeyFile + ": not a signing key")
	}
	return s, nil
}

// encodeCerts returns certificates as PEM.
func encodeCerts(cs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Fingerprint returns a certificate's SHA-256 fingerprint as `navarch ca show` and
// `openssl x509 -fingerprint -sha256` print it.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
