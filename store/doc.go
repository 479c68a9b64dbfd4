// Package store keeps navarch's state in etcd, embedded in every node.
//
// Open starts the embedded etcd member of this node and returns a Store, which offers
// typed access to resources (create, compare-and-swap update, apply, delete, list) and
// one ordered stream of changes (Watch) from a revision. Every write validates the
// resource first (api.Validate), so nothing invalid is ever stored.
//
// Keys follow DESIGN.md:
//
//	/navarch/config/<group>/<Kind>/<namespace>/<name>             user configuration
//	/navarch/registry/<source>/<group>/<Kind>/<namespace>/<name>  inventory written by adapters
//
// A resource's ResourceVersion is its etcd mod revision, so two nodes that have seen
// the same revision hold byte-identical state.
//
// Store methods are safe for concurrent use and may block on etcd (Raft) until their
// context ends.
package store
