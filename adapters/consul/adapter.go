package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/internal/reload"
	"github.com/navarch/navarch/internal/wait"
)

// Store is where the adapter writes; *store.Store implements it.
type Store = mirror.Store

// Adapter brings a Consul catalog into the registry: one Datacenter per configured
// datacenter, each run under its own election.
type Adapter struct {
	cfg    Config
	client *capi.Client
	// transport is the client's, for closing idle connections.
	transport *http.Transport
	tls       bool
	st        Store
	node      string
	log       *slog.Logger
	conns     *connections
	tokenFile *reload.Token // nil: cfg.Token, fixed
}

// token is the ACL token to send with a request.
func (a *Adapter) token() string {
	if a.tokenFile != nil {
		return a.tokenFile.Get()
	}
	return a.cfg.Token
}

// New returns an adapter that reads Consul as cfg says and writes to st on behalf of
// the node named node (recorded in the source status). It starts nothing.
func New(cfg Config, st Store, node string, log *slog.Logger) (*Adapter, error) {
	if !cfg.Enabled() {
		return nil, errors.New("consul: no address configured")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("component", "consul")
	var tf *reload.Token
	if cfg.TokenFile != "" {
		var err error
		if tf, err = reload.OpenToken(cfg.TokenFile, "Consul ACL token", log); err != nil {
			return nil, fmt.Errorf("consul: %w", err)
		}
	}
	client, tr, tls, err := newClient(cfg, log)
	if err != nil {
		return nil, err
	}
	a := &Adapter{cfg: cfg, client: client, transport: tr, tls: tls, st: st, node: node, log: log, tokenFile: tf}
	if !tls && cfg.MaxConnections > 0 {
		a.conns = newConnections(cfg.MaxConnections, cfg.SharedWaitTime)
	}
	return a, nil
}

// newClient returns a Consul API client configured by cfg alone: Consul's own
// environment variables (CONSUL_HTTP_ADDR, CONSUL_CACERT, ...) are not read, so a
// node does what its flags say. tls reports https, where requests share connections
// by HTTP/2.
func newClient(cfg Config, log *slog.Logger) (c *capi.Client, tr *http.Transport, tls bool, err error) {
	scheme := "http"
	if cfg.CAFile != "" {
		scheme = "https"
	}
	addr := cfg.Address
	if s, rest, ok := strings.Cut(addr, "://"); ok && (s == "http" || s == "https") {
		scheme, addr = s, rest
	}
	tr = http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	// Each watched service keeps a request open; keep their connections for reuse
	// instead of closing all but two after every answer.
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, 4096
	if cfg.MaxConnections > 0 {
		// The agent counts idle connections too, and a connection being returned to
		// the pool is not yet reusable: bound them all (the queries, plus one for the
		// service list). HTTP/2 multiplexes requests on few connections anyway.
		tr.MaxConnsPerHost = cfg.MaxConnections + 1
	}
	tlsConfig := capi.TLSConfig{CAFile: cfg.CAFile}
	tc, err := capi.SetupTLSConfig(&tlsConfig)
	if err != nil {
		return nil, nil, false, fmt.Errorf("consul: TLS configuration (--consul-ca-file %q): %w", cfg.CAFile, err)
	}
	if cfg.CAFile != "" {
		// The bundle is read again when it changes: the agent's certificate can move to
		// a new CA without a restart of the node.
		roots, err := reload.OpenRoots(cfg.CAFile, "Consul CA file", log)
		if err != nil {
			return nil, nil, false, fmt.Errorf("consul: %w", err)
		}
		tc.InsecureSkipVerify, tc.VerifyConnection = true, roots.VerifyServer
	}
	tr.TLSClientConfig = tc // ForceAttemptHTTP2 (from DefaultTransport) keeps HTTP/2 on
	hc := &http.Client{Transport: tr}
	c, err = capi.NewClient(&capi.Config{Address: addr, Scheme: scheme, Token: cfg.Token, HttpClient: hc, TLSConfig: tlsConfig})
	if err != nil {
		return nil, nil, false, fmt.Errorf("consul: %w", err)
	}
	return c, tr, scheme == "https", nil
}

// Datacenters returns the datacenters to sync: those configured, or the agent's own,
// which it asks the agent for (retrying until ctx ends, as Consul may start after
// navarch). The first is the primary.
func (a *Adapter) Datacenters(ctx context.Context) ([]*Datacenter, error) {
	names := a.cfg.Datacenters
	if len(names) == 0 {
		dc, err := a.localDatacenter(ctx)
		if err != nil {
			return nil, err
		}
		names = []string{dc}
	}
	out := make([]*Datacenter, len(names))
	for i, n := range names {
		out[i] = &Datacenter{a: a, name: n, primary: i == 0}
	}
	return out, nil
}

func (a *Adapter) localDatacenter(ctx context.Context) (string, error) {
	backoff := backoffMin
	for {
		var self struct{ Config struct{ Datacenter string } }
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := a.client.Raw().Query("/v1/agent/self", &self, (&capi.QueryOptions{Token: a.token()}).WithContext(qctx))
		cancel()
		if err == nil {
			if dc := self.Config.Datacenter; validDatacenter(dc) {
				return dc, nil
			}
			err = fmt.Errorf("the agent reports no valid datacenter: %q", self.Config.Datacenter)
		}
		a.log.Warn("asking the Consul agent for its datacenter failed; set --consul-datacenters to skip this", "err", err, "retry_in", backoff)
		if !wait.Sleep(ctx, jitter(backoff)) {
			return "", ctx.Err()
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
