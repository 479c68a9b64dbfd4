package registrytest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/navarch/navarch/store"
)

// Instance is one instance of a service, as the suite registers it. The fixture
// expresses it in its source's own terms (Consul tags and metadata, pod labels, ...).
type Instance struct {
	// Service is the service's name in the source.
	Service string
	// ID tells the instance apart from the service's others.
	ID string
	// Address and Port are where the instance listens; the suite gives every
	// instance its own address and port.
	Address string
	Port    uint32
	// Protocol is "http", "http2", "grpc" or "tcp"; the service port must carry it
	// (in Istio's upper case).
	Protocol string
	// Version must appear as the workload's label "version".
	Version string
	// Labels must appear among the workload's labels.
	Labels map[string]string
}

// Source is the inventory an adapter follows. Its methods return once the source
// has accepted the change (not once the adapter has seen it) and fail the test on
// error. They are called from the test's goroutine.
type Source interface {
	// Register adds the instance, or updates it when it exists. A new instance is
	// healthy.
	Register(t *testing.T, in Instance)
	// Deregister removes the instance.
	Deregister(t *testing.T, in Instance)
	// SetHealthy makes the instance pass or fail its health checks.
	SetHealthy(t *testing.T, in Instance, healthy bool)
}

// Outage is implemented by sources the suite can take offline.
type Outage interface {
	// Stop makes the source unreachable.
	Stop(t *testing.T)
	// Start brings it back, with the inventory it had.
	Start(t *testing.T)
}

// Fixture is one fresh source and the adapter that follows it.
type Fixture struct {
	Source Source
	// Run runs the adapter against st on behalf of the node named id until ctx ends.
	// Work the adapter does on one node at a time runs under st's elections, so that
	// two Runs with different ids behave like two nodes.
	Run func(ctx context.Context, st *store.Store, id string) error
	// Hosts returns every host name a service is published under.
	Hosts func(service string) []string
	// Sources are the registry sources the adapter writes.
	Sources []string
	// Locality is the locality every workload gets; "" skips the check.
	Locality string
	// Builtin are resources the source always has, whatever the suite does (a
	// Kubernetes API server's own "ServiceEntry default/kubernetes"), as
	// api.Resource's String writes them; the suite leaves them out.
	Builtin []string
}

// Harness describes an adapter to the suite.
type Harness struct {
	// New returns a fixture with an empty source; it is called once per test and
	// cleans up with t.Cleanup.
	New func(t *testing.T) Fixture
	// Timeout bounds every wait for the registry to show a change; default 30s.
	Timeout time.Duration
}

// Logger is the logger an adapter's tests give it: silent, or with NAVARCH_TEST_LOG
// set, everything down to debug on stderr.
func Logger() *slog.Logger {
	if os.Getenv("NAVARCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
