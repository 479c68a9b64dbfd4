package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"
)

// ImportFiles are an operator's intermediate CA, as Istio's cacerts secret holds it.
type ImportFiles struct {
	// Cert is ca-cert.pem: the certificate that will sign workload certificates.
	Cert []byte
	// Key is ca-key.pem: its private key.
	Key []byte
	// Chain is cert-chain.pem: the intermediates from Cert up to the root (Cert and
	// the root may be included, as Istio's tooling writes it). Optional when Cert is
	// signed by the root directly.
	Chain []byte
	// Root is root-cert.pem: the root(s) to trust.
	Root []byte
}

// Import replaces the signer with an operator's intermediate, after checking it: the
// key matches the certificate, the certificate is a CA with an allowed key type and
// still valid, and it chains through Chain to Root. The previous root stays in the
// trust bundle (an overlap, as with Rotate) until FinishRotation, unless the imported
// root is the same. It cannot run while a rotation is in progress (ErrConflict).
func (a *Authority) Import(ctx context.Context, f ImportFiles) error {
	chain, roots, key, err := checkImport(f, time.Now())
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return a.update(ctx, "import", func(cur *record, is *issuer) (*record, error) {
		if err := noOverlap(is); err != nil {
			return nil, err
		}
		bundle := roots
		if old := is.roots[0]; !containsCert(roots, old) {
			bundle = append(bundle, old)
		}
		next, err := newRecord(a.cfg.TrustDomain, SourceImported, chain, bundle, key, a.kek, time.Now())
		if err != nil {
			return nil, err
		}
		if len(bundle) > 1 {
			next.keepPrevious(cur)
		}
		return next, nil
	})
}

// checkImport validates an operator's CA files and returns the signing chain
// (signing certificate first, root excluded), the roots (the one the chain leads to
// first) and the key. Errors name the file at fault.
func checkImport(f ImportFiles, now time.Time) (chain, roots []*x509.Certificate, key crypto.Signer, err error) {
	certs, err := parseCerts("ca-cert.pem", f.Cert)
	if err != nil {
		return nil, nil, nil, refusedf("%v", err)
	}
	if len(certs) != 1 {
		return nil, nil, nil, refusedf("ca-cert.pem: holds %d certificates, want exactly one (the intermediates go in cert-chain.pem)", len(certs))
	}
	cert := certs[0]
	if key, err = parseKey("ca-key.pem", f.Key); err != nil {
		return nil, nil, nil, refusedf("%v", err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, nil, nil, refusedf("ca-key.pem does not match ca-cert.pem (subject %q)", cert.Subject)
	}
	if err := isCA(cert); err != nil {
		return nil, nil, nil, refusedf("ca-cert.pem (subject %q) %v", cert.Subject, err)
	}
	if err := checkKeyType(cert.PublicKey); err != nil {
		return nil, nil, nil, refusedf("ca-cert.pem: %v", err)
	}
	if roots, err = parseCerts("root-cert.pem", f.Root); err != nil {
		return nil, nil, nil, refusedf("%v", err)
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		if err := isCA(r); err != nil {
			return nil, nil, nil, refusedf("root-cert.pem (subject %q) %v", r.Subject, err)
		}
		if err := r.CheckSignatureFrom(r); err != nil {
			return nil, nil, nil, refusedf("root-cert.pem (subject %q) is not self-signed: %v", r.Subject, err)
		}
		rootPool.AddCert(r)
	}
	inters := x509.NewCertPool()
	if len(f.Chain) > 0 {
		cs, err := parseCerts("cert-chain.pem", f.Chain)
		if err != nil {
			return nil, nil, nil, refusedf("%v", err)
		}
		for _, c := range cs {
			if !c.Equal(cert) && !containsCert(roots, c) {
				inters.AddCert(c)
			}
		}
	}
	verified, err := cert.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, nil, nil, refusedf("ca-cert.pem does not chain through cert-chain.pem to root-cert.pem: %v", err)
	}
	path := verified[0]
	root := path[len(path)-1]
	ordered := []*x509.Certificate{root}
	for _, r := range roots {
		if !r.Equal(root) {
			ordered = append(ordered, r)
		}
	}
	return path[:len(path)-1], ordered, key, nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
