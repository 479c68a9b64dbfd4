// Package xds turns registry snapshots into Envoy xDS resources and serves them over
// ADS (State of the World and Delta) to Envoy and proxyless gRPC clients.
//
// Translation is a list of small generators (Profile), one per resource type, run once
// per proxy class: proxies with the same type, generator, namespace, labels and
// identity get identical configuration, so one Build serves them all. Every resource
// is marshalled once, validated by its proto's Validate, and versioned by a hash of its
// bytes, so two nodes at the same store revision serve identical versions and a proxy
// that fails over is sent nothing it already has.
//
// The ADS server is navarch's own (on go-control-plane's protos), not
// go-control-plane's cache: grpc-go subscribes to clusters by name, which that cache's
// ADS mode never answers, and after a NACK the cache resends the rejected snapshot in
// a loop. Here each stream remembers per type what it sent, what was ACKed and what
// was rejected; a rejected version is not sent again until the configuration changes,
// and each rejection is logged and counted (pilot_total_xds_rejects).
//
// Pushes: Server.Run debounces the view's change signals (a lone change goes out at
// once; bursts are batched, never delaying a change by more than a second), rebuilds
// every class with connected proxies, and wakes their streams; each stream sends only
// what changed for it (SotW: types whose version changed; Delta: resources).
package xds
