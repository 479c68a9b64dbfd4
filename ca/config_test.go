package ca

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{name: "the default is valid"},
		{name: "a trust domain that is not a DNS name", mutate: func(c *Config) { c.TrustDomain = "Cluster Local" }, want: `trust domain "Cluster Local"`},
		{name: "a zero certificate lifetime", mutate: func(c *Config) { c.DefaultTTL = 0 }, want: "--cert-ttl must be positive, got 0s"},
		{name: "a maximum below the default", mutate: func(c *Config) { c.MaxTTL = time.Hour }, want: "--cert-max-ttl (1h0m0s) must be at least --cert-ttl (24h0m0s)"},
		{name: "an intermediate outliving its root", mutate: func(c *Config) { c.IntermediateTTL = c.RootTTL }, want: "shorter than the root's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
