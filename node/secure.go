package node

import (
	"context"
	"errors"
	"fmt"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// The node's TLS gRPC port (XDSTLSAddr, 15012 as istiod) carries what must not go in
// the clear: the CSR API, through which workloads get and renew certificates with a
// join token or their current certificate, and xDS for proxies that authenticate (and
// get secrets). Its serving certificate is signed by the mesh CA, so a workload that
// trusts the mesh's root trusts every node; client certificates are optional and
// verified against the trust bundle when given.

// secureParts creates the node's certificate authority and the gRPC server of its
// TLS port, with its services registered. Nothing runs yet: serveSecure starts them.
func (n *Node) secureParts(p *parts) error {
	a, err := ca.New(n.cfg.CA, p.store.Client(), n.cfg.CAKEK, store.Layered{St: p.store, Spaces: n.cfg.configSpaces()}, n.log)
	if err != nil {
		return err
	}
	p.ca = a
	creds := credentials.NewTLS(a.ServerTLS(n.servingHosts()))
	p.secure = grpc.NewServer(append(xdsServerOptions(), grpc.Creds(creds))...)
	n.secureServices(p.secure, p)
	return nil
}

// secureServices registers the services of the TLS port on s: the CSR API and ADS.
// Streams on this port are authenticated by the CA (client certificate or join
// token); such a proxy gets only its own identity's configuration and secrets (SDS).
// It runs before the xDS server does.
func (n *Node) secureServices(s *grpc.Server, p *parts) {
	ca.NewCertificateService(p.ca, ca.NewMetrics(n.reg), n.log).Register(s)
	p.ca.RegisterExpiryMetrics(n.reg)
	sds := newCAForXDS(p.ca, 0)
	p.xds.SetSecurity(sds, sds)
	discovery.RegisterAggregatedDiscoveryServiceServer(s, p.xds)
}

// serveSecure runs the CA and, once it has loaded the cluster's CA (creating it if
// this node is the first), serves the TLS port. It returns nil when ctx ends first.
func (n *Node) serveSecure(ctx context.Context, g *errgroup.Group, p *parts) error {
	g.Go(func() error { return p.ca.Run(ctx) })
	select {
	case <-p.ca.Ready():
	case err := <-p.store.Err():
		return fmt.Errorf("etcd failed: %w", err)
	case <-ctx.Done():
		return nil
	}
	g.Go(func() error {
		// A new trust bundle or a changed gateway credential goes to the proxies now
		// rather than at the next periodic refresh.
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-p.ca.Changed():
				p.xds.RefreshSecrets()
			}
		}
	})
	g.Go(func() error {
		if err := p.secure.Serve(n.tlsLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving gRPC over TLS: %w", err)
		}
		return nil
	})
	return nil
}

// TLSAddr returns the bound address of the TLS gRPC port.
func (n *Node) TLSAddr() string { return n.tlsLis.Addr().String() }

// servingHosts are the names and addresses the node's serving certificate is for,
// besides those every node's has (navarch, istiod.istio-system.svc, localhost,
// 127.0.0.1): the host others reach it at, the host it binds, its name and the xDS
// DNS name.
func (n *Node) servingHosts() []string {
	hosts := []string{n.advertiseHost(), n.cfg.Name}
	if h, _, err := net.SplitHostPort(n.cfg.XDSTLSAddr); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
		hosts = append(hosts, h)
	}
	if n.cfg.XDSName != "" {
		hosts = append(hosts, n.cfg.XDSName)
	}
	return hosts
}

// devKEK gives a --dev node without --ca-kek-file a key-encryption key: the one kept
// in its data dir (ca-kek), made up at its first start, so that a dev node restarted
// on the same data dir can still open its CA.
func (n *Node) devKEK() error {
	if n.cfg.CAKEK.Valid() || !n.cfg.Dev {
		return nil
	}
	path := filepath.Join(n.cfg.DataDir, "ca-kek")
	if b, err := os.ReadFile(path); err == nil {
		k, err := ca.ParseKEK(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		n.cfg.CAKEK = k
		return nil
	}
	k := ca.GenerateKEK()
	if err := os.WriteFile(path, []byte(k.Hex()+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the dev CA key-encryption key: %w", err)
	}
	n.cfg.CAKEK = k
	return nil
}

// caForXDS adapts the CA to what the xDS server needs to serve proxies over TLS:
// authentication, and workload certificates for SDS, cached per identity and renewed
// at half their lifetime or when the signer changes.
type caForXDS struct {
	a   *ca.Authority
	ttl time.Duration // 0: the CA's default

	mu    sync.Mutex
	certs map[xds.Identity]*workloadSecret
}

type workloadSecret struct {
	chain, key []byte
	expires    time.Time
	renewAt    time.Time
	bundle     string // the trust bundle it was issued under
}

var (
	_ xds.Authenticator = (*caForXDS)(nil)
	_ xds.SecretSource  = (*caForXDS)(nil)
)

func newCAForXDS(a *ca.Authority, ttl time.Duration) *caForXDS {
	return &caForXDS{a: a, ttl: ttl, certs: map[xds.Identity]*workloadSecret{}}
}

// Authenticate returns who the caller of a stream proved to be.
func (c *caForXDS) Authenticate(ctx context.Context) (xds.Identity, error) {
	id, err := c.a.Authenticate(ctx)
	if err != nil {
		return xds.Identity{}, err
	}
	return xds.Identity{Namespace: id.Namespace, ServiceAccount: id.ServiceAccount}, nil
}

// WorkloadSecret returns a certificate and key for id, issuing one when there is
// none, it is past half its lifetime, or the trust bundle changed.
func (c *caForXDS) WorkloadSecret(_ context.Context, id xds.Identity) ([]byte, []byte, time.Time, error) {
	bundle := c.a.TrustBundlePEM()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.certs[id]; s != nil && time.Now().Before(s.renewAt) && s.bundle == bundle {
		return s.chain, s.key, s.expires, nil
	}
	now := time.Now()
	chain, key, notAfter, err := c.a.IssueKeyPair(ca.Identity{TrustDomain: c.a.TrustDomain(), Namespace: id.Namespace, ServiceAccount: id.ServiceAccount}, c.ttl)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var pem []byte
	for _, p := range chain[:len(chain)-1] { // leaf and intermediates; the root goes in ROOTCA
		pem = append(pem, p...)
	}
	s := &workloadSecret{chain: pem, key: key, expires: notAfter, renewAt: now.Add(notAfter.Sub(now) / 2), bundle: bundle}
	c.certs[id] = s
	return s.chain, s.key, s.expires, nil
}

// TrustBundlePEM returns every root a proxy must trust.
func (c *caForXDS) TrustBundlePEM() []byte { return []byte(c.a.TrustBundlePEM()) }

// Credential returns a gateway credential with its key.
func (c *caForXDS) Credential(ns, name string) ([]byte, []byte, []byte, bool) {
	cred, ok := c.a.Credential(ns, name)
	return cred.ChainPEM, cred.KeyPEM, cred.CAPEM, ok
}
