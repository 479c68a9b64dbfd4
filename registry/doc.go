// Package registry is navarch's model of the mesh's inventory, services and the
// workloads behind them, and the indexed view of everything in the store that xds
// translates into proxy configuration.
//
// A View follows the store (one watch) and, on request, freezes what it has seen into
// an immutable Snapshot at a store revision. Services come from ServiceEntries (user
// configuration, or written by adapters under their registry source); workloads from a
// ServiceEntry's inline endpoints and from the WorkloadEntries its workloadSelector
// selects. Snapshots also index the routing configuration (VirtualService,
// DestinationRule, Sidecar, ...) by host and namespace.
//
// Snapshot values are shared read-only between goroutines; never modify one.
package registry
