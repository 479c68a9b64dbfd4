// Package client is the Go client of a navarch node's HTTP API, used by the CLI, the
// agent and the benchmarks. It also defines the API's request and response bodies,
// which the node's handlers share.
//
// A Client is safe for concurrent use; every method blocks until the node answers or
// the context ends.
package client
