package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/navarch/navarch/node"
)

// serverFlags binds the flags of `navarch server` to a node configuration, whose
// values are the defaults.
func serverFlags(fs *flag.FlagSet, cfg *node.Config, secretFile *string) (tokenFile, logLevel, logFormat *string) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name, unique in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the node's state (etcd); with --dev, empty means a temporary one")
	fs.BoolVar(&cfg.Dev, "dev", cfg.Dev, "run a throwaway single dev node: temporary data, no fsync, API open on loopback without a token")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", cfg.XDSAddr, "address to serve plaintext xDS (ADS) on")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address to serve the API, /metrics, /healthz, /readyz and /debug/ on")
	fs.StringVar(&cfg.HTTPTLSCert, "http-tls-cert", cfg.HTTPTLSCert, "certificate (PEM) to serve --http-addr over HTTPS with; needed whenever it is reachable from other hosts")
	fs.StringVar(&cfg.HTTPTLSKey, "http-tls-key", cfg.HTTPTLSKey, "key of --http-tls-cert")
	fs.StringVar(&cfg.EtcdClientAddr, "etcd-client-addr", cfg.EtcdClientAddr, "address of the embedded etcd's client listener (empty: a free loopback port)")
	fs.StringVar(&cfg.EtcdPeerAddr, "etcd-peer-addr", cfg.EtcdPeerAddr, "address of the embedded etcd's peer listener (empty: a free loopback port)")
	fs.DurationVar(&cfg.AutoRegistrationGrace, "auto-registration-grace", cfg.AutoRegistrationGrace, "how long a workload registered by its proxy (AUTO_REGISTER_GROUP) outlives its connection or its node")
	fs.StringVar(&cfg.DNSAddr, "dns-addr", cfg.DNSAddr, "address (UDP) to answer DNS for --xds-name on, with every live node's xDS IP (lets grpc-go clients fail over)")
	fs.StringVar(&cfg.XDSName, "xds-name", cfg.XDSName, "DNS name --dns-addr answers for")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "DNS suffix short host names resolve under")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "address to gossip with other nodes on (empty: a single node)")
	fs.StringVar(&cfg.GossipAdvertise, "gossip-advertise", cfg.GossipAdvertise, "address other nodes reach --gossip-addr at, if different")
	fs.Var(listFlag(&cfg.Join, true), "join", "gossip address of a node to join (repeatable, or comma-separated)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "form a new cluster once this many nodes see each other")
	fs.StringVar(&cfg.ClusterCACert, "cluster-ca-cert", cfg.ClusterCACert, "CA certificate (PEM) to sign node certificates with, instead of the one derived from the cluster secret; CAs after it in the file are trusted as well (moving to another CA: docs/cluster.md)")
	fs.StringVar(&cfg.ClusterCAKey, "cluster-ca-key", cfg.ClusterCAKey, "key of --cluster-ca-cert")
	fs.DurationVar(&cfg.RebalanceInterval, "rebalance-interval", cfg.RebalanceInterval, "how often a node asks proxies above its share to reconnect elsewhere (0: never)")
	fs.BoolVar(&cfg.ForceNewCluster, "force-new-cluster", cfg.ForceNewCluster, "start this node's member, with everything its data dir holds, as the only member of a new cluster (a cluster that lost its quorum for good; once per data dir)")
	fs.StringVar(&cfg.RestoreFrom, "restore-from", cfg.RestoreFrom, "snapshot (navarch snapshot save) to start a new cluster of this node from, when its data dir holds no member")
	fs.StringVar(&cfg.Backups.Dir, "backup-dir", cfg.Backups.Dir, "save a snapshot of everything the cluster keeps here every --backup-interval (navarch-<name>-<time>.db; restore with --restore-from)")
	fs.DurationVar(&cfg.Backups.Interval, "backup-interval", cfg.Backups.Interval, "how often to save a backup into --backup-dir")
	fs.IntVar(&cfg.Backups.Keep, "backup-keep", cfg.Backups.Keep, "how many of this node's backups to keep in --backup-dir, the newest")
	fs.BoolVar(&cfg.LeaveOnTerminate, "leave-on-terminate", cfg.LeaveOnTerminate, "leave the cluster (remove this node's etcd member) when told to stop")
	fs.StringVar(secretFile, "cluster-secret-file", "", "file holding the secret every node of the cluster is given (gossip key, node CA)")
	tokenFile = fs.String("admin-token-file", "", "file holding the token the API requires (Authorization: Bearer)")
	fs.StringVar(&cfg.ReadTokenFile, "read-token-file", cfg.ReadTokenFile, "file holding a read-only token (monitoring, dashboards): reads configuration, the registry, members, proxies and analysis; cannot write, take snapshots or profile")
	logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat = fs.String("log-format", "text", "log format: text or json")
	return tokenFile, logLevel, logFormat
}

// serverFlagSet binds every flag of `navarch server` to cfg, or to the values it
// returns for the flags that are not fields of node.Config.
func serverFlagSet(cfg *node.Config, stderr io.Writer) (fs *flag.FlagSet, v *serverFlagValues) {
	fs = flag.NewFlagSet("navarch server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	v = &serverFlagValues{}
	v.tokenFile, v.logLevel, v.logFormat = serverFlags(fs, cfg, &v.secretFile)
	consulFlags(fs, &cfg.Consul)
	kubernetesFlags(fs, &cfg.Kubernetes, &cfg.KubernetesClusters)
	v.kekFile = caFlags(fs, cfg)
	v.configFile = fs.String("config", "", "YAML file of flag values, keyed by flag name (consul-address: 127.0.0.1:8500); flags on the command line win")
	return fs, v
}

// serverFlagValues are the flags of `navarch server` that are not node.Config's.
type serverFlagValues struct {
	tokenFile, logLevel, logFormat, kekFile, configFile *string
	secretFile                                          string
}

func runServer(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg := node.DefaultConfig()
	fs, v := serverFlagSet(&cfg, stderr)
	tokenFile, logLevel, logFormat, kekFile, configFile := v.tokenFile, v.logLevel, v.logFormat, v.kekFile, v.configFile
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyConfigFile(fs, *configFile, nil); err != nil {
		return err
	}
	if err := readKEK(*kekFile, &cfg); err != nil {
		return err
	}
	if secretFile := v.secretFile; secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("reading the cluster secret: %w", err)
		}
		cfg.ClusterSecret = strings.TrimSpace(string(b))
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg.AdminTokenFile = *tokenFile
	if cfg.Dev && cfg.AdminTokenFile == "" {
		log.Warn("dev mode: the API accepts requests without credentials; bind it to loopback only")
	}
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	defer n.Close()
	err = n.Run(ctx)
	if err == nil && ctx.Err() != nil {
		log.Info("navarch stopping: signal received")
	}
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}
