package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/node"
)

// consulFlags binds the --consul-* flags of `navarch server` to cfg, whose values are
// the defaults.
func consulFlags(fs *flag.FlagSet, cfg *consul.Config) {
	fs.StringVar(&cfg.Address, "consul-address", cfg.Address, "HTTP address of a Consul agent (host:port or URL) whose catalog to bring into the mesh; empty: off")
	fs.StringVar(&cfg.TokenFile, "consul-token-file", cfg.TokenFile, "file holding the Consul ACL token (needs service:read, node:read; agent:read without --consul-datacenters), read again when it changes")
	fs.StringVar(&cfg.CAFile, "consul-ca-file", cfg.CAFile, "PEM CA bundle that verifies the Consul agent's certificate (selects https), read again when it changes")
	fs.Var(listFlag(&cfg.Datacenters, false), "consul-datacenters", "comma-separated Consul datacenters to sync, the first one primary (default: the agent's own)")
	fs.StringVar(&cfg.Suffix, "consul-suffix", cfg.Suffix, "DNS suffix of Consul services' hosts: <service>.service[.<dc>].<suffix>")
	fs.IntVar(&cfg.MaxConnections, "consul-max-connections", cfg.MaxConnections, "over plain HTTP, at most this many Consul queries open at once (keep it below the agent's limits.http_max_conns_per_client, 200 by default); more services share them; 0: no bound")
	fs.BoolVar(&cfg.TranslateWANAddrs, "consul-translate-wan-addrs", cfg.TranslateWANAddrs, "reach the instances of every datacenter but the first at their WAN addresses (tagged \"wan\"), as Consul's translate_wan_addrs")
	fs.BoolVar(&cfg.WarningHealthy, "consul-warning-healthy", cfg.WarningHealthy, "route traffic to Consul instances whose checks warn (default: only all-passing ones)")
}

// kubernetesFlags binds the --kube* flags of `navarch server` to cfg and more, whose
// values are the defaults.
func kubernetesFlags(fs *flag.FlagSet, cfg *kubernetes.Config, more *[]node.KubernetesCluster) {
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig of a Kubernetes cluster whose Services and pods to bring into the mesh (its current context; \"in-cluster\": the pod's service account); empty: off")
	fs.StringVar(&cfg.ClusterID, "kube-cluster-id", cfg.ClusterID, "name of that cluster: its registry source is kubernetes.<id>")
	fs.StringVar(&cfg.Network, "kube-network", cfg.Network, "network of that cluster's pods that name none (label topology.istio.io/network)")
	fs.Var(repeatable(func(v string) error {
		if v == "" {
			return nil
		}
		id, rest, ok := strings.Cut(v, "=")
		if !ok || id == "" || rest == "" {
			return fmt.Errorf("want <cluster id>=<kubeconfig>[,network=<network>], got %q", v)
		}
		kc := node.KubernetesCluster{ID: id, Kubeconfig: rest}
		if path, network, ok := strings.Cut(rest, ",network="); ok {
			kc.Kubeconfig, kc.Network = path, network
		}
		*more = append(*more, kc)
		return nil
	}), "kube-cluster", "another Kubernetes cluster to follow, <cluster id>=<kubeconfig>[,network=<network>], with the settings of --kubeconfig's (repeatable)")
	fs.Var(repeatable(func(v string) error {
		if v != "" { // matches every namespace, as no selector does
			cfg.DiscoverySelectors = append(cfg.DiscoverySelectors, v)
		}
		return nil
	}), "kube-discovery-selector", "label selector of namespaces whose Services and pods to follow, as Istio's discoverySelectors (\"env=prod,team in (a,b)\"; repeatable: a namespace matching any is followed); none: every namespace")
	fs.BoolVar(&cfg.IstioConfig, "kube-istio-config", cfg.IstioConfig, "also mirror the Istio configuration stored in the --kubeconfig cluster (VirtualServices and the rest, as Istio's custom resources) into navarch's, beside what navarch apply writes")
	fs.StringVar(&cfg.SystemNamespace, "kube-system-namespace", cfg.SystemNamespace, "namespace whose label topology.istio.io/network is a cluster's network when none is given (--kube-network, network=)")
	fs.Var(listFlag(&cfg.TokenAudiences, false), "kube-token-audiences", "comma-separated audiences a pod's service-account token must be for to get a certificate")
}

// listFlag is a flag of comma-separated values, kept in dst: each use of the flag
// replaces the list, or with repeat adds to it. Empty values are dropped. Its
// default, as --help prints it, is the list it starts with.
func listFlag(dst *[]string, repeat bool) flag.Value { return &listValue{dst: dst, repeat: repeat} }

type listValue struct {
	dst    *[]string
	repeat bool
}

func (l *listValue) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listValue) Set(v string) error {
	if !l.repeat {
		*l.dst = nil
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.dst = append(*l.dst, s)
		}
	}
	return nil
}
