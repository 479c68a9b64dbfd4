// Package e2e holds navarch's end-to-end tests: real `navarch server` processes
// (stopped with SIGKILL where a test needs a crash), the real CLI, real gRPC workloads
// and grpc-go's own xDS client, asserting on what the traffic did.
//
// The tests build the navarch binary once (TestMain) from this checkout.
//
// Tests that spend most of their time waiting on processes of their own (a dev node
// or a cluster they do not kill, istiod-xds, a Consul agent, a kube-apiserver) call
// t.Parallel: Go runs them together, at most -parallel at a time (the Makefile
// says 4), after every other test has finished. Tests that kill nodes to assert how
// the rest carries on stay serial, so others' load does not slow what they wait on.
// A parallel test must not change the process's environment (t.Setenv), its
// working directory, or any port or file another test uses: ports come from
// internal/ports, files from t.TempDir, and the CLI's environment is given per
// command (cliWithEnv).
package e2e
