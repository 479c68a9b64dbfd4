// Package e2e holds navarch's end-to-end tests: real `navarch server` processes
// (stopped with SIGKILL where a test needs a crash), the real CLI, real gRPC workloads
// and grpc-go's own xDS client, asserting on what the traffic did.
//
// The tests build the navarch binary once (TestMain) from this checkout.
package e2e
