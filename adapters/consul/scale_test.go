package consul_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/consul/consultest"
	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/registry"
)

// TestThousandInstances: a catalog of 1,000 instances over 100 services is mirrored
// whole, and one instance failing its check rewrites that instance's WorkloadEntry
// and nothing else.
func TestThousandInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 1,000 instances")
	}
	const services, perService = 100, 10
	agent := consultest.Start(t, consultest.Options{})
	c := agent.Client(t)
	check := func(svc, i int, status string) *capi.CatalogRegistration {
		node, id := fmt.Sprintf("node-%d-%d", svc, i), fmt.Sprintf("svc-%d-%d", svc, i)
		return &capi.CatalogRegistration{
			Node: node, Address: fmt.Sprintf("10.%d.%d.%d", svc/250, svc%250, i+1),
			Service: &capi.AgentService{ID: id, Service: fmt.Sprintf("svc-%d", svc), Port: 8080, Tags: []string{"v1"}},
			Check:   &capi.AgentCheck{Node: node, CheckID: "service:" + id, Name: "ready", Status: status, ServiceID: id},
		}
	}
	start := time.Now()
	registerAll(t, c, services*perService, func(n int) *capi.CatalogRegistration {
		return check(n/perService, n%perService, capi.HealthPassing)
	})
	t.Logf("registered %d instances in Consul in %s", services*perService, time.Since(start).Round(time.Millisecond))

	st := registrytest.OpenStore(t)
	cfg := consul.DefaultConfig()
	cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
	t.Cleanup(func() { cancel(); <-done })
	synced := waitSpace(t, st, "consul.dc1", "every instance synced", func(s spaceState) error {
		if len(s.locality) != services*perService || s.status == nil {
			return fmt.Errorf("%d workloads, status %+v", len(s.locality), s.status)
		}
		return nil
	})
	_, rev, _ := st.Snapshot(context.Background())
	t.Logf("mirrored %d resources in %s (store at revision %d)", len(synced.versions), time.Since(start).Round(time.Millisecond), rev)

	if _, err := c.Catalog().Register(check(42, 7, capi.HealthCritical), nil); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitSpace(t, st, "consul.dc1", "svc-42-7 unhealthy", func(spaceState) error {
		entries, _, err := st.Snapshot(context.Background())
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Resource != nil && e.Resource.Meta.Annotations[consul.AnnotationServiceID] == "svc-42-7" &&
				e.Resource.Meta.Annotations[registry.HealthAnnotation] == "unhealthy" {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	t.Logf("a failing check reached the store %s after it was registered", time.Since(start).Round(time.Millisecond))
	// Read the space now: the state waitSpace passed its check may predate the write
	// the check then found.
	after := readSpace(t, st, "consul.dc1")
	var changed []string
	for k, v := range synced.versions {
		if after.versions[k] != v {
			changed = append(changed, k)
		}
	}
	if len(changed) != 1 || len(after.versions) != len(synced.versions) {
		t.Fatalf("one instance's check failing changed %v (%d resources, %d before), want exactly its WorkloadEntry",
			changed, len(after.versions), len(synced.versions))
	}
}

// registerAll registers n catalog entries, eight at a time.
func registerAll(t *testing.T, c *capi.Client, n int, reg func(i int) *capi.CatalogRegistration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := c.Catalog().Register(reg(i), nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("registering: %v", err)
	}
}
