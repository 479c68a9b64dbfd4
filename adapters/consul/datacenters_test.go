package consul_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/consul/consultest"
	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/store"
)

// spaceState is what the store holds of one registry source.
type spaceState struct {
	hosts    []string          // ServiceEntry hosts, sorted
	ports    map[string]string // ServiceEntry host -> its port names, comma-separated
	locality map[string]string // WorkloadEntry name -> locality
	address  map[string]string // WorkloadEntry name -> address
	versions map[string]string // resource -> resourceVersion
	status   *store.SourceStatus
}

func readSpace(t *testing.T, st *store.Store, source string) spaceState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, _, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := spaceState{ports: map[string]string{}, locality: map[string]string{}, address: map[string]string{}, versions: map[string]string{}}
	for _, e := range entries {
		if e.Space.Source() != source {
			continue
		}
		if e.Status != nil {
			s.status = e.Status
			continue
		}
		s.versions[e.Resource.String()] = e.Resource.Meta.ResourceVersion
		switch spec := e.Resource.Spec.(type) {
		case *networking.ServiceEntry:
			s.hosts = append(s.hosts, spec.Hosts...)
			var names []string
			for _, p := range spec.Ports {
				names = append(names, p.Name)
			}
			s.ports[spec.Hosts[0]] = strings.Join(names, ",")
		case *networking.WorkloadEntry:
			s.locality[e.Resource.Meta.Name] = spec.Locality
			s.address[e.Resource.Meta.Name] = spec.Address
		}
	}
	slices.Sort(s.hosts)
	return s
}

func waitSpace(t *testing.T, st *store.Store, source, what string, check func(s spaceState) error) spaceState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := readSpace(t, st, source)
		err := check(s)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not so after 30s: %v", source, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func register(t *testing.T, c *capi.Client, dc, node, addr, id string, port int) {
	t.Helper()
	_, err := c.Catalog().Register(&capi.CatalogRegistration{
		Datacenter: dc, Node: node, Address: addr,
		Service: &capi.AgentService{ID: id, Service: "ratings", Port: port, Tags: []string{"v1"}},
	}, nil)
	if err != nil {
		t.Fatalf("registering %s in %s: %v", id, dc, err)
	}
}

// TestDatacentersSyncSeparately: two federated datacenters are synced into spaces of
// their own, under elections of their own; only the primary publishes the short
// host; a change in one datacenter leaves the other's entries untouched.
func TestDatacentersSyncSeparately(t *testing.T) {
	dc1 := consultest.Start(t, consultest.Options{Datacenter: "dc1", Node: "server-1"})
	consultest.Start(t, consultest.Options{Datacenter: "dc2", Node: "server-2", JoinWAN: dc1.WANAddr})
	c := dc1.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		dcs, err := c.Catalog().Datacenters()
		if err == nil && slices.Contains(dcs, "dc2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc1 does not see dc2 over the WAN: %v %v", dcs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	register(t, c, "dc1", "web-1", "10.0.1.1", "ratings-1", 9090)
	if _, err := c.Catalog().Register(&capi.CatalogRegistration{
		Datacenter: "dc2", Node: "web-2", Address: "10.0.2.1", TaggedAddresses: map[string]string{"wan": "198.51.100.2"},
		Service: &capi.AgentService{ID: "ratings-2", Service: "ratings", Port: 9090, Tags: []string{"v1"}},
	}, nil); err != nil {
		t.Fatal(err)
	}

	st := registrytest.OpenStore(t)
	cfg := consul.DefaultConfig()
	cfg.Address, cfg.Datacenters = dc1.HTTPAddr, []string{"dc1", "dc2"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
	t.Cleanup(func() { cancel(); <-done })

	want := func(hosts []string, locality string) func(s spaceState) error {
		return func(s spaceState) error {
			if !slices.Equal(s.hosts, hosts) {
				return fmt.Errorf("hosts %v, want %v", s.hosts, hosts)
			}
			for name, l := range s.locality {
				if l != locality {
					return fmt.Errorf("%s: locality %q, want %q", name, l, locality)
				}
			}
			if len(s.locality) != 1 || s.status == nil || s.status.Stale || s.status.Node != "n1" {
				return fmt.Errorf("%d workloads, status %+v", len(s.locality), s.status)
			}
			return nil
		}
	}
	before := waitSpace(t, st, "consul.dc1", "the primary publishes both hosts",
		want([]string{"ratings.service.consul", "ratings.service.dc1.consul"}, "dc1"))
	waitSpace(t, st, "consul.dc2", "dc2 publishes its own host", want([]string{"ratings.service.dc2.consul"}, "dc2"))
	for _, dc := range []string{"dc1", "dc2"} {
		leader, err := st.ElectionLeader(context.Background(), "consul/"+dc)
		if err != nil || leader != "n1" {
			t.Fatalf("election consul/%s: leader %q (%v), want n1", dc, leader, err)
		}
	}

	// Another mirror, of WAN addresses: dc2's instance at its node's address tagged
	// "wan", the primary's as registered.
	wanCfg := cfg
	wanCfg.TranslateWANAddrs = true
	wanSt := registrytest.OpenStore(t)
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- runAdapter(wctx, wanCfg, wanSt, "n2") }()
	for dc, addr := range map[string]string{"dc1": "10.0.1.1", "dc2": "198.51.100.2"} {
		waitSpace(t, wanSt, "consul."+dc, dc+"'s instance at its WAN address", func(s spaceState) error {
			if got := slices.Collect(maps.Values(s.address)); !slices.Equal(got, []string{addr}) {
				return fmt.Errorf("addresses %v, want %s", got, addr)
			}
			return nil
		})
	}
	wcancel()
	<-wdone

	if _, err := c.Catalog().Deregister(&capi.CatalogDeregistration{Datacenter: "dc2", Node: "web-2"}, nil); err != nil {
		t.Fatal(err)
	}
	waitSpace(t, st, "consul.dc2", "dc2's service gone", func(s spaceState) error {
		if len(s.versions) != 0 {
			return fmt.Errorf("resources left: %v", s.versions)
		}
		return nil
	})
	after := readSpace(t, st, "consul.dc1")
	for k, v := range before.versions {
		if after.versions[k] != v {
			t.Fatalf("a change in dc2 touched dc1's %s (version %s -> %q)", k, v, after.versions[k])
		}
	}
}
