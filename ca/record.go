package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/navarch/navarch/store"
)

// Keys of the CA in etcd.
const (
	// Prefix holds every key of the CA; every node watches it.
	Prefix = store.Root + "ca/"
	// authorityKey holds the record: roots, signing chain, sealed signing key.
	authorityKey = Prefix + "authority"
	// TokenPrefix holds join tokens, one key per token id (hashes, never secrets).
	TokenPrefix = Prefix + "tokens/"
)

// Sources of a signer.
const (
	SourceSelfSigned = "self-signed"
	SourceImported   = "imported"
)

// record is the CA as stored at authorityKey: one value, so that an import or a
// rotation changes roots, chain and key in one write that every node sees at once.
type record struct {
	TrustDomain string `json:"trustDomain"`
	// Source is how the signer came to be: SourceSelfSigned or SourceImported.
	Source string `json:"source"`
	// Roots is the trust bundle (PEM). Roots[0] is the root the signing chain leads
	// to; any others are earlier roots still trusted during a rotation.
	Roots []string `json:"roots"`
	// Chain is the signing certificate (PEM) and the intermediates between it and
	// Roots[0], signing certificate first.
	Chain []string `json:"chain"`
	// SealedKey is the signing key, PKCS#8, encrypted with the cluster's KEK
	// (base64 of nonce and AES-256-GCM ciphertext), bound to the signing
	// certificate's fingerprint.
	SealedKey string `json:"sealedKey"`
	// PreviousChain and PreviousKey are the signer that Chain and SealedKey replaced,
	// kept during a rotation's overlap (until FinishRotation) to issue the nodes'
	// serving certificates: a workload that has not renewed yet trusts only the old
	// root, and must still be able to verify the node it renews through.
	PreviousChain []string `json:"previousChain,omitempty"`
	PreviousKey   string   `json:"previousKey,omitempty"`
	// KEKID identifies the KEK that sealed the key (never the key itself), so that a
	// node given another one says so.
	KEKID string `json:"kekId"`
	// Updated is when the record was last written (import, rotation, finish).
	Updated time.Time `json:"updated"`
}

// keyAAD binds a sealed signing key to its certificate.
func keyAAD(signingCert *x509.Certificate) []byte {
	return []byte("navarch ca signing key\x00" + Fingerprint(signingCert))
}

// newRecord seals key under kek and returns the record of a signer whose chain is
// chain (signing certificate first) and whose trust bundle is roots (its own first).
func newRecord(trustDomain, source string, chain, roots []*x509.Certificate, key crypto.Signer, kek KEK, now time.Time) (*record, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the signing key: %w", err)
	}
	sealed, err := kek.seal(der, keyAAD(chain[0]))
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("encrypting the signing key: %w", err)
	}
	r := &record{TrustDomain: trustDomain, Source: source, SealedKey: sealed, KEKID: kek.ID(), Updated: now.UTC()}
	for _, c := range chain {
		r.Chain = append(r.Chain, encodeCert(c))
	}
	for _, c := range roots {
		r.Roots = append(r.Roots, encodeCert(c))
	}
	return r, nil
}

func (r *record) marshal() (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

func unmarshalRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding the CA record %s: %w", authorityKey, err)
	}
	if len(r.Roots) == 0 || len(r.Chain) == 0 || r.SealedKey == "" {
		return nil, fmt.Errorf("the CA record %s is incomplete (roots, chain and key are required)", authorityKey)
	}
	return &r, nil
}

// open decrypts the record's keys with kek and builds the signer it describes.
func (r *record) open(kek KEK, cfg *Config, revision int64) (*issuer, error) {
	chain, signer, err := openSigner(r.Chain, r.SealedKey, "chain", kek, r.KEKID)
	if err != nil {
		return nil, err
	}
	var roots []*x509.Certificate
	for i, p := range r.Roots {
		cs, err := parseCerts(fmt.Sprintf("CA record roots[%d]", i), []byte(p))
		if err != nil {
			return nil, err
		}
		roots = append(roots, cs...)
	}
	is := newIssuer(cfg, r.Source, chain, roots, signer, revision, r.Updated)
	if len(r.PreviousChain) > 0 && len(roots) > 1 {
		prev, prevKey, err := openSigner(r.PreviousChain, r.PreviousKey, "previous chain", kek, r.KEKID)
		if err != nil {
			return nil, err
		}
		is.serving = &servingSigner{cert: prev[0], key: prevKey, chain: prev}
	}
	return is, nil
}

// openSigner parses a signing chain (PEM, signing certificate first) and opens its
// sealed key.
func openSigner(chainPEM []string, sealed, what string, kek KEK, kekID string) ([]*x509.Certificate, crypto.Signer, error) {
	var chain []*x509.Certificate
	for i, p := range chainPEM {
		cs, err := parseCerts(fmt.Sprintf("CA record %s[%d]", what, i), []byte(p))
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, cs...)
	}
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("the CA record's %s is empty", what)
	}
	der, err := kek.open(sealed, keyAAD(chain[0]))
	if err != nil {
		if errors.Is(err, errWrongKEK) {
			return nil, nil, fmt.Errorf("opening the CA signing key: it was sealed with key-encryption key %s, this node has %s: every node must be given the same --ca-kek-file", kekID, kek.ID())
		}
		return nil, nil, fmt.Errorf("opening the CA signing key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the CA signing key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok || !publicKeysEqual(signer.Public(), chain[0].PublicKey) {
		return nil, nil, fmt.Errorf("opening the CA signing key: it does not match the signing certificate (%s)", what)
	}
	return chain, signer, nil
}
