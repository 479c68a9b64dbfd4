//go:build tools

// Package tools pins the Kubernetes API server, and the etcd it stores in, that
// navarch's tests start as real peers. Build them with `make peers` (see the
// Makefile), which runs `go build` of k8s.io/kubernetes/cmd/kube-apiserver and
// go.etcd.io/etcd/server/v3 in this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
