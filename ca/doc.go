// Package ca is the mesh's certificate authority, run by every node so that
// workloads get and renew certificates through whichever node is alive.
//
// Identities are SPIFFE IDs, spiffe://<trust domain>/ns/<namespace>/sa/<service
// account> (trust domain cluster.local by default). The cluster has one signer,
// stored in etcd as one record under /navarch/ca/authority:
//
//   - created once, at bootstrap, by whichever node first finds none (a
//     create-if-absent transaction): a self-signed root (ten years) and an
//     intermediate it signs (five years), both ECDSA P-256; the root's key is
//     discarded, the intermediate signs workload certificates;
//   - or an operator's intermediate, imported from Istio's cacerts files (Import);
//   - replaced by Rotate, which starts an overlap (old and new roots both trusted)
//     that FinishRotation ends.
//
// The signing key is stored encrypted with AES-256-GCM under a key-encryption key
// (KEK) every node is given out of band; etcd, logs and debug output never hold it in
// plaintext. Every node watches /navarch/ca/, so a change made through one node takes
// effect on all within milliseconds.
//
// Callers authenticate (Authenticate) with a join token (CreateToken: one per
// WorkloadGroup, stored as a SHA-256 hash under /navarch/ca/tokens/) or with their
// current certificate (renewal). Sign checks a CSR against the caller's identity and
// issues a certificate whose only SAN is that identity. CertificateService serves
// this as Istio's IstioCertificateService; ServerTLS gives a node's secure gRPC port
// its serving certificate and client verification.
//
// Use: New, then Run in its own goroutine (it loads or creates the CA, closes Ready,
// and follows changes); every other method is safe for concurrent use.
package ca
