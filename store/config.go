package store

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// AnyLoopbackURL, as ClientURL and PeerURL of a one-member store, has etcd listen
// on free loopback ports that it picks itself, so that stores started at once (tests
// in parallel) never race for a port. Its members cannot be joined or dialled at
// that URL: it is for members nothing else reaches (the node's own client is
// in-process).
const AnyLoopbackURL = "http://127.0.0.1:0"

// Config configures the embedded etcd member of a node.
type Config struct {
	// Name is the member's name, unique in the cluster.
	Name string
	// DataDir holds etcd's write-ahead log and database. A member restarted on the same
	// directory rejoins as itself.
	DataDir string
	// ClientURL is the URL etcd serves clients on, e.g. "http://127.0.0.1:2379"
	// ("https://" when ClientTLS is set). The node itself talks to etcd in process;
	// this listener serves other members' clients and operators' etcdctl.
	ClientURL string
	// PeerURL is the URL etcd serves Raft traffic to other members on.
	PeerURL string
	// ListenClientAddr and ListenPeerAddr are the host:port etcd binds, when they
	// differ from the URLs' (which are what other members dial).
	ListenClientAddr, ListenPeerAddr string
	// InitialCluster lists the members a new cluster starts with, "n1=http://…,n2=…".
	// Empty means a one-member cluster of this node.
	InitialCluster string
	// Join is true when this member joins an existing cluster (it was added through
	// the member API first) rather than forming a new one.
	Join bool
	// ClusterToken distinguishes clusters formed from the same member URLs.
	ClusterToken string
	// TLS, when set, makes etcd require mutual TLS on both listeners.
	TLS *TLSFiles
	// ReadyTimeout bounds how long Open waits for the member to be ready.
	// A joining member may need a while to catch up; a new single member takes well
	// under a second.
	ReadyTimeout time.Duration
	// LogLevel is etcd's own log level (its logs are zap, not slog): debug, info, warn
	// or error. etcd is chatty at info; warn keeps what an operator needs.
	LogLevel string
	// UnsafeNoFsync skips fsync. For throwaway dev nodes and tests only: a crash may
	// lose acknowledged writes.
	UnsafeNoFsync bool
	// HeartbeatMs and ElectionMs are Raft's heartbeat interval and election timeout.
	// etcd's defaults (100, 1000) suit a cluster across hosts; on one host a shorter
	// election makes a fresh or restarted member ready sooner.
	HeartbeatMs, ElectionMs uint
	// MaxTxnOps bounds the operations in one transaction. Applying a large file, or an
	// adapter syncing a big catalog, writes many resources in one transaction.
	MaxTxnOps uint
	// MaxRequestBytes bounds one request (a transaction included).
	MaxRequestBytes uint
	// WatchProgressInterval is how often etcd tells an idle watch the store's
	// revision (a Batch with no events): what the API's watch sends as a BOOKMARK.
	// Well under the five minutes of history etcd keeps, so that a watcher of a quiet
	// kind can always resume from the last revision it was told.
	WatchProgressInterval time.Duration
	// ForceNewCluster starts the member in DataDir as the only member of a new
	// cluster, keeping its data: etcd's way back from a quorum lost for good.
	ForceNewCluster bool
}

// TLSFiles names the PEM files of a member's TLS identity.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// DefaultConfig returns the configuration of a one-member cluster; callers set DataDir
// and the URLs.
func DefaultConfig() Config {
	return Config{
		Name:            "default",
		ClusterToken:    "navarch",
		ReadyTimeout:    60 * time.Second,
		LogLevel:        "warn",
		HeartbeatMs:     100,
		ElectionMs:      1000,
		MaxTxnOps:       10000,
		MaxRequestBytes: 10 << 20,

		WatchProgressInterval: time.Minute,
	}
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("store: name must be set"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("store: data dir must be set"))
	}
	for _, u := range []struct{ name, value string }{{"client URL", c.ClientURL}, {"peer URL", c.PeerURL}} {
		p, err := url.Parse(u.value)
		if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			errs = append(errs, fmt.Errorf("store: %s must be http(s)://host:port, got %q", u.name, u.value))
		}
	}
	if c.ReadyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("store: ready timeout must be positive, got %s", c.ReadyTimeout))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("store: log level must be debug, info, warn or error, got %q", c.LogLevel))
	}
	if c.HeartbeatMs == 0 || c.ElectionMs < 5*c.HeartbeatMs {
		errs = append(errs, fmt.Errorf("store: election timeout (%d ms) must be at least 5 heartbeats (%d ms)", c.ElectionMs, c.HeartbeatMs))
	}
	if c.WatchProgressInterval <= 0 || c.WatchProgressInterval >= HistoryRetention {
		errs = append(errs, fmt.Errorf("store: watch progress interval must be positive and under the %s of history kept, got %s", HistoryRetention, c.WatchProgressInterval))
	}
	if c.MaxTxnOps == 0 {
		errs = append(errs, errors.New("store: max txn ops must be positive"))
	}
	return errors.Join(errs...)
}
