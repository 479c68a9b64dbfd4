package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/navarch/navarch/adapters/vm"
	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/version"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// Node is one control-plane node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
	tempDir string // removed on Close when the node made it

	secrets    clusterSecrets
	tlsFiles   *store.TLSFiles
	certExpiry time.Time // when tlsFiles' certificate ends
	reg        *prometheus.Registry
	metrics    *xds.Metrics
	analysis   *prometheus.GaugeVec // navarch_config_analysis_messages (analyze.go)
	backups    *backups             // scheduled backups (backup.go)

	xdsLis  net.Listener
	httpLis net.Listener
	tlsLis  net.Listener   // the TLS gRPC port: CSR API, xDS over TLS (secure.go)
	dnsConn net.PacketConn // nil without DNSAddr
	http    *http.Server
	admin   *adminToken  // what the API requires (rotate.go)
	reader  *adminToken  // the read-only token; its get is "" when there is none
	apiCert *servingCert // nil: the API is plain HTTP
	gossip  *membership  // nil for a node without gossip

	phase atomic.Pointer[string] // what the node is doing, for /readyz before it is up
	parts atomic.Pointer[parts]  // set once etcd is up
	ready chan struct{}          // closed when the view has loaded the store

	stop     chan struct{} // closed to stop Run (the node left the cluster)
	stopOnce sync.Once
	// watchesEnd is closed when the HTTP server shuts down, to end the API's watch
	// streams, which it would otherwise wait for.
	watchesEnd chan struct{}
}

// parts are what a node runs once its etcd member is up.
type parts struct {
	store  *store.Store
	view   *registry.View
	oidc   *xds.IssuerDiscovery // the view with JWT issuers' discovered key sets, for xds
	xds    *xds.Server
	grpc   *grpc.Server
	ca     *ca.Authority // the mesh CA (secure.go)
	secure *grpc.Server  // the TLS gRPC port's server (secure.go)
	vm     *vm.Registrar // registers the workloads whose proxies ask for it (vm.go)
}

// New prepares a node: it checks the configuration, creates the data dir and the
// node's certificate, and binds every listener, so that address conflicts show at
// once. Run starts it. On error everything acquired is released.
func New(cfg Config, log *slog.Logger) (n *Node, err error) {
	if cfg.Dev && cfg.ClusterSecret == "" {
		cfg.ClusterSecret = randomSecret()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n = &Node{cfg: cfg, log: log, started: time.Now(), ready: make(chan struct{}), stop: make(chan struct{}), watchesEnd: make(chan struct{})}
	n.setPhase("starting")
	// The error returns below set n to nil; release through a copy.
	acquired := n
	defer func() {
		if err != nil {
			acquired.Close()
		}
	}()
	if n.secrets, err = deriveSecrets(cfg.ClusterSecret); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.cfg.DataDir == "" {
		if n.tempDir, err = os.MkdirTemp("", "navarch-dev-"); err != nil {
			return nil, fmt.Errorf("creating a data dir: %w", err)
		}
		n.cfg.DataDir = n.tempDir
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data dir: %w", err)
	}
	if err := n.devKEK(); err != nil {
		return nil, err
	}
	if err := n.resolveEtcdAddrs(); err != nil {
		return nil, err
	}
	if n.tlsFiles, n.certExpiry, err = n.nodeCertificate(); err != nil {
		return nil, err
	}
	if n.xdsLis, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		return nil, fmt.Errorf("listening for xDS: %w", err)
	}
	if n.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listening for HTTP: %w", err)
	}
	if n.tlsLis, err = net.Listen("tcp", cfg.XDSTLSAddr); err != nil {
		return nil, fmt.Errorf("listening for gRPC over TLS (--xds-tls-addr): %w", err)
	}
	if cfg.DNSAddr != "" {
		if n.dnsConn, err = net.ListenPacket("udp", cfg.DNSAddr); err != nil {
			return nil, fmt.Errorf("listening for DNS: %w", err)
		}
	}
	// navarch's own metrics; /metrics adds the process-wide default registry, where
	// the embedded etcd member registers its own (etcd_server_has_leader,
	// etcd_disk_wal_fsync_duration_seconds, ...) and the Go runtime's and process's
	// collectors are.
	n.reg = prometheus.NewRegistry()
	n.metrics = xds.NewMetrics(n.reg)
	// As istiod's: the build, for dashboards that show which versions run.
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "istio_build", Help: "The navarch build, as tag (istiod's component name: pilot)."},
		[]string{"component", "tag"})
	build.WithLabelValues("pilot", version.String()).Set(1)
	n.reg.MustRegister(build)
	n.analysis = newAnalysisGauge(n.reg)
	if cfg.Backups.Dir != "" {
		n.backups = newBackups(n.reg)
	} else {
		n.backups = newBackups(nil)
	}
	n.reg.MustRegister(sourceCollector{n})
	// The certificate the node presents to its peers' etcd: it lasts as long as the
	// operator's cluster CA (--cluster-ca-cert) at most, and is issued again at start.
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "navarch_node_cert_expiry_timestamp_seconds",
		Help: "Unix time, in seconds, when the certificate this node presents to the other members' etcd expires; a restart issues a new one, within the cluster CA's validity."},
		func() float64 { return float64(n.certExpiry.Unix()) }))
	if left := time.Until(n.certExpiry); left < 30*24*time.Hour {
		log.Warn("the node's cluster certificate expires soon: move the nodes to a cluster CA that lasts longer (docs/cluster.md)",
			"expires", n.certExpiry.Format(time.RFC3339), "left", left.Round(time.Hour).String())
	}
	if n.admin, err = newAdminToken(cfg.AdminToken, cfg.AdminTokenFile, "admin token", log); err != nil {
		return nil, err
	}
	if n.reader, err = newAdminToken("", cfg.ReadTokenFile, "read-only token", log); err != nil {
		return nil, err
	}
	n.http = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
	n.http.RegisterOnShutdown(func() { close(n.watchesEnd) })
	if cfg.HTTPTLSCert != "" {
		if n.apiCert, err = newServingCert(cfg.HTTPTLSCert, cfg.HTTPTLSKey, log); err != nil {
			return nil, err
		}
		n.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: n.apiCert.get}
	}
	if cfg.GossipAddr != "" {
		meta := nodeMeta{XDS: n.advertised(n.XDSAddr()), XDSTLS: n.advertised(n.tlsLis.Addr().String()), HTTP: n.advertised(n.HTTPAddr()),
			EtcdPeer: n.peerURL(), EtcdClient: n.clientURL(), State: stateForming, Version: version.String(),
			CertExpiry: n.certExpiry.Unix()}
		if cfg.Backups.Dir != "" {
			meta.BackupInterval = int64(cfg.Backups.Interval / time.Second)
		}
		if n.dnsConn != nil {
			meta.DNS = n.advertised(n.dnsConn.LocalAddr().String())
		}
		if cfg.BootstrapExpect == 0 {
			meta.State = stateJoining
		}
		if n.gossip, err = newMembership(cfg.Name, cfg.GossipAddr, cfg.GossipAdvertise, n.secrets.gossipKeys, meta, log); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (n *Node) setPhase(p string) { n.phase.Store(&p) }

// nodeCertificate issues this node's etcd certificate, signed by the cluster CA, and
// says when it expires.
func (n *Node) nodeCertificate() (*store.TLSFiles, time.Time, error) {
	dir := filepath.Join(n.cfg.DataDir, "tls")
	if n.cfg.ClusterCACert != "" {
		ca, also, err := loadCA(n.cfg.ClusterCACert, n.cfg.ClusterCAKey)
		if err != nil {
			return nil, time.Time{}, err
		}
		return ca.issueNodeCert(dir, n.cfg.Name, n.advertiseHost(), also...)
	}
	var cas []*clusterCA // the secret in use first
	for _, seed := range n.secrets.caSeeds {
		ca, err := derivedCA(seed)
		if err != nil {
			return nil, time.Time{}, err
		}
		cas = append(cas, ca)
	}
	return cas[0].issueNodeCert(dir, n.cfg.Name, n.advertiseHost(), cas[1:]...)
}

// xdsServerOptions tune the gRPC server for many long-lived, mostly idle streams:
//   - a 1 KiB read buffer per connection, which holds a proxy's ACK with the window
//     update and ping that come with it (larger requests, such as an Envoy's
//     subscription to many names, take more reads): 3 KiB less per connection than
//     4 KiB, 46.9 -> 43.9-44.4 KB per proxy, convergence and failover as before
//     (bench/RESULTS.md);
//   - a 4 KiB write buffer, which grpc-go takes from a shared pool while it writes
//     and gives back after each flush, so an idle connection holds none. Without
//     one, grpc-go writes a small response in three writes (frame header, gRPC
//     message prefix, message) where the buffer makes one: in a push to 10,000
//     proxies that halved the nodes' write calls and took a fifth off their CPU
//     (bench/RESULTS.md). A mass push has thousands of writes in flight at once
//     (the writer yields before flushing a write under 1 KB, holding its buffer), so
//     the pool runs dry and each allocates one: that is why the buffer is small
//     (8 KiB buffers made 20 of the 50 MB a node allocated in a push to 3,333
//     proxies; 32 KiB ones, GC assists took a fifth of the nodes' CPU);
//   - fixed receive windows: proxies send small requests, and grpc-go's
//     bandwidth-delay estimation would answer each of them with a PING (and read its
//     ACK), tripling the frames of every ACK a proxy sends;
//   - keepalive so dead proxies are noticed, and a generous message size for large
//     configurations.
//
// Per-connection buffers are most of what an idle proxy costs a node.
func xdsServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ReadBufferSize(1 << 10),
		grpc.WriteBufferSize(4 << 10),
		grpc.StaticStreamWindowSize(65535),
		grpc.StaticConnWindowSize(65535),
		grpc.MaxRecvMsgSize(16 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// XDSAddr and HTTPAddr return the bound addresses (useful with port 0).
func (n *Node) XDSAddr() string  { return n.xdsLis.Addr().String() }
func (n *Node) HTTPAddr() string { return n.httpLis.Addr().String() }

// Run starts the node and serves until ctx ends or a part fails, then shuts down.
// The HTTP port answers at once (/readyz says what the node is waiting for); xDS is
// served once the node's etcd member is up and its view loaded.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if n.apiCert != nil {
			err = n.http.ServeTLS(n.httpLis, "", "") // the certificate comes from TLSConfig
		} else {
			err = n.http.Serve(n.httpLis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		defer n.stopServing()
		p, err := n.start(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		return n.serve(gctx, g, p)
	})
	return g.Wait()
}

// serve runs the parts of a started node until ctx ends. xDS is served only once the
// view has loaded the store: a proxy that connects earlier would be sent an empty
// configuration, which for listeners and clusters means "deleted".
func (n *Node) serve(ctx context.Context, g *errgroup.Group, p *parts) error {
	g.Go(func() error { return p.view.Run(ctx) })
	g.Go(func() error { return p.oidc.Run(ctx) })
	g.Go(func() error { return p.xds.Run(ctx) })
	g.Go(func() error { return p.vm.Run(ctx) })
	if err := n.runAdapters(ctx, g, p); err != nil {
		return err
	}
	select {
	case <-p.view.Ready():
	case err := <-p.store.Err():
		return fmt.Errorf("etcd failed: %w", err)
	case <-ctx.Done():
		return nil
	}
	if err := n.checkLayout(ctx, p); err != nil {
		return err
	}
	if err := n.serveSecure(ctx, g, p); err != nil || ctx.Err() != nil {
		return err
	}
	conns := trackConns(n.xdsLis)
	g.Go(func() error {
		if err := p.grpc.Serve(conns); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving xDS: %w", err)
		}
		return nil
	})
	if n.gossip != nil {
		g.Go(func() error { n.advertiseLoad(ctx, p); return nil })
		g.Go(func() error { n.rebalance(ctx, p, conns); return nil })
	}
	if n.dnsConn != nil {
		g.Go(func() error { return n.serveDNS(ctx, n.dnsConn) })
	}
	if !n.cfg.Dev {
		g.Go(func() error { n.defragLoop(ctx, p.store); return nil })
	}
	g.Go(func() error { n.analysisLoop(ctx, p.view); return nil })
	if n.cfg.Backups.Dir != "" {
		g.Go(func() error { n.backupLoop(ctx, p); return nil })
	}
	close(n.ready)
	n.setPhase("ready")
	n.log.Info("navarch ready", "node", n.cfg.Name, "xds", n.XDSAddr(), "http", n.HTTPAddr(),
		"startup", time.Since(n.started).Round(time.Millisecond).String())
	if host, _, _ := net.SplitHostPort(n.HTTPAddr()); n.cfg.HTTPTLSCert == "" && !client.IsLoopback(host) {
		n.log.Warn("the API is served over plain HTTP where other hosts reach it: the admin token and configuration cross the network in clear; give --http-tls-cert and --http-tls-key",
			"http", n.HTTPAddr())
	}
	select {
	case err := <-p.store.Err():
		return fmt.Errorf("etcd failed: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// stopServing stops the API and xDS servers (proxies reconnect elsewhere) and, when
// configured to, leaves the cluster.
func (n *Node) stopServing() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.http.Shutdown(ctx)
	if n.dnsConn != nil {
		n.dnsConn.Close()
	}
	if p := n.parts.Load(); p != nil {
		p.grpc.Stop()
		p.secure.Stop()
		if n.cfg.LeaveOnTerminate {
			n.leaveCluster(ctx, p)
		}
	}
	if n.gossip != nil && !n.cfg.LeaveOnTerminate {
		n.gossip.shutdown()
	}
}

// Close releases what New and Run acquired: listeners, gossip, etcd, the temporary
// data dir. Call it after Run returned (or instead of Run).
func (n *Node) Close() error {
	for _, l := range []net.Listener{n.xdsLis, n.httpLis, n.tlsLis} {
		if l != nil {
			l.Close()
		}
	}
	if n.dnsConn != nil {
		n.dnsConn.Close()
	}
	if n.gossip != nil {
		n.gossip.shutdown()
	}
	var err error
	if p := n.parts.Load(); p != nil {
		err = p.store.Close()
	}
	if n.tempDir != "" {
		if rerr := os.RemoveAll(n.tempDir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// checkLayout refuses to serve data of a layout newer than this build reads
// (store.Layout): a node rolled back to an older build after a newer one changed
// the layout would misread it.
func (n *Node) checkLayout(ctx context.Context, p *parts) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rec, err := p.store.CheckLayout(cctx, version.String())
	switch {
	case errors.Is(err, store.ErrNewerLayout):
		return err
	case err != nil:
		n.log.Warn("recording the data's layout failed; the next start records it", "layout", store.Layout, "err", err)
	default:
		n.log.Debug("data layout", "layout", rec.Layout, "written_by", rec.WrittenBy)
	}
	return nil
}
