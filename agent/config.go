package agent

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures the certificate agent of a workload.
type Config struct {
	// Servers are the TLS gRPC addresses (host:port, 15012) of navarch nodes, tried
	// in turn: the agent keeps using the one that last answered and moves to the
	// next when it fails.
	Servers []string
	// TokenFile holds a join token (navarch token create). It authenticates the first
	// request, and any request while the agent holds no valid certificate; renewals
	// use the current certificate. It is read at each use, so it may be replaced.
	TokenFile string
	// OutDir receives cert-chain.pem (leaf first), key.pem and root-cert.pem (every
	// trusted root), Istio's file names, each replaced atomically.
	OutDir string
	// CAFile holds the root(s) that verify the nodes on the first request, before
	// OutDir has a root-cert.pem. Required unless InsecureFirstFetch.
	CAFile string
	// InsecureFirstFetch trusts whichever node answers the first request (trust on
	// first use): the roots it returns are logged with their fingerprints, to be
	// compared with `navarch ca show`, and trusted from then on.
	InsecureFirstFetch bool
	// ServerName is the name the nodes' serving certificates are verified for. Every
	// node's carries "navarch", whichever address it is reached at.
	ServerName string
	// TTL is the certificate lifetime to ask for; 0 takes the nodes' default.
	TTL time.Duration
	// RenewAt is the fraction of a certificate's lifetime after which it is renewed:
	// half, as Istio's agent, leaves the other half to ride out an outage.
	RenewAt float64
	// RetryMin and RetryMax bound the wait between failed attempts (doubling).
	RetryMin, RetryMax time.Duration
	// Timeout bounds one request to one node.
	Timeout time.Duration
}

// DefaultConfig returns the configuration of `navarch agent certs` without flags.
func DefaultConfig() Config {
	return Config{
		Servers:    []string{"127.0.0.1:15012"},
		ServerName: "navarch",
		RenewAt:    0.5,
		RetryMin:   500 * time.Millisecond,
		RetryMax:   30 * time.Second,
		Timeout:    10 * time.Second,
	}
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("agent: at least one --server is required"))
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("agent: --server must be host:port, got %q", s))
		}
	}
	if c.OutDir == "" {
		errs = append(errs, errors.New("agent: --out must be set"))
	}
	if c.ServerName == "" {
		errs = append(errs, errors.New("agent: --server-name must be set"))
	}
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("agent: --ttl must not be negative, got %s", c.TTL))
	}
	if c.RenewAt <= 0 || c.RenewAt >= 1 {
		errs = append(errs, fmt.Errorf("agent: renew-at must be between 0 and 1 (a fraction of the lifetime), got %g", c.RenewAt))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("agent: retry bounds must be positive and ordered, got %s and %s", c.RetryMin, c.RetryMax))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("agent: timeout must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}
