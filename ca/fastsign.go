package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"time"
)

// Workload certificates are the CA's hot path. x509.CreateCertificate verifies every
// signature it makes (a guard against faulty hardware signers), which for ECDSA
// P-256 costs more than the signature itself. For an in-memory ECDSA key, the
// leafEncoder builds the same DER as x509.CreateCertificate (a test checks that the
// to-be-signed bytes are identical) and signs it once. Other keys (an imported RSA
// intermediate) go through x509.CreateCertificate.

// Mirrors of crypto/x509's ASN.1 structures: marshalled by encoding/asn1 exactly as
// x509.CreateCertificate marshals its own.
type tbsCertificate struct {
	Version            int `asn1:"optional,explicit,default:0,tag:0"`
	SerialNumber       *big.Int
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Issuer             asn1.RawValue
	Validity           validity
	Subject            asn1.RawValue
	PublicKey          asn1.RawValue
	Extensions         []pkix.Extension `asn1:"omitempty,optional,explicit,tag:3"`
}

type validity struct {
	NotBefore, NotAfter time.Time
}

type certificate struct {
	TBSCertificate     asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	SignatureValue     asn1.BitString
}

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
)

// leafEncoder encodes and signs workload certificates for one ECDSA signer.
type leafEncoder struct {
	key    *ecdsa.PrivateKey
	sigAlg pkix.AlgorithmIdentifier
	hash   crypto.Hash
	issuer []byte           // the signer's subject, DER
	exts   []pkix.Extension // a leaf's extensions, as x509 builds them
	san    int              // index of the SAN extension in exts
}

// newLeafEncoder prepares the encoder of signer's leaves, or returns nil when its key
// is not an ECDSA P-256 or P-384 key. The extensions that are the same for every
// leaf (key usages, basic constraints, authority key id) are taken from a prototype
// leaf made by x509.CreateCertificate.
func newLeafEncoder(signer *x509.Certificate, key crypto.Signer, proto *x509.Certificate) *leafEncoder {
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil
	}
	e := &leafEncoder{key: k, issuer: signer.RawSubject, san: -1}
	switch k.Curve {
	case elliptic.P256():
		e.sigAlg, e.hash = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, crypto.SHA256
	case elliptic.P384():
		e.sigAlg, e.hash = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA384}, crypto.SHA384
	default:
		return nil
	}
	for i, ext := range proto.Extensions {
		if ext.Id.Equal(oidSAN) {
			e.san = i
		}
		e.exts = append(e.exts, ext)
	}
	if e.san < 0 {
		return nil
	}
	return e
}

// sign returns the DER of a leaf for id and pub, valid from notBefore to notAfter.
func (e *leafEncoder) sign(id Identity, pub crypto.PublicKey, serial *big.Int, notBefore, notAfter time.Time) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	uri := id.URL().String()
	san, err := asn1.Marshal([]asn1.RawValue{{Tag: 6, Class: asn1.ClassContextSpecific, Bytes: []byte(uri)}})
	if err != nil {
		return nil, err
	}
	exts := append([]pkix.Extension(nil), e.exts...)
	exts[e.san].Value = san
	tbs, err := asn1.Marshal(tbsCertificate{
		Version:            2,
		SerialNumber:       serial,
		SignatureAlgorithm: e.sigAlg,
		Issuer:             asn1.RawValue{FullBytes: e.issuer},
		Validity:           validity{notBefore.UTC(), notAfter.UTC()},
		Subject:            asn1.RawValue{FullBytes: []byte{0x30, 0}}, // empty: the identity is the SAN
		PublicKey:          asn1.RawValue{FullBytes: spki},
		Extensions:         exts,
	})
	if err != nil {
		return nil, err
	}
	var digest []byte
	switch e.hash {
	case crypto.SHA256:
		d := sha256.Sum256(tbs)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(tbs)
		digest = d[:]
	default:
		return nil, errors.New("unsupported hash")
	}
	sig, err := ecdsa.SignASN1(rand.Reader, e.key, digest)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(certificate{
		TBSCertificate:     asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: e.sigAlg,
		SignatureValue:     asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
}
