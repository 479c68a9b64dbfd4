package consul

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	enabled := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.Address = "127.0.0.1:8500"
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"the default is off and valid", DefaultConfig(), ""},
		{"an address enables it", enabled(func(*Config) {}), ""},
		{"datacenters are Consul names", enabled(func(c *Config) { c.Datacenters = []string{"dc1", "eu-west_2"} }), ""},
		{"a datacenter with a slash", enabled(func(c *Config) { c.Datacenters = []string{"dc/1"} }), `datacenter "dc/1"`},
		{"a datacenter twice", enabled(func(c *Config) { c.Datacenters = []string{"dc1", "dc1"} }), "listed twice"},
		{"an empty suffix", enabled(func(c *Config) { c.Suffix = "" }), `suffix ""`},
		{"a suffix with upper case", enabled(func(c *Config) { c.Suffix = "Consul" }), `suffix "Consul"`},
		{"a multi-label suffix", enabled(func(c *Config) { c.Suffix = "consul.example" }), ""},
		{"a namespace with dots", enabled(func(c *Config) { c.Namespace = "a.b" }), `namespace "a.b"`},
		{"a wait over Consul's cap", enabled(func(c *Config) { c.WaitTime = 11 * time.Minute }), "at most 10m"},
		{"coalesce max below coalesce", enabled(func(c *Config) { c.CoalesceMax = time.Millisecond }), "coalesce max"},
		{"negative max connections", enabled(func(c *Config) { c.MaxConnections = -1 }), "max connections"},
		{"no shared wait", enabled(func(c *Config) { c.SharedWaitTime = 0 }), "shared wait time"},
		{"no initial fetches", enabled(func(c *Config) { c.MaxInitialFetches = 0 }), "max initial fetches"},
		{"an address with spaces", enabled(func(c *Config) { c.Address = "a b" }), `address "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
