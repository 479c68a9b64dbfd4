package grpcapp

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"
)

// StartXDSBackend starts a backend as an xDS-managed gRPC server (xds.NewGRPCServer)
// with xDS credentials: it serves once the control plane sends its inbound listener,
// with the TLS and authorization that listener says. It answers UnaryCall with its
// name in Hostname and the caller's SPIFFE ID (empty over plaintext) in Username.
func StartXDSBackend(name string, bootstrap []byte) (*Backend, error) {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Backend{Name: name, Addr: lis.Addr().String(), Port: uint32(lis.Addr().(*net.TCPAddr).Port)}
	serving := xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) {
		b.serving.Store(args.Mode == connectivity.ServingModeServing)
	})
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(bootstrap), serving)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("xDS server: %w", err)
	}
	b.stop = srv.Stop
	testgrpc.RegisterTestServiceServer(srv, &identityEcho{b: b})
	go srv.Serve(lis)
	return b, nil
}

// identityEcho answers with the backend's name and the caller's identity.
type identityEcho struct {
	testgrpc.UnimplementedTestServiceServer
	b *Backend
}

func (e *identityEcho) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	e.b.calls.Add(1)
	return &testgrpc.SimpleResponse{Hostname: e.b.Name, Username: PeerSPIFFE(ctx)}, nil
}

// PeerSPIFFE returns the SPIFFE ID of the caller's certificate, "" without one.
func PeerSPIFFE(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range info.State.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

// DialSecure is Dial with xDS client credentials: TLS as the control plane's
// clusters say, plaintext where they say nothing.
func DialSecure(bootstrap []byte, target string) (*grpc.ClientConn, error) {
	r, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, fmt.Errorf("xDS resolver: %w", err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
}

// Serving reports whether an xDS backend has its listener and serves.
func (b *Backend) Serving() bool { return b.serving.Load() }

// StrictRatingsMesh is the configuration of a secured ratings service for tests: a
// ServiceEntry ratings.<ns>.svc.cluster.local:9090 (GRPC) selecting app=ratings, the
// WorkloadEntry of a backend listening on 127.0.0.1:port with service account
// ratings, and a STRICT PeerAuthentication for the namespace.
func StrictRatingsMesh(ns string, port uint32) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: %[1]s}
spec:
  hosts: [ratings.%[1]s.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: %[1]s}
spec: {address: 127.0.0.1, ports: {grpc: %[2]d}, labels: {app: ratings}, serviceAccount: ratings}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %[1]s}
spec: {mtls: {mode: STRICT}}
`, ns, port)
}
