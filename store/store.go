package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// HistoryRetention is how long etcd keeps the revisions a watch can start from.
const HistoryRetention = 5 * time.Minute

// Store is a node's embedded etcd member and its typed view of the keys navarch uses.
type Store struct {
	cfg    Config
	log    *slog.Logger
	etcd   *embed.Etcd
	cli    *clientv3.Client
	member *memberState // shared with etcd's logger
	// leaving is set when the member removes itself, after which etcd stops.
	leaving atomic.Bool
	errc    chan error // Err's
}

// Open starts the embedded etcd member and waits until it is ready to serve.
func Open(cfg Config, log *slog.Logger) (s *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	member := new(memberState)
	ecfg, err := etcdConfig(cfg, newEtcdLogger(log, cfg.LogLevel, member))
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	defer func() {
		if err != nil {
			member.stopping.Store(true)
			e.Close()
		}
	}()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return nil, fmt.Errorf("starting etcd: %w", stopCause(e, member, cfg.DataDir, err))
	case <-e.Server.StopNotify():
		return nil, fmt.Errorf("starting etcd: %w", stoppedError(e, member, cfg.DataDir))
	case <-time.After(cfg.ReadyTimeout):
		return nil, fmt.Errorf("starting etcd: not ready after %s", cfg.ReadyTimeout)
	}
	s = &Store{cfg: cfg, log: log.With("component", "store"), etcd: e, cli: v3client.New(e.Server), member: member, errc: make(chan error, 1)}
	go s.watchStop()
	s.log.Info("etcd ready", "member", cfg.Name, "data_dir", cfg.DataDir, "client_url", cfg.ClientURL)
	return s, nil
}

func etcdConfig(cfg Config, logger *zap.Logger) (*embed.Config, error) {
	e := embed.NewConfig()
	e.Name = cfg.Name
	e.Dir = cfg.DataDir
	client, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, err
	}
	peer, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, err
	}
	e.AdvertiseClientUrls, e.AdvertisePeerUrls = []url.URL{*client}, []url.URL{*peer}
	e.ListenClientUrls, e.ListenPeerUrls = []url.URL{listenURL(*client, cfg.ListenClientAddr)}, []url.URL{listenURL(*peer, cfg.ListenPeerAddr)}
	e.InitialCluster = cfg.InitialCluster
	if e.InitialCluster == "" {
		e.InitialCluster = cfg.Name + "=" + cfg.PeerURL
	}
	e.InitialClusterToken = cfg.ClusterToken
	if cfg.Join {
		e.ClusterState = embed.ClusterStateFlagExisting
	}
	e.TickMs, e.ElectionMs = cfg.HeartbeatMs, cfg.ElectionMs
	e.MaxTxnOps = cfg.MaxTxnOps
	e.MaxRequestBytes = cfg.MaxRequestBytes
	e.UnsafeNoFsync = cfg.UnsafeNoFsync
	e.ForceNewCluster = cfg.ForceNewCluster
	// Revisions are kept for five minutes (as Kubernetes compacts its etcd): the
	// nodes' own views of their local member re-list when a watch breaks, and an API
	// watcher resumes from the last revision it was told, which a BOOKMARK brings up
	// to date at least every WatchProgressInterval. History is what fills the database: endpoint churn at 1,000
	// changes/s writes ~440 KB/s of it (measured with `navarch bench churn`), so an
	// hour of history would be ~1.6 GB, near etcd's 2 GiB quota, past which the
	// cluster refuses every write; five minutes is ~130 MB.
	e.AutoCompactionMode = embed.CompactorModePeriodic
	e.AutoCompactionRetention = HistoryRetention.String()
	e.WatchProgressNotifyInterval = cfg.WatchProgressInterval
	e.Logger = "zap"
	e.LogLevel = cfg.LogLevel
	e.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	if t := cfg.TLS; t != nil {
		for _, info := range []*transport.TLSInfo{&e.ClientTLSInfo, &e.PeerTLSInfo} {
			info.CertFile, info.KeyFile, info.TrustedCAFile = t.CertFile, t.KeyFile, t.CAFile
			info.ClientCertAuth = true
		}
	}
	return e, nil
}

// listenURL is u with its host replaced by addr, when addr is set.
func listenURL(u url.URL, addr string) url.URL {
	if addr != "" {
		u.Host = addr
	}
	return u
}

// Client returns the in-process etcd client. Packages that keep their own keys (the
// CA, leader election) use it; resources go through the typed methods.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Etcd returns the embedded member, for membership operations.
func (s *Store) Etcd() *embed.Etcd { return s.etcd }

// Err reports a fatal error of the embedded member, or that it stopped on its own
// (removed from the cluster, say); the node must stop when it fires. It does not
// fire for a stop of the node's making: Close, or the member removing itself.
func (s *Store) Err() <-chan error { return s.errc }

// watchStop passes etcd's errors and unexpected stop to Err.
func (s *Store) watchStop() {
	select {
	case err := <-s.etcd.Err():
		if !s.member.stopping.Load() { // Close's own listeners closing are no failure
			s.errc <- stopCause(s.etcd, s.member, s.cfg.DataDir, err)
		}
	case <-s.etcd.Server.StopNotify():
		if !s.member.stopping.Load() && !s.leaving.Load() {
			s.errc <- stoppedError(s.etcd, s.member, s.cfg.DataDir)
		}
	}
}

// stopCause is what an error of etcd's serving means: the member stopping on its own
// when etcd logged why ("server stopping" is then all err says), err otherwise.
func stopCause(e *embed.Etcd, member *memberState, dataDir string, err error) error {
	if member.serverError.Load() != nil {
		return stoppedError(e, member, dataDir)
	}
	return err
}

// stoppedError says why the member e stopped on its own.
func stoppedError(e *embed.Etcd, member *memberState, dataDir string) error {
	reason := "no reason given"
	if p := member.serverError.Load(); p != nil {
		reason = *p
	}
	if e.Server.Cluster().Member(e.Server.MemberID()) == nil || strings.Contains(reason, "permanently removed") {
		return fmt.Errorf("%w: remove its data dir (%s) and start the node again to join as a new member", ErrMemberRemoved, dataDir)
	}
	return fmt.Errorf("etcd stopped: %s", reason)
}

// Close stops the etcd client, then the member (which stops its listeners and Raft).
// Calls after the first do nothing.
func (s *Store) Close() error {
	if s.member.stopping.Swap(true) {
		return nil
	}
	err := s.cli.Close()
	s.etcd.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
