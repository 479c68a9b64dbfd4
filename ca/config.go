package ca

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a node's certificate authority. Every node of a cluster must be
// given the same TrustDomain; the other fields may differ between nodes (each bounds
// what it signs itself).
type Config struct {
	// TrustDomain is the SPIFFE trust domain of the mesh: identities are
	// spiffe://<TrustDomain>/ns/<namespace>/sa/<serviceAccount>. It is fixed when the
	// cluster's CA is created; a node configured with another one refuses to start.
	TrustDomain string
	// DefaultTTL is the lifetime of a workload certificate whose request asks for
	// none. Istio's default, 24 hours: short enough that a leaked key is soon useless,
	// long enough to ride out a control-plane outage of hours.
	DefaultTTL time.Duration
	// MaxTTL bounds the lifetime a request may ask for; a longer one is refused.
	// Istio's default maximum is 90 days; a week keeps renewal exercised.
	MaxTTL time.Duration
	// Backdate sets NotBefore this far in the past, so that a workload whose clock is
	// a little behind the node's accepts its fresh certificate.
	Backdate time.Duration
	// MaxSANs bounds the subject alternative names a CSR may carry (all of them must
	// be the caller's own SPIFFE ID). Istio's agent sends one.
	MaxSANs int
	// MaxCSRBytes bounds a PEM CSR: an RSA-4096 CSR is under 2 KiB.
	MaxCSRBytes int
	// RootTTL is the lifetime of a root the cluster creates (at bootstrap and at each
	// rotation): ten years, as Istio's self-signed root.
	RootTTL time.Duration
	// IntermediateTTL is the lifetime of the intermediate the root signs and that
	// signs workload certificates. It must be shorter than RootTTL.
	IntermediateTTL time.Duration
	// MaxTokenTTL bounds the lifetime of a join token. A token is a bearer
	// credential for a whole WorkloadGroup: mint short-lived ones per rollout.
	MaxTokenTTL time.Duration
	// ServingTTL is the lifetime of a node's own TLS serving certificate; the node
	// re-issues it at half its lifetime and whenever the signer changes.
	ServingTTL time.Duration
}

// DefaultConfig returns the configuration navarch runs with.
func DefaultConfig() Config {
	return Config{
		TrustDomain:     "cluster.local",
		DefaultTTL:      24 * time.Hour,
		MaxTTL:          7 * 24 * time.Hour,
		Backdate:        2 * time.Minute,
		MaxSANs:         4,
		MaxCSRBytes:     16 << 10,
		RootTTL:         10 * 365 * 24 * time.Hour,
		IntermediateTTL: 5 * 365 * 24 * time.Hour,
		MaxTokenTTL:     30 * 24 * time.Hour,
		ServingTTL:      7 * 24 * time.Hour,
	}
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	var errs []error
	if err := validateTrustDomain(c.TrustDomain); err != nil {
		errs = append(errs, fmt.Errorf("ca: %w", err))
	}
	if c.DefaultTTL <= 0 {
		errs = append(errs, fmt.Errorf("ca: --cert-ttl must be positive, got %s", c.DefaultTTL))
	}
	if c.MaxTTL < c.DefaultTTL {
		errs = append(errs, fmt.Errorf("ca: --cert-max-ttl (%s) must be at least --cert-ttl (%s)", c.MaxTTL, c.DefaultTTL))
	}
	if c.Backdate < 0 || c.Backdate > time.Hour {
		errs = append(errs, fmt.Errorf("ca: backdate must be 0 to 1h, got %s", c.Backdate))
	}
	if c.MaxSANs < 1 {
		errs = append(errs, fmt.Errorf("ca: max SANs must be at least 1, got %d", c.MaxSANs))
	}
	if c.MaxCSRBytes < 1024 {
		errs = append(errs, fmt.Errorf("ca: max CSR bytes must be at least 1024, got %d", c.MaxCSRBytes))
	}
	if c.IntermediateTTL <= 0 || c.RootTTL <= c.IntermediateTTL {
		errs = append(errs, fmt.Errorf("ca: the intermediate's lifetime (%s) must be positive and shorter than the root's (%s)", c.IntermediateTTL, c.RootTTL))
	}
	if c.IntermediateTTL < c.MaxTTL {
		errs = append(errs, fmt.Errorf("ca: the intermediate's lifetime (%s) must be at least --cert-max-ttl (%s)", c.IntermediateTTL, c.MaxTTL))
	}
	if c.MaxTokenTTL <= 0 {
		errs = append(errs, fmt.Errorf("ca: max token lifetime must be positive, got %s", c.MaxTokenTTL))
	}
	if c.ServingTTL < time.Minute {
		errs = append(errs, fmt.Errorf("ca: serving certificate lifetime must be at least 1m, got %s", c.ServingTTL))
	}
	return errors.Join(errs...)
}
