package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"strings"
)

// oidSAN is the subject alternative name extension.
var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// generalNameTypes names the GeneralName choices of a SAN extension by their tag.
var generalNameTypes = map[int]string{
	0: "otherName", 1: "email", 2: "DNS", 3: "x400Address", 4: "directoryName",
	5: "ediPartyName", 6: "URI", 7: "IP", 8: "registeredID",
}

// checkCSR parses a PEM certificate signing request and checks it may be signed for
// id: a well-formed CSR whose signature verifies, with an allowed key type, and whose
// only subject alternative names (at most maxSANs of them) are id's SPIFFE ID. It
// returns the CSR's public key. The checks run cheapest first, so that garbage costs
// little. Every error says what is wrong with the CSR.
func checkCSR(csrPEM []byte, id Identity, maxBytes, maxSANs int) (crypto.PublicKey, error) {
	if len(csrPEM) > maxBytes {
		return nil, refusedf("csr: %d bytes, at most %d allowed", len(csrPEM), maxBytes)
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return nil, refusedf("csr: no PEM block: want a PEM \"CERTIFICATE REQUEST\"")
	}
	if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
		return nil, refusedf("csr: PEM block %q, want \"CERTIFICATE REQUEST\"", b.Type)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, refusedf("csr: malformed: %v", err)
	}
	if err := checkSANs(csr, id, maxSANs); err != nil {
		return nil, err
	}
	if err := checkKeyType(csr.PublicKey); err != nil {
		return nil, refusedf("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refusedf("csr: the signature does not verify with the CSR's own key: %v", err)
	}
	return csr.PublicKey, nil
}

// checkSANs allows only URI SANs equal to id's SPIFFE ID, at most maxSANs of them.
// It reads the raw extension, so that kinds of names Go's parser skips (otherName,
// directoryName, ...) are refused too.
func checkSANs(csr *x509.CertificateRequest, id Identity, maxSANs int) error {
	var names []asn1.RawValue
	seen := 0
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if seen++; seen > 1 {
			return refusedf("csr: more than one subject alternative name extension")
		}
		rest, err := asn1.Unmarshal(ext.Value, &names)
		if err != nil || len(rest) > 0 {
			return refusedf("csr: malformed subject alternative name extension")
		}
	}
	if len(names) > maxSANs {
		return refusedf("csr: %d subject alternative names, at most %d allowed (only the caller's SPIFFE ID %s)", len(names), maxSANs, id.SPIFFE())
	}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 6 {
			kind := generalNameTypes[n.Tag]
			if n.Class != asn1.ClassContextSpecific || kind == "" {
				kind = "unknown"
			}
			return refusedf("csr: %s subject alternative names are not allowed%s; the only allowed one is the caller's SPIFFE ID %s",
				kind, sanValues(csr, kind), id.SPIFFE())
		}
	}
	want := id.SPIFFE()
	for _, u := range csr.URIs {
		if u.String() != want {
			return refusedf("csr: subject alternative name %s is not the caller's identity %s", u, want)
		}
	}
	return nil
}

// sanValues shows the refused names Go's parser understood, for the error.
func sanValues(csr *x509.CertificateRequest, kind string) string {
	var vals []string
	switch kind {
	case "DNS":
		vals = csr.DNSNames
	case "email":
		vals = csr.EmailAddresses
	case "IP":
		for _, ip := range csr.IPAddresses {
			vals = append(vals, ip.String())
		}
	}
	if len(vals) == 0 {
		return ""
	}
	return " (got " + strings.Join(vals, ", ") + ")"
}

// refusal is a request the CA will not sign, and why.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

func refusedf(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}
