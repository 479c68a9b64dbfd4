package consul_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/consul/consultest"
)

// TestMoreServicesThanConnections runs an agent that allows 16 connections per client
// address against a catalog that grows to 60 services. Over plain HTTP the adapter
// shares 6 connections between the services' queries and still sees every service
// and every change, also when the catalog outgrows the connections while they are all
// taken by queries waiting their full time (TestConnectionsPreempt checks how); over HTTPS, HTTP/2 carries every query on a few
// connections; over plain HTTP without the bound the agent refuses the adapter and
// the status says what to do.
func TestMoreServicesThanConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 60 services")
	}
	const services, limit = 60, 16
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir)
	agent := consultest.Start(t, consultest.Options{HTTPS: true, HCL: []string{
		fmt.Sprintf(`tls { defaults { ca_file = %q, cert_file = %q, key_file = %q } }`, caFile, certFile, keyFile),
		fmt.Sprintf(`limits { http_max_conns_per_client = %d }`, limit)}})
	c := agent.Client(t)
	instance := func(svc, i int) *capi.CatalogRegistration {
		node := fmt.Sprintf("node-%d-%d", svc, i)
		return &capi.CatalogRegistration{Node: node, Address: fmt.Sprintf("10.0.%d.%d", svc, i+1),
			Service: &capi.AgentService{ID: node, Service: fmt.Sprintf("svc-%d", svc), Port: 8080}}
	}
	all := func(n int) func(s spaceState) error {
		return func(s spaceState) error {
			if len(s.locality) != n {
				return fmt.Errorf("%d workloads; status %+v", len(s.locality), s.status)
			}
			return nil
		}
	}
	// Well below the limit: the test's own client keeps a few open, and the agent
	// notices connections closed by an earlier subtest's adapter only in time.
	const conns = 6

	t.Run("over http, the catalog outgrows the connections", func(t *testing.T) {
		// As many services as connections, each query waiting the full minute; then
		// the rest arrive and must get their turn.
		registerAll(t, c, conns, func(i int) *capi.CatalogRegistration { return instance(i, 0) })
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}
		cfg.MaxConnections, cfg.SharedWaitTime = conns, 500*time.Millisecond
		var once sync.Once
		syncs(t, cfg, "every service synced", func(s spaceState) error {
			if len(s.locality) == conns {
				once.Do(func() {
					time.Sleep(time.Second) // let every first read turn into a long wait
					// One at a time: the adapter holds most of the connections the
					// agent allows this address.
					for i := conns; i < services; i++ {
						if _, err := c.Catalog().Register(instance(i, 0), nil); err != nil {
							t.Errorf("registering: %v", err)
						}
					}
				})
			}
			return all(services)(s)
		})
	})
	t.Run("over https", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.CAFile, cfg.Datacenters = agent.HTTPSAddr, caFile, []string{"dc1"}
		syncs(t, cfg, "every service synced", all(services))
	})
	t.Run("over http, sharing connections", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}
		cfg.MaxConnections, cfg.SharedWaitTime = conns, 500*time.Millisecond
		syncs(t, cfg, "every service and then a new instance synced", func(s spaceState) error {
			if err := all(services)(s); err != nil && len(s.locality) != services+1 {
				return err
			}
			if len(s.locality) == services {
				// Every service is in; add an instance to the last one, which must be
				// seen although its query waits its turn for a connection.
				if _, err := c.Catalog().Register(instance(services-1, 1), nil); err != nil {
					t.Fatal(err)
				}
				return fmt.Errorf("waiting for the new instance")
			}
			return nil
		})
		if _, err := c.Catalog().Deregister(&capi.CatalogDeregistration{Node: fmt.Sprintf("node-%d-1", services-1)}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("over http without a bound the agent refuses and the status says why", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}
		cfg.MaxConnections = 0
		syncs(t, cfg, "a status naming the agent's limit", func(s spaceState) error {
			if s.status == nil || !strings.Contains(s.status.Error, "limits.http_max_conns_per_client") {
				return fmt.Errorf("status %+v", s.status)
			}
			return nil
		})
	})
}
