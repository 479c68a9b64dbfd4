package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/node"
)

// caFlags binds the flags of `navarch server` that concern the mesh CA and the TLS
// gRPC port to cfg, whose values are the defaults. The key-encryption key is read
// from the file it returns after parsing (readKEK).
func caFlags(fs *flag.FlagSet, cfg *node.Config) (kekFile *string) {
	fs.StringVar(&cfg.XDSTLSAddr, "xds-tls-addr", cfg.XDSTLSAddr, "address to serve gRPC over TLS on: the CSR API (Istio's IstioCertificateService) and xDS for proxies that authenticate")
	fs.StringVar(&cfg.CA.TrustDomain, "trust-domain", cfg.CA.TrustDomain, "SPIFFE trust domain of the mesh (the same on every node; fixed when the cluster's CA is created)")
	fs.DurationVar(&cfg.CA.DefaultTTL, "cert-ttl", cfg.CA.DefaultTTL, "lifetime of workload certificates whose request names none")
	fs.DurationVar(&cfg.CA.MaxTTL, "cert-max-ttl", cfg.CA.MaxTTL, "longest lifetime a workload certificate request may ask for")
	kekFile = fs.String("ca-kek-file", "", "file holding the CA key-encryption key (32 bytes, raw or 64 hex digits), the same on every node; required unless --dev")
	return kekFile
}

// readKEK reads the key-encryption key from path into cfg, when path is set.
func readKEK(path string, cfg *node.Config) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the CA key-encryption key: %w", err)
	}
	k, err := ca.ParseKEK(b)
	if err != nil {
		return fmt.Errorf("--ca-kek-file %s: %w", path, err)
	}
	cfg.CAKEK = k
	return nil
}
