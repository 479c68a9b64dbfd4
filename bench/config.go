package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/navarch/navarch/client"
)

// Config configures a scenario run.
type Config struct {
	// Proxies is how many simulated proxies connect.
	Proxies int
	// Services is how many services the mesh has; Endpoints how many endpoints each.
	Services, Endpoints int
	// Rate is the churn scenario's endpoint changes per second.
	Rate int
	// Duration is how long the churn scenario changes endpoints.
	Duration time.Duration
	// Writers is how many concurrent writers the apply scenario runs.
	Writers int
	// Clients is how many concurrent clients the csr scenario runs.
	Clients int
	// CSRTarget is the TLS gRPC address (15012) of the node the csr scenario loads.
	CSRTarget string
	// TLSTargets are the nodes' TLS gRPC addresses, in the order of Targets, and
	// NodeAPIs their APIs (local clusters only: the vm scenario).
	TLSTargets []string
	NodeAPIs   []*client.Client
	// Delta makes proxies use Delta xDS; otherwise SotW.
	Delta bool
	// Mode is how proxies subscribe (Named like grpc-go, Wildcard like Envoy).
	Mode Mode
	// IstioVersion, for Wildcard proxies, is the ISTIO_VERSION they send, as
	// istio-agent's Envoy (istio-proxy) does: they then get Istio's telemetry
	// filters and metadata. Empty: a plain Envoy.
	IstioVersion string
	// GRPCClients makes the proxies use grpc-go's client rather than the load
	// generator's own lighter HTTP/2 streams (FleetConfig.GRPCClients).
	GRPCClients bool
	// Classes spreads proxies over this many label sets, each a proxy class of its
	// own (configuration selects by the label that sets them apart), unless
	// UnselectedClasses, when nothing selects by it and they share one class.
	Classes           int
	UnselectedClasses bool
	// Namespace holds the benchmark's services and proxies.
	Namespace string
	// Targets are the xDS servers the proxies connect to.
	Targets []string
	// API is a navarch node's API; scenarios that change configuration need it.
	API *client.Client
	// PIDs are the node processes whose CPU time and memory are reported.
	PIDs []int
	// Kill stops the process serving an xDS target (failover, local clusters only).
	Kill func(target string) error
	// Consul, when set, is a Consul agent's HTTP address: the churn scenario then
	// registers its services and changes its endpoints there, and the nodes (started
	// with --consul-address) bring them into the mesh.
	Consul string
	// Timeout bounds each wait of a scenario.
	Timeout time.Duration
	// Settle is how long convergence waits between connecting the proxies and
	// applying its change: time for the nodes to settle, or to start a profiler.
	Settle time.Duration
	// Repeat is how many changes convergence makes on the connected proxies (one
	// if unset), Settle apart.
	Repeat int
	// Progress receives a progress line now and then.
	Progress func(line string)
}

// DefaultConfig returns what `navarch bench` runs without flags.
func DefaultConfig() Config {
	return Config{
		Proxies:   1000,
		Services:  100,
		Endpoints: 3,
		Rate:      100,
		Duration:  10 * time.Second,
		Writers:   8,
		Clients:   16,
		Mode:      Named,
		Classes:   1,
		Namespace: "bench",
		Timeout:   5 * time.Minute,
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Proxies < 0 || c.Services < 1 || c.Endpoints < 1 {
		errs = append(errs, fmt.Errorf("bench: need proxies >= 0, services >= 1, endpoints >= 1; got %d, %d, %d", c.Proxies, c.Services, c.Endpoints))
	}
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("bench: no xDS target"))
	}
	if c.Endpoints > 250*250 {
		errs = append(errs, fmt.Errorf("bench: at most %d endpoints per service", 250*250))
	}
	return errors.Join(errs...)
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

func (c *Config) needAPI(scenario string) error {
	if c.API == nil {
		return fmt.Errorf("bench %s changes configuration and needs a navarch API (--api), or no --target to start a local cluster", scenario)
	}
	return nil
}
