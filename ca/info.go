package ca

import (
	"crypto/x509"
	"time"
)

// Info describes the cluster's CA for operators (navarch ca show): certificates and
// fingerprints, never a key.
type Info struct {
	TrustDomain string
	// Source is SourceSelfSigned or SourceImported.
	Source string
	// Roots is the trust bundle, the current signer's root first.
	Roots []CertInfo
	// Chain is the signing certificate and any intermediates above it, up to (not
	// including) the root.
	Chain []CertInfo
	// Rotating is true during an overlap: the bundle holds an earlier root too.
	Rotating bool
	// Updated is when the CA was last created, imported or rotated.
	Updated time.Time
	// KEKID identifies this node's key-encryption key (not the key).
	KEKID string
	// BundlePEM is the trust bundle as PEM.
	BundlePEM string
}

// CertInfo describes one certificate.
type CertInfo struct {
	Subject     string
	Issuer      string
	Serial      string
	NotBefore   time.Time
	NotAfter    time.Time
	Fingerprint string // SHA-256
	PEM         string
}

func certInfo(c *x509.Certificate) CertInfo {
	return CertInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: c.SerialNumber.Text(16),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Fingerprint: Fingerprint(c), PEM: encodeCert(c)}
}

// Info describes the CA as this node has it; ErrNotReady before Ready.
func (a *Authority) Info() (Info, error) {
	is := a.cur.Load()
	if is == nil {
		return Info{}, ErrNotReady
	}
	out := Info{TrustDomain: a.cfg.TrustDomain, Source: is.source, Rotating: len(is.roots) > 1,
		Updated: is.updated, KEKID: a.kek.ID(), BundlePEM: is.bundle}
	for _, r := range is.roots {
		out.Roots = append(out.Roots, certInfo(r))
	}
	for _, c := range is.chain[:len(is.chain)-1] {
		out.Chain = append(out.Chain, certInfo(c))
	}
	return out, nil
}
