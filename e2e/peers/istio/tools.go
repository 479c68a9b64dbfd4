//go:build tools

// Package tools pins Istio's pilot-agent, which navarch's tests start as a real
// peer. Build it with `make peers` (see the Makefile), which runs
// `go build -o .peers/bin/pilot-agent istio.io/istio/pilot/cmd/pilot-agent` in
// this module. The imports are those of pilot-agent's main package, so that
// `go mod tidy` keeps every module it needs. The module has two commands of its
// own: ./validate (istio-validate, Istio's validation for api's oracle tests) and
// ./istiod (istiod-xds, istiod's discovery server for e2e's parity test).
package tools

import (
	_ "github.com/KimMachineGun/automemlimit"
	_ "istio.io/istio/pilot/cmd/pilot-agent/app"
	_ "istio.io/istio/pkg/istio-agent"
	_ "istio.io/istio/security/pkg/nodeagent/sds"
)
