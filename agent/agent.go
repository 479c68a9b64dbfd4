package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/navarch/navarch/internal/wait"
)

// Agent keeps a workload's certificate files current. Its methods are called from
// one goroutine.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	next int    // index in cfg.Servers of the node to ask first: the last that answered
	cur  *Certs // what the files hold, nil before the first fetch
	reg  registrationStatus
}

// New returns an agent. It reads nothing yet.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, log: log.With("component", "agent")}, nil
}

// Run keeps the certificate files current until ctx ends: it takes over valid files
// OutDir already holds, or fetches new ones, then renews them at RenewAt of their
// lifetime with the current certificate (falling back to the join token once it has
// expired or is refused), retrying failed attempts with growing pauses.
func (a *Agent) Run(ctx context.Context) error {
	if c, err := Load(a.cfg.OutDir); err == nil && c.Valid(time.Now()) {
		a.cur = c
		a.log.Info("using the certificate in the output directory", "identity", c.Identity, "expires", c.Leaf().NotAfter)
	}
	backoff := a.cfg.RetryMin
	for {
		if !wait.Sleep(ctx, a.untilRenewal(time.Now())) {
			return nil
		}
		if _, err := a.Fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("getting a certificate failed; retrying", "in", backoff, "err", err)
			if !wait.Sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, a.cfg.RetryMax)
			continue
		}
		backoff = a.cfg.RetryMin
	}
}

// untilRenewal is how long to wait before the next fetch: none without a valid
// certificate, else until RenewAt of its remaining lifetime (from when it was
// received, not its backdated NotBefore), with 10% jitter so that workloads started
// together do not renew together.
func (a *Agent) untilRenewal(now time.Time) time.Duration {
	if a.cur == nil || !a.cur.Valid(now) {
		return 0
	}
	life := a.cur.Leaf().NotAfter.Sub(a.cur.Received)
	at := a.cur.Received.Add(time.Duration(float64(life) * a.cfg.RenewAt))
	jitter := time.Duration(rand.Float64() * 0.1 * float64(life) * a.cfg.RenewAt)
	return max(0, at.Sub(now)-jitter)
}

// Fetch gets a new certificate once, asking each node in turn (the last one that
// answered first), and writes the files. It authenticates with the current
// certificate while it is valid and with the join token otherwise, or when every
// node refused the certificate (it chains to a root no longer trusted).
func (a *Agent) Fetch(ctx context.Context) (*Certs, error) {
	roots, err := a.trust()
	if err != nil {
		return nil, err
	}
	var certs *Certs
	var errs []error
	if a.cur != nil && a.cur.Valid(time.Now()) {
		cred := credential{cert: a.cur}
		certs, err = a.fetchAny(ctx, cred, roots)
		if err == nil {
			return certs, a.keep(certs, roots == nil, cred)
		}
		errs = append(errs, err)
		if a.cfg.TokenFile == "" {
			return nil, err
		}
	}
	token, err := a.token()
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	cred := credential{token: token}
	if certs, err = a.fetchAny(ctx, cred, roots); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	return certs, a.keep(certs, roots == nil, cred)
}

// fetchAny asks the nodes in turn until one issues a certificate, or one refuses the
// request itself (another would refuse it too).
func (a *Agent) fetchAny(ctx context.Context, cred credential, roots []*x509.Certificate) (*Certs, error) {
	var errs []string
	n := len(a.cfg.Servers)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		idx := (a.next + i) % n
		server := a.cfg.Servers[idx]
		certs, err := a.fetchFrom(ctx, server, cred, roots)
		if err == nil {
			a.next = idx
			return certs, nil
		}
		errs = append(errs, server+": "+err.Error())
		if final(err) {
			break
		}
		a.log.Debug("node did not issue a certificate; trying the next", "server", server, "err", err)
	}
	return nil, fmt.Errorf("no node issued a certificate (authenticating with the %s): %s", cred, strings.Join(errs, "; "))
}

// keep writes certs, which the node last asked (a.next) issued to cred, to the output
// directory and makes them current.
func (a *Agent) keep(certs *Certs, firstUse bool, cred credential) error {
	if firstUse {
		for _, r := range certs.Roots {
			a.log.Warn("trusting on first use: check this root against `navarch ca show`", "root", r.Subject.String(), "sha256", Fingerprint(r))
		}
	}
	if a.cur != nil && a.cur.Identity != certs.Identity {
		a.log.Warn("the identity changed", "was", a.cur.Identity, "now", certs.Identity)
	}
	if a.cur != nil && string(a.cur.BundlePEM) != string(certs.BundlePEM) {
		a.log.Info("the trust bundle changed", "roots", len(certs.Roots))
	}
	if err := certs.write(a.cfg.OutDir); err != nil {
		return fmt.Errorf("writing the certificate files: %w", err)
	}
	a.cur = certs
	// Logged once the files are in place: whoever follows this log may read them.
	a.log.Info("certificate issued", "server", a.cfg.Servers[a.next], "with", cred.String(), "identity", certs.Identity,
		"expires", certs.Leaf().NotAfter.UTC().Format(time.RFC3339), "serial", certs.Leaf().SerialNumber.Text(16))
	return nil
}

// trust returns the roots that verify the nodes: the current bundle, or the one the
// output directory holds, or --ca-file; nil (trust on first use) only when allowed.
func (a *Agent) trust() ([]*x509.Certificate, error) {
	if a.cur != nil {
		return a.cur.Roots, nil
	}
	if roots, err := loadRoots(filepath.Join(a.cfg.OutDir, RootFile)); err == nil {
		return roots, nil
	}
	if a.cfg.CAFile != "" {
		roots, err := loadRoots(a.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		return roots, nil
	}
	if a.cfg.InsecureFirstFetch {
		return nil, nil
	}
	return nil, errors.New("nothing to verify the nodes with: give --ca-file (the root from `navarch ca show -o pem`), or --insecure-first-fetch to trust the first answer")
}

// token reads the join token.
func (a *Agent) token() (string, error) {
	if a.cfg.TokenFile == "" {
		return "", errors.New("no valid certificate and no --token-file to get one with")
	}
	b, err := os.ReadFile(a.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the join token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
