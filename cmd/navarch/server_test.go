package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/navarch/navarch/node"
)

// TestServerFlagDefaultsAreDefaultConfig: setting every flag to the default it
// prints gives node.DefaultConfig back, so `navarch server --help` tells the truth
// and no flag has a default of its own.
func TestServerFlagDefaultsAreDefaultConfig(t *testing.T) {
	cfg := node.DefaultConfig()
	fs, _ := serverFlagSet(&cfg, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if err := fs.Set(f.Name, f.DefValue); err != nil {
			t.Errorf("--%s=%q (its default): %v", f.Name, f.DefValue, err)
		}
	})
	if want := node.DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("flags at their defaults give\n%+v\nwant node.DefaultConfig()\n%+v", cfg, want)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	tests := []struct {
		name  string
		yaml  string
		args  []string
		check func(t *testing.T, cfg node.Config)
		err   string
	}{
		{
			name: "keys are flag names",
			yaml: "consul-address: 127.0.0.1:8500\nconsul-datacenters: [dc1, dc2]\nconsul-warning-healthy: true\nconsul-translate-wan-addrs: true\njoin: [10.0.0.1:7946, 10.0.0.2:7946]\nbootstrap-expect: 3\ndev: true\n",
			check: func(t *testing.T, cfg node.Config) {
				if cfg.Consul.Address != "127.0.0.1:8500" || !slices.Equal(cfg.Consul.Datacenters, []string{"dc1", "dc2"}) ||
					!cfg.Consul.WarningHealthy || !cfg.Consul.TranslateWANAddrs || len(cfg.Join) != 2 || cfg.BootstrapExpect != 3 || !cfg.Dev {
					t.Fatalf("config %+v", cfg)
				}
			},
		},
		{
			name: "flags on the command line win",
			yaml: "consul-address: 127.0.0.1:8500\nconsul-suffix: example\nname: from-file\n",
			args: []string{"--consul-address", "10.0.0.9:8500", "--name", "from-flag"},
			check: func(t *testing.T, cfg node.Config) {
				if cfg.Consul.Address != "10.0.0.9:8500" || cfg.Name != "from-flag" || cfg.Consul.Suffix != "example" {
					t.Fatalf("address %q name %q suffix %q", cfg.Consul.Address, cfg.Name, cfg.Consul.Suffix)
				}
			},
		},
		{
			name: "Kubernetes clusters: the first by --kubeconfig, more by a list",
			yaml: "kubeconfig: /etc/navarch/east\nkube-cluster-id: east\nkube-network: net-east\n" +
				"kube-cluster: [west=/etc/navarch/west, 'south=/etc/navarch/south,network=net-south']\nkube-token-audiences: [istio-ca, navarch]\n" +
				"kube-discovery-selector: [mesh=on, 'team in (a,b)']\nkube-system-namespace: mesh-system\n",
			check: func(t *testing.T, cfg node.Config) {
				k := cfg.Kubernetes
				if k.Kubeconfig != "/etc/navarch/east" || k.ClusterID != "east" || k.Network != "net-east" ||
					!slices.Equal(k.TokenAudiences, []string{"istio-ca", "navarch"}) ||
					!slices.Equal(k.DiscoverySelectors, []string{"mesh=on", "team in (a,b)"}) || k.SystemNamespace != "mesh-system" {
					t.Fatalf("first cluster %+v", k)
				}
				want := []node.KubernetesCluster{{ID: "west", Kubeconfig: "/etc/navarch/west"}, {ID: "south", Kubeconfig: "/etc/navarch/south", Network: "net-south"}}
				if !slices.Equal(cfg.KubernetesClusters, want) {
					t.Fatalf("more clusters %+v, want %+v", cfg.KubernetesClusters, want)
				}
			},
		},
		{name: "a Kubernetes cluster needs an id", yaml: "kube-cluster: [/etc/navarch/west]\n", err: "want <cluster id>=<kubeconfig>"},
		{name: "an unknown key is an error", yaml: "consul-adress: x\n", err: `unknown key "consul-adress"`},
		{name: "a bad value names the key", yaml: "bootstrap-expect: lots\n", err: "bootstrap-expect"},
		{name: "a nested map is refused", yaml: "consul-address: {a: b}\n", err: "consul-address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(file, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := node.DefaultConfig()
			fs, v := serverFlagSet(&cfg, io.Discard)
			configFile := v.configFile
			if err := fs.Parse(append([]string{"--config", file}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			err := applyConfigFile(fs, *configFile, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("applyConfigFile = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}
