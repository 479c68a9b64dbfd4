//go:build tools

// Package tools pins the Consul agent that navarch's tests start as a real
// peer. Build it with `make peers` (see the Makefile), which runs
// `go build -o .peers/bin/consul github.com/hashicorp/consul` in this module.
package tools

import _ "github.com/hashicorp/consul"
