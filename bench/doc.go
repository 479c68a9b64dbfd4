// Package bench is navarch's load generator and benchmark scenarios (BENCH.md):
// thousands of simulated proxies in one process, each a real ADS stream (its own gRPC
// connection), SotW or Delta, subscribing as Envoy does (wildcard listeners and
// clusters) or as grpc-go does (named listener, then the route, clusters and
// endpoints it names), ACKing what it receives and recording when each resource
// version arrived.
//
// A simulated proxy speaks gRPC's HTTP/2 mapping itself, on its own goroutine
// (wire.go): the nodes see what grpc-go's client would send them, bandwidth-estimation
// pings included, while the load generator, which shares the machine with the nodes
// it measures, spends about a third less CPU per response than with grpc-go's client
// and keeps no goroutines per connection besides the proxy's. FleetConfig.GRPCClients
// (`--grpc-clients`) uses grpc-go's client instead. Envoy-like proxies are a plain
// Envoy unless Config.IstioVersion (`--istio-version`) has them say they are
// istio-proxy, which gets Istio's telemetry filters and metadata besides.
//
// Scenarios (convergence, failover, churn, memory, apply, csr) drive a cluster through
// its HTTP API and measure what the proxies saw; vm registers simulated VMs
// (Istio's auto-registration, each on a TLS stream of its own) and, on a local
// cluster, kills the node holding most of them while it watches the registry. They work against any xDS server given
// by address, so the same scenario can be pointed at another control plane; the
// parts that need navarch's API (applying configuration) are skipped or refused
// without one.
//
// Simulated proxies keep little state: the versions they hold, and for each resource
// the dependencies it names, parsed once per distinct resource and shared by every
// proxy through a cache keyed by content.
package bench
