package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// issuer is one loaded signer: its key, its chain and the trust bundle, parsed and
// encoded once (and, for an ECDSA key, a leaf encoder prepared: fastsign.go), so that
// signing a certificate costs one signature and little else. It is immutable; the
// authority swaps it on a change.
type issuer struct {
	cfg     *Config
	source  string
	cert    *x509.Certificate   // the signing certificate
	key     crypto.Signer       // its key
	chain   []*x509.Certificate // cert, intermediates above it, then its root
	roots   []*x509.Certificate // the trust bundle, roots[0] the chain's root
	tail    []string            // chain as PEM: what follows the leaf in a response
	bundle  string              // roots as PEM
	pool    *x509.CertPool      // roots
	inters  *x509.CertPool      // intermediates of chain
	rev     int64               // etcd revision of the record
	updated time.Time
	serving *servingSigner // signs the nodes' serving certificates during an overlap; nil: this signer
	enc     *leafEncoder   // the fast path for ECDSA signers; nil: x509.CreateCertificate
}

// servingSigner is what signs a node's serving certificate: the current signer, or
// during a rotation's overlap the previous one, which workloads that have not
// renewed yet still trust.
type servingSigner struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // cert and the intermediates above it, no root
}

// forServing returns the signer of serving certificates.
func (is *issuer) forServing() *servingSigner {
	if is.serving != nil {
		return is.serving
	}
	return &servingSigner{cert: is.cert, key: is.key, chain: is.chain[:len(is.chain)-1]}
}

func newIssuer(cfg *Config, source string, chain, roots []*x509.Certificate, key crypto.Signer, rev int64, updated time.Time) *issuer {
	is := &issuer{cfg: cfg, source: source, cert: chain[0], key: key, roots: roots,
		pool: x509.NewCertPool(), inters: x509.NewCertPool(), rev: rev, updated: updated}
	is.chain = append(append([]*x509.Certificate(nil), chain...), roots[0])
	for _, c := range is.chain {
		is.tail = append(is.tail, encodeCert(c))
	}
	var b strings.Builder
	for _, r := range roots {
		is.pool.AddCert(r)
		b.WriteString(encodeCert(r))
	}
	for _, c := range chain {
		is.inters.AddCert(c)
	}
	is.bundle = b.String()
	is.enc = is.newEncoder()
	return is
}

// newEncoder prepares the fast path of leaf signing from a prototype leaf made by
// x509.CreateCertificate; nil when the key has none (or the prototype fails).
func (is *issuer) newEncoder() *leafEncoder {
	placeholder := Identity{TrustDomain: "prototype.invalid", Namespace: "prototype", ServiceAccount: "prototype"}
	der, err := x509.CreateCertificate(rand.Reader, is.leafTemplate(placeholder, time.Hour, time.Now()), is.cert, is.key.Public(), is.key)
	if err != nil {
		return nil
	}
	proto, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return newLeafEncoder(is.cert, is.key, proto)
}

// leafTemplate is a workload certificate for id, valid for ttl from now (never past
// the signing certificate's own end).
func (is *issuer) leafTemplate(id Identity, ttl time.Duration, now time.Time) *x509.Certificate {
	notAfter := now.Add(ttl)
	if notAfter.After(is.cert.NotAfter) {
		notAfter = is.cert.NotAfter
	}
	return &x509.Certificate{
		SerialNumber:          newSerial(),
		NotBefore:             now.Add(-is.cfg.Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
}

// issue signs a certificate for id and pub, valid for ttl from now, and returns the
// chain (PEM: the new leaf first, the root last) and the leaf's end of validity.
func (is *issuer) issue(id Identity, pub crypto.PublicKey, ttl time.Duration, now time.Time) ([]string, time.Time, error) {
	tmpl := is.leafTemplate(id, ttl, now)
	var der []byte
	var err error
	if is.enc != nil {
		der, err = is.enc.sign(id, pub, tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter)
	} else {
		der, err = x509.CreateCertificate(rand.Reader, tmpl, is.cert, pub, is.key)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("signing: %w", err)
	}
	out := make([]string, 0, 1+len(is.tail))
	out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	// Certificates hold whole seconds.
	return append(out, is.tail...), tmpl.NotAfter.UTC().Truncate(time.Second), nil
}

// checkTTL turns a requested lifetime into the one to issue: the default for 0, the
// request if within bounds.
func (cfg *Config) checkTTL(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl == 0:
		return cfg.DefaultTTL, nil
	case ttl < 0:
		return 0, refusedf("requested lifetime %s is negative", ttl)
	case ttl > cfg.MaxTTL:
		return 0, refusedf("requested lifetime %s is longer than the maximum %s", ttl, cfg.MaxTTL)
	}
	return ttl, nil
}
