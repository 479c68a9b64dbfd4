package registrytest

import (
	"fmt"
	"testing"
)

// Run runs the conformance suite against the adapter h describes.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"registered instances become a service with their ports, labels and health", testRegister},
		{"an instance failing its checks is marked unhealthy, and recovers", testHealth},
		{"a changed instance is updated in place", testUpdate},
		{"deregistered instances leave, and the service with its last one", testDeregister},
		{"a re-sync by another node writes nothing that did not change", testResyncIdempotent},
		{"a node taking over resyncs without duplicating or losing entries", testTakeover},
		{"an unreachable source keeps its entries, marked stale, until it is back", testOutage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newEnv(t, h))
		})
	}
}

// ratings returns instance n of the ratings service: v1 for odd n, v2 for even, each
// with its own address and port.
func ratings(n int) Instance {
	version := "v1"
	if n%2 == 0 {
		version = "v2"
	}
	return Instance{
		Service: "ratings", ID: fmt.Sprintf("ratings-%d", n),
		Address: fmt.Sprintf("10.1.0.%d", n), Port: uint32(9000 + n),
		Protocol: "grpc", Version: version, Labels: map[string]string{"team": "reviews"},
	}
}

func testRegister(t *testing.T, e *env) {
	e.start("n1")
	r1, r2 := ratings(1), ratings(2)
	web := Instance{Service: "web", ID: "web-1", Address: "10.2.0.1", Port: 8080, Protocol: "http", Version: "v3"}
	for _, in := range []Instance{r1, r2, web} {
		e.fx.Source.Register(t, in)
	}
	e.eventually("ratings has both instances", e.serves("ratings", []Instance{r1, r2}))
	e.eventually("web has its instance", e.serves("web", []Instance{web}))
	e.eventually("the source reports a sync by n1", e.syncedBy("n1", false))
}

func testHealth(t *testing.T, e *env) {
	e.start("n1")
	r1, r2 := ratings(1), ratings(2)
	e.fx.Source.Register(t, r1)
	e.fx.Source.Register(t, r2)
	e.eventually("both healthy", e.serves("ratings", []Instance{r1, r2}))
	e.fx.Source.SetHealthy(t, r1, false)
	e.eventually("ratings-1 unhealthy and still listed", e.serves("ratings", []Instance{r1, r2}, r1.ID))
	e.fx.Source.SetHealthy(t, r1, true)
	e.eventually("ratings-1 healthy again", e.serves("ratings", []Instance{r1, r2}))
}

func testUpdate(t *testing.T, e *env) {
	e.start("n1")
	r1 := ratings(1)
	e.fx.Source.Register(t, r1)
	before := e.eventually("registered", e.serves("ratings", []Instance{r1}))
	r1.Version, r1.Labels = "v7", map[string]string{"team": "ratings", "track": "canary"}
	e.fx.Source.Register(t, r1)
	after := e.eventually("labels updated", e.serves("ratings", []Instance{r1}))
	if len(after.versions) != len(before.versions) {
		t.Fatalf("%d resources before the update, %d after: an update must not add or remove any", len(before.versions), len(after.versions))
	}
	for k := range before.versions {
		if _, ok := after.versions[k]; !ok {
			t.Fatalf("%s was replaced by the update; want it updated in place", k)
		}
	}
}

func testDeregister(t *testing.T, e *env) {
	e.start("n1")
	r1, r2 := ratings(1), ratings(2)
	e.fx.Source.Register(t, r1)
	e.fx.Source.Register(t, r2)
	e.eventually("both registered", e.serves("ratings", []Instance{r1, r2}))
	e.fx.Source.Deregister(t, r2)
	e.eventually("ratings-2 gone", e.serves("ratings", []Instance{r1}))
	e.fx.Source.Deregister(t, r1)
	e.eventually("the service gone with its last instance", e.gone("ratings"))
	o := e.eventually("status", e.syncedBy("n1", false))
	if len(o.versions) != 0 {
		t.Fatalf("resources left after every instance left: %v", o.versions)
	}
}

func testResyncIdempotent(t *testing.T, e *env) {
	stop := e.start("n1")
	r1, r2 := ratings(1), ratings(2)
	e.fx.Source.Register(t, r1)
	e.fx.Source.Register(t, r2)
	e.eventually("registered", e.serves("ratings", []Instance{r1, r2}))
	before := e.eventually("synced by n1", e.syncedBy("n1", false))
	stop()
	e.start("n2")
	after := e.eventually("synced by n2", e.syncedBy("n2", false))
	if err := sameVersions(before, after); err != nil {
		t.Fatalf("the re-sync wrote resources that did not change: %v", err)
	}
	e.eventually("still registered", e.serves("ratings", []Instance{r1, r2}))
}

func testTakeover(t *testing.T, e *env) {
	stop1 := e.start("n1")
	r1, r2, r3 := ratings(1), ratings(2), ratings(3)
	e.fx.Source.Register(t, r1)
	e.eventually("n1 syncs", e.syncedBy("n1", false))
	e.start("n2") // campaigns, and waits while n1 holds the election
	e.fx.Source.Register(t, r2)
	e.eventually("n1 synced ratings-2", e.serves("ratings", []Instance{r1, r2}))
	before := e.eventually("n1 still syncs", e.syncedBy("n1", false))
	stop1()
	after := e.eventually("n2 took over", e.syncedBy("n2", false))
	if err := sameVersions(before, after); err != nil {
		t.Fatalf("the takeover rewrote resources that did not change: %v", err)
	}
	e.fx.Source.Register(t, r3)
	e.fx.Source.Deregister(t, r1)
	e.eventually("changes after the takeover arrive, each instance once", e.serves("ratings", []Instance{r2, r3}))
}

func testOutage(t *testing.T, e *env) {
	out, ok := e.fx.Source.(Outage)
	if !ok {
		t.Skip("the source cannot be taken offline")
	}
	e.start("n1")
	r1, r2 := ratings(1), ratings(2)
	e.fx.Source.Register(t, r1)
	e.fx.Source.Register(t, r2)
	e.eventually("registered", e.serves("ratings", []Instance{r1, r2}))
	before := e.eventually("synced", e.syncedBy("n1", false))
	out.Stop(t)
	during := e.eventually("marked stale", e.syncedBy("n1", true))
	if err := sameVersions(before, during); err != nil {
		t.Fatalf("entries changed while the source was unreachable: %v", err)
	}
	e.eventually("entries kept", e.serves("ratings", []Instance{r1, r2}))
	out.Start(t)
	e.eventually("fresh again", e.syncedBy("n1", false))
	r3 := ratings(3)
	e.fx.Source.Register(t, r3)
	e.eventually("a change after the outage arrives", e.serves("ratings", []Instance{r1, r2, r3}))
}
