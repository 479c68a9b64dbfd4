// Package e2e holds navarch's end-to-end tests: real `navarch server` processes
// (stopped with SIGKILL where a test needs a crash), the real CLI, real gRPC workloads
// and grpc-go's own xDS client, asserting on what the traffic did.
//
// The tests build the navarch binary once (TestMain) from this checkout.
//
// The long tests that mostly wait on processes of their own (dev nodes, clusters,
// istiod-xds, a Consul agent, a kube-apiserver) call t.Parallel, and Go runs them
// together, at most -parallel at a time (the Makefile says 4),
// after every other test has finished. The tests about how a cluster rides out
// crashes, partitions and lost quorum (chaos, failover, membership, upgrade) stay
// serial, so that other tests' load does not slow what they wait on. A parallel
// test must not change the process's environment (t.Setenv), its working
// directory, or any port or file another test uses: ports come from
// internal/ports, files from t.TempDir, and the CLI's environment is given per
// command (cliWithEnv).
package e2e
