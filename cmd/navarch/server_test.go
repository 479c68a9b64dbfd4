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

// serverFlagSet binds every flag of `navarch server` to cfg, as runServer does.
func serverFlagSet(cfg *node.Config) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("navarch server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var secretFile string
	serverFlags(fs, cfg, &secretFile)
	consulFlags(fs, &cfg.Consul)
	caFlags(fs, cfg)
	configFile := fs.String("config", "", "")
	return fs, configFile
}

// TestServerFlagDefaultsAreDefaultConfig: setting every flag to the default it
// prints gives node.DefaultConfig back, so `navarch server --help` tells the truth
// and no flag has a default of its own.
func TestServerFlagDefaultsAreDefaultConfig(t *testing.T) {
	cfg := node.DefaultConfig()
	fs, _ := serverFlagSet(&cfg)
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
			yaml: "consul-address: 127.0.0.1:8500\nconsul-datacenters: [dc1, dc2]\nconsul-warning-healthy: true\njoin: [10.0.0.1:7946, 10.0.0.2:7946]\nbootstrap-expect: 3\ndev: true\n",
			check: func(t *testing.T, cfg node.Config) {
				if cfg.Consul.Address != "127.0.0.1:8500" || !slices.Equal(cfg.Consul.Datacenters, []string{"dc1", "dc2"}) ||
					!cfg.Consul.WarningHealthy || len(cfg.Join) != 2 || cfg.BootstrapExpect != 3 || !cfg.Dev {
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
			fs, configFile := serverFlagSet(&cfg)
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
