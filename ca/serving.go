package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// servingNames are the DNS names every node's serving certificate carries besides its
// own hosts: "navarch" (the name the agent verifies by default, whichever node it
// reaches) and istio-agent's default CA address name.
func servingNames() []string { return []string{"navarch", "istiod.istio-system.svc", "localhost"} }

// ServerTLS returns the TLS configuration of a node's secure gRPC port: a serving
// certificate signed by the mesh CA for hosts (names or IPs; "navarch",
// "istiod.istio-system.svc", localhost and 127.0.0.1 are always added), re-issued
// at half its lifetime and as soon as the signer changes; client certificates are
// requested but optional, and verified against the current trust bundle when given.
// Handshakes fail until Ready.
func (a *Authority) ServerTLS(hosts []string) *tls.Config {
	s := &servingCert{a: a, dns: servingNames(), ips: []net.IP{net.IPv4(127, 0, 0, 1)}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			s.ips = append(s.ips, ip)
		} else if h != "" {
			s.dns = append(s.dns, h)
		}
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}, GetConfigForClient: s.configForClient}
}

// servingCert is a node's current serving certificate and the TLS configuration that
// presents it.
type servingCert struct {
	a   *Authority
	dns []string
	ips []net.IP

	mu      sync.Mutex
	by      *issuer
	renewAt time.Time
	cfg     *tls.Config
}

func (s *servingCert) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	is := s.a.cur.Load()
	if is == nil {
		return nil, ErrNotReady
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil && s.by == is && time.Now().Before(s.renewAt) {
		return s.cfg, nil
	}
	cert, err := s.issue(is)
	if err != nil {
		s.a.log.Error("issuing the node's serving certificate", "err", err)
		if s.cfg != nil {
			return s.cfg, nil
		}
		return nil, err
	}
	s.cfg = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    is.pool,
	}
	s.by = is
	return s.cfg, nil
}

// issue signs a new serving certificate with is's serving signer.
func (s *servingCert) issue(is *issuer) (*tls.Certificate, error) {
	signer := is.forServing()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(s.a.cfg.ServingTTL)
	if notAfter.After(signer.cert.NotAfter) {
		notAfter = signer.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, errors.New("the signing certificate has expired")
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: "navarch", Organization: []string{s.a.cfg.TrustDomain}},
		NotBefore:    now.Add(-s.a.cfg.Backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.cert, key.Public(), signer.key)
	if err != nil {
		return nil, fmt.Errorf("signing the serving certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, c := range signer.chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	s.renewAt = now.Add(notAfter.Sub(now) / 2)
	return cert, nil
}
