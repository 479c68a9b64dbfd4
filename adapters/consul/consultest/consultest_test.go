package consultest

import (
	"testing"

	capi "github.com/hashicorp/consul/api"
)

// TestPersistentAgentKeepsItsCatalog: a persistent agent stopped and restarted
// answers on the same address with what was registered before; while stopped it
// answers nothing.
func TestPersistentAgentKeepsItsCatalog(t *testing.T) {
	a := Start(t, Options{Persistent: true})
	c := a.Client(t)
	reg := &capi.CatalogRegistration{Node: "vm-1", Address: "10.0.0.1",
		Service: &capi.AgentService{ID: "ratings-1", Service: "ratings", Port: 9090}}
	if _, err := c.Catalog().Register(reg, nil); err != nil {
		t.Fatal(err)
	}
	a.Stop(t)
	if _, _, err := c.Catalog().Service("ratings", "", nil); err == nil {
		t.Fatal("a stopped agent answered")
	}
	a.Restart(t)
	got, _, err := c.Catalog().Service("ratings", "", nil)
	if err != nil || len(got) != 1 || got[0].ServiceID != "ratings-1" {
		t.Fatalf("after a restart: %v, %v; want ratings-1", got, err)
	}
}
