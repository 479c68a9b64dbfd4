package node

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// Config configures a node.
type Config struct {
	// Name is the node's name, unique in its cluster. It names its etcd member.
	Name string
	// DataDir holds the node's state (etcd). Empty with Dev: a fresh temporary
	// directory, removed when the node stops.
	DataDir string
	// Dev runs a throwaway single node: temporary data dir, fsync off, and the HTTP
	// API open without credentials when AdminToken is empty. Never for production.
	Dev bool
	// XDSAddr is where plaintext xDS (ADS over gRPC) is served, 127.0.0.1:15010 as
	// Istio's istiod.
	XDSAddr string
	// XDSTLSAddr is where the node serves gRPC over TLS, 127.0.0.1:15012 as istiod:
	// the CSR API (Istio's IstioCertificateService) and xDS for proxies that
	// authenticate. Its serving certificate is signed by the mesh CA.
	XDSTLSAddr string
	// HTTPAddr serves the API, /metrics, /healthz, /readyz and /debug/, 127.0.0.1:15014
	// as istiod's monitoring port.
	HTTPAddr string
	// HTTPTLSCert and HTTPTLSKey, when set, make HTTPAddr serve HTTPS with this
	// certificate and key (PEM files), read again when they change, so that a
	// renewed certificate is served without a restart. The admin token, configuration and a CA key
	// being imported cross that connection: give them whenever HTTPAddr is reachable
	// from other hosts.
	HTTPTLSCert, HTTPTLSKey string
	// EtcdClientAddr and EtcdPeerAddr are where the embedded etcd member listens for
	// clients and for peers. Empty picks free loopback ports (fine for one node).
	EtcdClientAddr, EtcdPeerAddr string
	// Domain is the DNS suffix short host names resolve under.
	Domain string
	// AdminToken, when set, is required as a bearer token on every API request that
	// reads or changes configuration. Without it only Dev nodes serve the API.
	AdminToken string
	// AdminTokenFile, instead of AdminToken, is a file holding the token
	// (--admin-token-file), read again when it changes: a rotated token is required
	// from the next request on, without a restart.
	AdminTokenFile string
	// ReadTokenFile is a file holding a second token, for reading only
	// (--read-token-file): what monitoring and dashboards are given. It reads
	// configuration, the registry, members, proxies and analysis; it cannot write,
	// download a snapshot or profile the node. Read again when it changes.
	ReadTokenFile string
	// GossipAddr is where this node gossips with the others (memberlist, TCP and UDP).
	// Empty: a single node that forms its own cluster and joins none.
	GossipAddr string
	// GossipAdvertise is the address the others reach GossipAddr at, when it differs
	// (GossipAddr on 0.0.0.0, NAT). Its host is also the host the node advertises for
	// etcd and puts in its certificate.
	GossipAdvertise string
	// Join lists gossip addresses of nodes to join; any one live member is enough.
	Join []string
	// BootstrapExpect forms a new cluster once this many nodes (this one included) see
	// each other. Zero: join a running cluster (or restart as the member the data dir
	// holds).
	BootstrapExpect int
	// ClusterSecret is the secret every node of the cluster is given. The gossip key
	// and, unless ClusterCACert is set, the CA of node certificates derive from it.
	// A --dev node makes up one. While the secret is rotated it holds several, one
	// a line: the first in use, the others accepted (docs/cluster.md).
	ClusterSecret string
	// ClusterCACert and ClusterCAKey name an operator's CA (PEM) to sign node
	// certificates with, instead of the one derived from ClusterSecret.
	ClusterCACert, ClusterCAKey string
	// ForceNewCluster starts the member of the data dir as the only member of a new
	// cluster with everything it holds, for a cluster that lost its quorum for good;
	// the other nodes then join it with empty data dirs. It takes effect once per data
	// dir (see forceNewCluster), and never while gossip sees another running node.
	ForceNewCluster bool
	// RestoreFrom names a snapshot (`navarch snapshot save`) to start from when the
	// data dir holds no member: the node starts a new cluster of one with everything
	// the snapshot held, and the other nodes join it with empty data dirs. When the
	// data dir holds a member it is ignored. Like ForceNewCluster, it is refused while
	// gossip sees another running node.
	RestoreFrom string
	// LeaveOnTerminate makes a node that is told to stop leave the cluster (remove its
	// etcd member) first. Off: a stopped node stays a member and rejoins when restarted
	// with its data dir.
	LeaveOnTerminate bool
	// Backups saves snapshots of the node's etcd member on a schedule, off without
	// a Dir (backup.go).
	Backups BackupConfig
	// DNSAddr, when set, is where the node answers DNS queries for XDSName with the
	// IPs of every live node's xDS listener (UDP). `navarch bootstrap` then points
	// grpc-go clients at that name, so that they fail over between nodes.
	DNSAddr string
	// XDSName is the DNS name DNSAddr answers for.
	XDSName string
	// RebalanceInterval is how often a node checks whether it holds far more proxies
	// than its share and asks the excess to reconnect elsewhere; 0 turns it off.
	RebalanceInterval time.Duration
	// XDS tunes the xDS server.
	XDS xds.Config
	// CA configures the mesh's certificate authority (trust domain, certificate
	// lifetimes).
	CA ca.Config
	// CAKEK is the key-encryption key the CA's signing key is stored under in etcd;
	// every node of a cluster must be given the same one (--ca-kek-file). A --dev
	// node makes one up and keeps it in its data dir.
	CAKEK ca.KEK
	// Consul brings a Consul catalog into the registry (off without an address).
	Consul consul.Config
	// Kubernetes brings a Kubernetes cluster's Services and pods into the registry
	// (off without a kubeconfig), and holds what every followed cluster shares
	// (token audiences, batching). Its Domain is the node's.
	Kubernetes kubernetes.Config
	// KubernetesClusters are more clusters to follow (--kube-cluster id=kubeconfig),
	// each with the settings of Kubernetes but its own ID, kubeconfig and network.
	KubernetesClusters []KubernetesCluster
	// AutoRegistrationGrace is how long a workload registered by its proxy
	// (AUTO_REGISTER_GROUP) stays in the registry after its proxy disconnected, or
	// after the node it was connected to died, 10 s as Istio's
	// PILOT_WORKLOAD_ENTRY_GRACE_PERIOD: a proxy back within it keeps its entry.
	AutoRegistrationGrace time.Duration
	// Store tunes the embedded etcd member; Name, DataDir and URLs are filled in from
	// the fields above.
	Store store.Config
}

// BackupConfig schedules backups: every Interval the node saves a snapshot of its
// etcd member into Dir, as `navarch snapshot save` does, and keeps the newest Keep
// of its own there.
type BackupConfig struct {
	Dir      string
	Interval time.Duration
	Keep     int
}

// KubernetesCluster is one more Kubernetes cluster a node follows.
type KubernetesCluster struct {
	ID, Kubeconfig, Network string
}

// kubernetesClusters returns the configuration of every cluster the node follows:
// Kubernetes (when it names a kubeconfig), then each of KubernetesClusters.
func (c *Config) kubernetesClusters() []kubernetes.Config {
	var out []kubernetes.Config
	base := c.Kubernetes
	base.Domain = c.Domain
	if base.Enabled() {
		out = append(out, base)
	}
	for _, kc := range c.KubernetesClusters {
		cfg := base
		cfg.ClusterID, cfg.Kubeconfig, cfg.Network = kc.ID, kc.Kubeconfig, kc.Network
		cfg.IstioConfig = false // configuration comes from one cluster: the first
		out = append(out, cfg)
	}
	return out
}

// configSpaces are where the node reads the configuration a workload names (its
// WorkloadGroup), in order: what navarch apply wrote, then the Istio configuration
// of the Kubernetes cluster it mirrors, if it does.
func (c *Config) configSpaces() []store.Space {
	spaces := []store.Space{store.ConfigSpace}
	if kcs := c.kubernetesClusters(); len(kcs) > 0 && kcs[0].IstioConfig {
		spaces = append(spaces, store.RegistrySpace(kubernetes.ConfigSourceName(kcs[0].ClusterID)))
	}
	return spaces
}

// DefaultConfig returns the configuration of `navarch server` without flags.
func DefaultConfig() Config {
	return Config{
		Name:       "navarch",
		XDSAddr:    "127.0.0.1:15010",
		XDSTLSAddr: "127.0.0.1:15012",
		HTTPAddr:   "127.0.0.1:15014",
		Domain:     "cluster.local",
		XDSName:    "xds.navarch.local",
		// Load spreading: often enough that a restarted node takes its share back
		// within seconds, rarely enough to be free.
		RebalanceInterval:     10 * time.Second,
		AutoRegistrationGrace: 10 * time.Second,
		Backups:               BackupConfig{Interval: time.Hour, Keep: 24},
		XDS:                   xds.DefaultConfig(),
		Consul:                consul.DefaultConfig(),
		Kubernetes:            kubernetes.DefaultConfig(),
		CA:                    ca.DefaultConfig(),
		Store:                 store.DefaultConfig(),
	}
}

// validNodeName reports whether name may name a node: it names the node's etcd
// member, gossip member and backup files.
func validNodeName(name string) bool {
	if name == "" || len(name) > 63 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	var errs []error
	if !validNodeName(c.Name) {
		errs = append(errs, fmt.Errorf("node: --name must be 1 to 63 letters, digits, '-', '_' or '.', got %q", c.Name))
	}
	if c.DataDir == "" && !c.Dev {
		errs = append(errs, errors.New("node: --data-dir must be set (or run with --dev)"))
	}
	for _, a := range []struct{ name, addr string }{
		{"xds address", c.XDSAddr}, {"http address", c.HTTPAddr}, {"xds tls address", c.XDSTLSAddr},
		{"etcd client address", c.EtcdClientAddr}, {"etcd peer address", c.EtcdPeerAddr},
		{"gossip address", c.GossipAddr}, {"gossip advertise address", c.GossipAdvertise},
		{"dns address", c.DNSAddr},
	} {
		if a.addr == "" && a.name != "xds address" && a.name != "http address" && a.name != "xds tls address" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("node: %s must be host:port, got %q", a.name, a.addr))
		}
	}
	if c.Domain == "" {
		errs = append(errs, errors.New("node: domain must be set"))
	}
	if c.AutoRegistrationGrace < time.Second {
		errs = append(errs, fmt.Errorf("node: --auto-registration-grace must be at least 1s (etcd leases count whole seconds), got %s", c.AutoRegistrationGrace))
	}
	if c.AdminToken == "" && c.AdminTokenFile == "" && !c.Dev {
		errs = append(errs, errors.New("node: an admin token is required (--admin-token-file) unless --dev"))
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("node: give the admin token or a file holding it, not both"))
	}
	if c.ReadTokenFile != "" && c.AdminToken == "" && c.AdminTokenFile == "" {
		errs = append(errs, errors.New("node: --read-token-file needs an admin token (--admin-token-file): without one the API is open"))
	}
	if c.ClusterSecret == "" && !c.Dev {
		errs = append(errs, errors.New("node: a cluster secret is required (--cluster-secret-file) unless --dev"))
	}
	if c.ForceNewCluster && c.RestoreFrom != "" {
		errs = append(errs, errors.New("node: --force-new-cluster starts from the data dir, --restore-from from a snapshot: give one"))
	}
	if c.GossipAddr == "" && (len(c.Join) > 0 || c.BootstrapExpect > 1) {
		errs = append(errs, errors.New("node: --join and --bootstrap-expect need --gossip-addr"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("node: --bootstrap-expect must not be negative, got %d", c.BootstrapExpect))
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		errs = append(errs, errors.New("node: HTTPS for the API needs both --http-tls-cert and --http-tls-key"))
	}
	if (c.ClusterCACert == "") != (c.ClusterCAKey == "") {
		errs = append(errs, errors.New("node: the cluster CA needs both a certificate and a key"))
	}
	if !c.CAKEK.Valid() && !c.Dev {
		errs = append(errs, errors.New("node: a CA key-encryption key is required (--ca-kek-file: 32 random bytes, e.g. head -c 32 /dev/urandom | xxd -p -c 64) unless --dev"))
	}
	if c.Backups.Dir != "" && c.Backups.Interval < time.Second {
		errs = append(errs, fmt.Errorf("node: --backup-interval must be at least 1s, got %s", c.Backups.Interval))
	}
	if c.Backups.Dir != "" && c.Backups.Keep < 1 {
		errs = append(errs, fmt.Errorf("node: --backup-keep must be at least 1, got %d", c.Backups.Keep))
	}
	if err := c.CA.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Consul.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, kube := range c.kubernetesClusters() {
		if err := kube.Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[kube.ClusterID] {
			errs = append(errs, fmt.Errorf("node: Kubernetes cluster id %q given twice", kube.ClusterID))
		}
		seen[kube.ClusterID] = true
	}
	return errors.Join(errs...)
}
