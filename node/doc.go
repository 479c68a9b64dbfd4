// Package node is one navarch control-plane node: it wires the store (embedded etcd),
// the registry view, the xDS server and the HTTP API together and owns their
// goroutines and their shutdown.
//
// New binds every listener and starts etcd, so a returned Node is ready to Run; Run
// serves until its context ends, then stops the parts in reverse order of their
// dependencies (stop taking requests, stop pushing, close etcd).
package node
