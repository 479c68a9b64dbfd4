package consul

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config configures the Consul adapter. The zero Address turns it off.
type Config struct {
	// Address is the HTTP address of a Consul agent, "host:port" or a URL
	// ("https://consul.example:8501"). Empty: the adapter does not run.
	Address string
	// Token is the ACL token sent with every request. It needs service:read and
	// node:read on what is synced, and agent:read when Datacenters is empty (to learn
	// the agent's datacenter).
	Token string
	// TokenFile, instead of Token, is a file holding the token (--consul-token-file),
	// read again whenever it changes, so that a rotated token takes effect without a
	// restart.
	TokenFile string
	// CAFile is a PEM bundle that verifies the agent's certificate; setting it
	// without a scheme in Address selects https. It is read again when it changes.
	CAFile string
	// Datacenters lists the datacenters to sync, each by the node elected for it.
	// Empty: the agent's own datacenter, which a node learns by asking the agent (so
	// a node that starts while Consul is down syncs nothing, and marks nothing stale,
	// until the agent answers). The first one is the primary: only it publishes the
	// short host names (<service>.service.<suffix>), as Consul's DNS answers those
	// from the agent's local datacenter.
	Datacenters []string
	// Suffix is the DNS suffix of the host names: "consul" makes
	// "<service>.service.consul" and "<service>.service.<dc>.consul", as Consul's DNS
	// names them.
	Suffix string
	// Namespace is the namespace of the ServiceEntries and WorkloadEntries the
	// adapter writes; DestinationRules and VirtualServices refer to the hosts from any
	// namespace.
	Namespace string
	// WarningHealthy routes traffic to instances whose worst check is "warning".
	// Off: only instances whose checks all pass are routed, the same as Consul's DNS
	// with only_passing.
	WarningHealthy bool
	// TranslateWANAddrs gives the instances of every datacenter but the primary
	// their WAN addresses, as a Consul agent's DNS does with translate_wan_addrs: an
	// instance's service address tagged "wan" (and its port, when tagged), else its
	// node's address tagged "wan", else its address as registered. For datacenters
	// whose LAN addresses the mesh cannot reach.
	TranslateWANAddrs bool
	// WaitTime is how long one blocking query waits for a change. Consul caps it at
	// ten minutes and adds up to 1/16 of jitter. It also bounds how long a silent,
	// unreachable agent (a partition rather than a refused connection) goes unnoticed.
	WaitTime time.Duration
	// Coalesce is how long a burst of catalog changes may go quiet before it is
	// written as one sync, and CoalesceMax how long a burst that keeps going may be
	// held back: a lone change waits Coalesce, a storm is written every CoalesceMax.
	Coalesce, CoalesceMax time.Duration
	// StatusInterval is how often the elected node rewrites the source's status (the
	// time of the last sync) while nothing changes, and re-syncs from scratch.
	StatusInterval time.Duration
	// MaxInitialFetches bounds the services fetched at once when a datacenter's
	// catalog is first read, so a catalog of hundreds of services does not arrive at
	// the agent as hundreds of simultaneous requests.
	MaxInitialFetches int
	// MaxConnections bounds the blocking queries open at once over plain HTTP, where
	// each holds a connection and Consul's agent allows 200 per client address by
	// default (limits.http_max_conns_per_client). A catalog with more services than
	// this shares the connections: each query then waits at most SharedWaitTime, so
	// every service is read in turn and a change is seen within about
	// services/MaxConnections × SharedWaitTime. Over HTTPS, HTTP/2 carries every
	// query on a few connections and there is no bound. 0: no bound.
	MaxConnections int
	// SharedWaitTime is how long one blocking query waits while services share
	// connections (see MaxConnections).
	SharedWaitTime time.Duration
}

// DefaultConfig returns the configuration of `navarch server` without --consul flags:
// off until Address is set.
func DefaultConfig() Config {
	return Config{
		// Consul's DNS domain.
		Suffix: "consul",
		// A namespace of its own keeps the adapter's resources apart from users'.
		Namespace: "consul",
		// Consul's own default wait is 5 minutes; one minute notices a partitioned
		// agent sooner at the cost of one empty answer per service per minute.
		WaitTime: time.Minute,
		// A deploy registers instances within a few tens of milliseconds of each
		// other; 50 ms of quiet gathers them into one write without a delay anyone sees.
		Coalesce:    50 * time.Millisecond,
		CoalesceMax: 100 * time.Millisecond,
		// Once a minute: `navarch registry` shows a recent last-sync time, and the
		// status costs one small etcd write per datacenter per minute.
		StatusInterval: time.Minute,
		// Well under Consul's default limit of 200 connections per client address.
		MaxInitialFetches: 32,
		// Leaves a quarter of Consul's default per-client limit to the service list
		// query and to other clients on the same host (a local agent's own users).
		MaxConnections: 150,
		SharedWaitTime: 5 * time.Second,
	}
}

// Enabled reports whether the adapter should run.
func (c *Config) Enabled() bool { return c.Address != "" }

// Validate checks the configuration without side effects. A configuration without an
// Address is valid (the adapter is off).
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if strings.ContainsAny(c.Address, " \t\n") {
		errs = append(errs, fmt.Errorf("consul: address %q must be host:port or a URL", c.Address))
	}
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("consul: give the ACL token or a file holding it, not both"))
	}
	seen := map[string]bool{}
	for _, dc := range c.Datacenters {
		if !validDatacenter(dc) {
			errs = append(errs, fmt.Errorf("consul: datacenter %q must be alphanumerics, '-' and '_', at most 63 characters", dc))
		}
		if seen[dc] {
			errs = append(errs, fmt.Errorf("consul: datacenter %q listed twice", dc))
		}
		seen[dc] = true
	}
	if !validDomain(c.Suffix) {
		errs = append(errs, fmt.Errorf("consul: suffix %q must be a DNS name of at most 100 characters (lower-case labels separated by dots)", c.Suffix))
	}
	if !isDNSLabel(c.Namespace) {
		errs = append(errs, fmt.Errorf("consul: namespace %q must be a DNS-1123 label", c.Namespace))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"wait time", c.WaitTime}, {"coalesce", c.Coalesce}, {"coalesce max", c.CoalesceMax}, {"status interval", c.StatusInterval}, {"shared wait time", c.SharedWaitTime}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("consul: %s must be positive, got %s", d.name, d.v))
		}
	}
	if c.WaitTime > 10*time.Minute {
		errs = append(errs, fmt.Errorf("consul: wait time must be at most 10m (Consul's cap), got %s", c.WaitTime))
	}
	if c.CoalesceMax < c.Coalesce {
		errs = append(errs, fmt.Errorf("consul: coalesce max (%s) must not be less than coalesce (%s)", c.CoalesceMax, c.Coalesce))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("consul: max connections must not be negative, got %d", c.MaxConnections))
	}
	if c.MaxInitialFetches < 1 {
		errs = append(errs, fmt.Errorf("consul: max initial fetches must be at least 1, got %d", c.MaxInitialFetches))
	}
	return errors.Join(errs...)
}

// validDatacenter is Consul's rule for datacenter names (it also makes them safe in
// etcd keys and election names).
func validDatacenter(dc string) bool {
	if dc == "" || len(dc) > 63 {
		return false
	}
	for i := 0; i < len(dc); i++ {
		c := dc[i]
		if !isAlnum(c) && c != '-' && c != '_' && !(c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}
