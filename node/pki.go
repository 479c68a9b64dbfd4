package node

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/navarch/navarch/store"
)

// The cluster's own credentials protect node-to-node traffic (etcd peer and client
// TLS, memberlist encryption). They all derive from the cluster secret that every node
// is given, so nodes need no exchange to trust each other, and a process without the
// secret can neither join the gossip nor complete a TLS handshake with etcd:
//
//   - the gossip key is HKDF(secret, "navarch gossip");
//   - the cluster CA key is an Ed25519 key whose seed is HKDF(secret, "navarch cluster ca"),
//     and its certificate is built from fixed fields, so every node derives the same CA;
//   - each node creates its own key and a certificate signed by that CA at every start,
//     for its advertise host, written to <data-dir>/tls/.
//
// An operator who wants their own CA for etcd passes its certificate and key instead
// (ClusterCA); the gossip key still derives from the secret. Its certificate file may
// hold other CAs after it, trusted as well, to move the cluster to another CA as the
// secret is rotated (docs/cluster.md).
//
// The secret is rotated without downtime (docs/cluster.md): the secret file may hold
// several secrets, one a line, the first in use and the others still accepted. A
// node encrypts gossip with the first one's key and decrypts with any of theirs
// (memberlist's keyring), presents a certificate of the first one's CA, and trusts
// the CAs of all of them.

// clusterSecrets are the keys derived from the cluster secrets, the one in use first.
type clusterSecrets struct {
	gossipKeys [][]byte
	caSeeds    [][]byte
	token      string // the etcd cluster token, which only a new cluster's bootstrap uses
}

// deriveSecrets derives the keys of the secrets of a secret file: one a line, the
// first in use, the others accepted (while the cluster moves from one to another).
func deriveSecrets(file string) (clusterSecrets, error) {
	var s clusterSecrets
	for i, secret := range strings.Split(file, "\n") {
		if secret = strings.TrimSpace(secret); secret == "" {
			continue
		}
		if len(secret) < 16 {
			return clusterSecrets{}, fmt.Errorf("the cluster secret on line %d must be at least 16 characters", i+1)
		}
		derive := func(info string) []byte {
			k, err := hkdf.Key(sha256.New, []byte(secret), nil, info, 32)
			if err != nil {
				panic(err) // only for a key longer than HKDF can give
			}
			return k
		}
		s.gossipKeys = append(s.gossipKeys, derive("navarch gossip"))
		s.caSeeds = append(s.caSeeds, derive("navarch cluster ca"))
		if s.token == "" {
			s.token = "navarch-" + hex.EncodeToString(derive("navarch etcd cluster token")[:8])
		}
	}
	if len(s.gossipKeys) == 0 {
		return clusterSecrets{}, errors.New("the cluster secret must be at least 16 characters")
	}
	return s, nil
}

// clusterCA is the CA that signs node certificates.
type clusterCA struct {
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer
}

// derivedCA builds the cluster CA from its seed; every node builds the same one.
func derivedCA(seed []byte) (*clusterCA, error) {
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "navarch cluster CA", Organization: []string{"navarch"}},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &clusterCA{cert: cert, der: der, key: key}, nil
}

// loadCA reads an operator's CA certificate and key (PEM). Certificates after the
// first in certFile are CAs trusted as well (also), while the cluster moves from
// one CA to another: the node's certificate is signed by the first.
func loadCA(certFile, keyFile string) (ca *clusterCA, also []*clusterCA, err error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the cluster CA: %w", err)
	}
	for i, der := range pair.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the cluster CA: certificate %d of %s: %w", i+1, certFile, err)
		}
		if !cert.IsCA {
			return nil, nil, fmt.Errorf("loading the cluster CA: certificate %d of %s (%s) is not a CA", i+1, certFile, cert.Subject)
		}
		if now := time.Now(); now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
			return nil, nil, fmt.Errorf("loading the cluster CA: certificate %d of %s (%s) is valid from %s to %s, not now", i+1, certFile,
				cert.Subject, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
		}
		if i == 0 {
			signer, ok := pair.PrivateKey.(crypto.Signer)
			if !ok {
				return nil, nil, errors.New("loading the cluster CA: its key cannot sign")
			}
			ca = &clusterCA{cert: cert, der: der, key: signer}
			continue
		}
		also = append(also, &clusterCA{cert: cert, der: der})
	}
	return ca, also, nil
}

// nodeCertLifetime is how long a node certificate is valid at most: it is issued
// again at every start, and never outlives the CA that signs it.
const nodeCertLifetime = 5 * 365 * 24 * time.Hour

// issueNodeCert writes a fresh key and certificate for this node, valid for server and
// client authentication at host (and loopback), into dir, with the CA certificate
// and those of also, the other CAs the node trusts. It returns the files and when
// the certificate expires.
func (ca *clusterCA) issueNodeCert(dir, name, host string, also ...*clusterCA) (*store.TLSFiles, time.Time, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, time.Time{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, time.Time{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"navarch"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(nodeCertLifetime).Truncate(time.Second), // as the certificate holds it
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost", name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("signing the node certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, time.Time{}, err
	}
	files := &store.TLSFiles{
		CertFile: filepath.Join(dir, "node.crt"),
		KeyFile:  filepath.Join(dir, "node.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
	}
	cas := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
	for _, other := range also {
		cas = append(cas, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.der})...)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{files.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{files.CAFile, cas, 0o644},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, time.Time{}, err
		}
	}
	return files, tmpl.NotAfter, nil
}

// clientTLS returns the TLS configuration this node uses to talk to other members'
// etcd: its own certificate, and only the cluster CAs trusted.
func clientTLS(files *store.TLSFiles) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in " + files.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
