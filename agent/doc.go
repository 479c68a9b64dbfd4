// Package agent is the workload side of navarch's certificate authority: it gets a
// workload (a VM, a process) its certificate and keeps it current, as istio-agent
// does, without Kubernetes.
//
// The first request authenticates with a join token (navarch token create
// --workload-group ns/name): the agent makes an ECDSA P-256 key, sends a CSR to a
// node's TLS gRPC port (Istio's IstioCertificateService, 15012) and writes
// cert-chain.pem, key.pem and root-cert.pem (every trusted root) into its output
// directory, each file replaced atomically so that grpc-go's file_watcher
// certificate provider never reads half a file. From then on it renews at half the
// certificate's lifetime with a new key, authenticating with its current certificate;
// the token is needed again only if the certificate expired (the agent was down too
// long) or its root is no longer trusted.
//
// The agent tries the nodes it is given in turn, starting with the last one that
// answered, so a renewal goes through whichever node is alive.
//
// Trust in the nodes: the agent verifies each node's serving certificate (for the
// name "navarch", which every node's carries) against the trust bundle it holds,
// or on the first request against --ca-file. With --insecure-first-fetch and no
// --ca-file it trusts the first answer (trust on first use): it logs the fingerprints
// of the roots it was given, to be compared with `navarch ca show`, and only checks
// that the node's certificate chains to them.
//
// `navarch agent run` also keeps the workload registered in its WorkloadGroup
// (register.go) and, with --dns-addr, is its DNS proxy (dns.go): the registration
// stream asks for the workload's name table, from which the proxy answers the
// mesh's names, passing every other name to the machine's resolvers.
package agent
