// Package registrytest is the conformance suite every registry adapter runs (Consul
// today; Kubernetes and VMs later), in the manner of kuma's store test template: one
// set of tests, many implementations.
//
// An adapter's test gives Run a Harness whose New returns a Fixture: a fresh, empty
// source that the suite can change (register, deregister and fail instances, and
// optionally take offline), and a function that runs the adapter against a store.
// The suite opens a real store (embedded etcd in a temporary directory) per test,
// runs the adapter against it, changes the source, and checks what the registry
// (registry.NewSnapshot of the store, as every node builds it) shows: services with
// the right hosts, ports and protocols; one workload per instance with its address,
// port, labels, locality and health; instances and services leaving when they are
// deregistered; re-syncs and takeovers by another node writing nothing that did not
// change, and never duplicating or losing an entry; a source that cannot be reached
// keeping its entries, marked stale, until it is back.
//
//	func TestConformance(t *testing.T) {
//		registrytest.Run(t, registrytest.Harness{New: newFixture})
//	}
package registrytest
