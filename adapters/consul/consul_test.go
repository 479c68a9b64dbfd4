package consul_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/consul/consultest"
	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/store"
)

// TestConformance runs the registry adapter suite against a real Consul agent.
func TestConformance(t *testing.T) {
	registrytest.Run(t, registrytest.Harness{New: newFixture})
}

func newFixture(t *testing.T) registrytest.Fixture {
	agent := consultest.Start(t, consultest.Options{})
	src := &source{agent: agent, client: agent.Client(t), registered: map[string]registered{}}
	cfg := consul.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	return registrytest.Fixture{
		Source:   src,
		Run:      func(ctx context.Context, st *store.Store, id string) error { return runAdapter(ctx, cfg, st, id) },
		Hosts:    func(svc string) []string { return []string{svc + ".service.dc1.consul", svc + ".service.consul"} },
		Sources:  []string{"consul.dc1"},
		Locality: "dc1",
	}
}

// runAdapter runs every datacenter of the adapter under its election, as a node does.
func runAdapter(ctx context.Context, cfg consul.Config, st *store.Store, id string) error {
	log := registrytest.Logger().With("node", id)
	a, err := consul.New(cfg, st, id, log)
	if err != nil {
		return err
	}
	dcs, err := a.Datacenters(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, dc := range dcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.RunElected(ctx, dc.ElectionName(), id, log, dc.Run)
		}()
	}
	wg.Wait()
	return nil
}

// source registers instances in Consul's catalog, each on a node of its own (an
// external node, as consul-esm or a registration tool would write it), with one
// service check whose status the suite sets.
type source struct {
	agent  *consultest.Agent
	client *capi.Client

	mu         sync.Mutex
	registered map[string]registered // by instance ID, to re-register after a restart
}

type registered struct {
	in      registrytest.Instance
	healthy bool
}

var (
	_ registrytest.Source = (*source)(nil)
	_ registrytest.Outage = (*source)(nil)
)

func (s *source) Register(t *testing.T, in registrytest.Instance) {
	t.Helper()
	s.write(t, in, true)
}

func (s *source) SetHealthy(t *testing.T, in registrytest.Instance, healthy bool) {
	t.Helper()
	s.write(t, in, healthy)
}

// write registers the instance as the suite expects to see it: its version as a bare
// tag, its labels as key=value tags, its protocol in ServiceMeta.
func (s *source) write(t *testing.T, in registrytest.Instance, healthy bool) {
	t.Helper()
	tags := []string{in.Version}
	for k, v := range in.Labels {
		tags = append(tags, k+"="+v)
	}
	status := capi.HealthPassing
	if !healthy {
		status = capi.HealthCritical
	}
	node := "node-" + in.ID
	_, err := s.client.Catalog().Register(&capi.CatalogRegistration{
		Node: node, Address: in.Address, Datacenter: s.agent.Datacenter(),
		Service: &capi.AgentService{ID: in.ID, Service: in.Service, Port: int(in.Port), Tags: tags,
			Meta: map[string]string{"protocol": in.Protocol}},
		Check: &capi.AgentCheck{Node: node, CheckID: "service:" + in.ID, Name: "ready", Status: status, ServiceID: in.ID},
	}, nil)
	if err != nil {
		t.Fatalf("registering %s in Consul: %v", in.ID, err)
	}
	s.mu.Lock()
	s.registered[in.ID] = registered{in: in, healthy: healthy}
	s.mu.Unlock()
}

func (s *source) Deregister(t *testing.T, in registrytest.Instance) {
	t.Helper()
	_, err := s.client.Catalog().Deregister(&capi.CatalogDeregistration{Node: "node-" + in.ID, Datacenter: s.agent.Datacenter()}, nil)
	if err != nil {
		t.Fatalf("deregistering %s from Consul: %v", in.ID, err)
	}
	s.mu.Lock()
	delete(s.registered, in.ID)
	s.mu.Unlock()
}

func (s *source) Stop(t *testing.T) { s.agent.Stop(t) }

// Start restarts the agent; a -dev agent keeps its catalog in memory, so the
// instances are registered again, as a persistent Consul would have kept them.
func (s *source) Start(t *testing.T) {
	s.agent.Restart(t)
	s.mu.Lock()
	regs := make([]registered, 0, len(s.registered))
	for _, r := range s.registered {
		regs = append(regs, r)
	}
	s.mu.Unlock()
	for _, r := range regs {
		s.write(t, r.in, r.healthy)
	}
}

// TestNewRefusesBadConfig checks that New reports the offending value.
func TestNewRefusesBadConfig(t *testing.T) {
	cfg := consul.DefaultConfig()
	cfg.Address = "127.0.0.1:8500"
	cfg.Datacenters = []string{"dc 1"}
	_, err := consul.New(cfg, nil, "n1", registrytest.Logger())
	if err == nil || !strings.Contains(err.Error(), `"dc 1"`) {
		t.Fatalf("New with a bad datacenter: %v", err)
	}
}

// TestProtocolFromConfigEntries: a service whose instances name no protocol in
// ServiceMeta takes it from its service-defaults config entry, else from the
// proxy-defaults "global" entry, as Consul's own proxies do; a change of either
// reaches the registry.
func TestProtocolFromConfigEntries(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	c := agent.Client(t)
	register(t, c, "dc1", "web-1", "10.0.1.1", "ratings-1", 9090)
	cfg := consul.DefaultConfig()
	cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}
	st := registrytest.OpenStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
	defer func() { cancel(); <-done }()
	port := func(what, want string) {
		t.Helper()
		waitSpace(t, st, "consul.dc1", what, func(s spaceState) error {
			if got := s.ports["ratings.service.consul"]; got != want || s.status == nil || s.status.Stale {
				return fmt.Errorf("ratings' ports %q, want %q; status %+v", got, want, s.status)
			}
			return nil
		})
	}
	port("no config entries: http", "http-9090")
	write := func(e capi.ConfigEntry) {
		t.Helper()
		if _, _, err := c.ConfigEntries().Set(e, nil); err != nil {
			t.Fatalf("writing the %s config entry: %v", e.GetKind(), err)
		}
	}
	write(&capi.ProxyConfigEntry{Kind: capi.ProxyDefaults, Name: capi.ProxyConfigGlobal, Config: map[string]any{"protocol": "http2"}})
	port("proxy-defaults' protocol", "http2-9090")
	write(&capi.ServiceConfigEntry{Kind: capi.ServiceDefaults, Name: "ratings", Protocol: "grpc"})
	port("the service's service-defaults' protocol", "grpc-9090")
	if _, err := c.ConfigEntries().Delete(capi.ServiceDefaults, "ratings", nil); err != nil {
		t.Fatal(err)
	}
	port("service-defaults deleted: proxy-defaults' again", "http2-9090")
}
