// Package grpcapp provides the real gRPC workloads and proxyless xDS clients that
// navarch's end-to-end tests drive: backends that answer with their name, clients
// that dial xds:/// targets through grpc-go's own xDS resolver, and a tally of where
// the RPCs went.
package grpcapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

// Backend is a gRPC server on loopback that answers UnaryCall with its name.
type Backend struct {
	testgrpc.UnimplementedTestServiceServer
	Name    string
	Addr    string
	Port    uint32
	calls   atomic.Int64
	serving atomic.Bool
	health  *health.Server // gRPC's health service, SERVING until SetHealthy(false)
	stop    func()
	// succeedEvery, when n > 1, makes only every n-th call succeed and the others
	// fail with UNAVAILABLE: a flaky backend, whose answers say how often a client
	// retried.
	succeedEvery int64
}

// StartBackend starts a backend named name on a free loopback port.
func StartBackend(name string) (*Backend, error) { return StartFlakyBackend(name, 1) }

// StartBackendAt starts a backend named name on a free port of loopback address ip
// (any of 127.0.0.0/8): backends that stand for pods need addresses of their own.
func StartBackendAt(name, ip string) (*Backend, error) { return startBackend(name, ip, 1) }

// StartFlakyBackend starts a backend that answers only every n-th call and fails
// the others with UNAVAILABLE.
func StartFlakyBackend(name string, n int64) (*Backend, error) {
	return startBackend(name, "127.0.0.1", n)
}

func startBackend(name, ip string, n int64) (*Backend, error) {
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	b := &Backend{Name: name, Addr: lis.Addr().String(), Port: uint32(lis.Addr().(*net.TCPAddr).Port), stop: srv.Stop, succeedEvery: n,
		health: health.NewServer()}
	testgrpc.RegisterTestServiceServer(srv, b)
	healthpb.RegisterHealthServer(srv, b.health)
	go srv.Serve(lis)
	return b, nil
}

// UnaryCall answers with the backend's name.
func (b *Backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if n := b.calls.Add(1); b.succeedEvery > 1 && n%b.succeedEvery != 0 {
		return nil, status.Errorf(codes.Unavailable, "%s answers one call in %d", b.Name, b.succeedEvery)
	}
	return &testgrpc.SimpleResponse{Hostname: b.Name}, nil
}

// Calls returns how many RPCs the backend answered.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// SetHealthy sets what the backend's gRPC health service answers (SERVING or
// NOT_SERVING); it keeps answering UnaryCall either way.
func (b *Backend) SetHealthy(ok bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !ok {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	b.health.SetServingStatus("", st)
}

// Stop stops the backend.
func (b *Backend) Stop() { b.stop() }

// Bootstrap returns a grpc-go xDS bootstrap that talks to the xDS servers (host:port,
// plaintext) in order, as a proxy in namespace ns with Istio's node id conventions.
func Bootstrap(servers []string, ns string, labels map[string]string) []byte {
	return BootstrapWith(BootstrapOptions{Servers: servers, Namespace: ns, Labels: labels})
}

// BootstrapOptions describes a grpc-go xDS bootstrap.
type BootstrapOptions struct {
	Servers   []string
	Namespace string
	Name      string // the workload's name (default "client")
	// IP is the workload's address in its node id (default 127.0.0.1). istiod
	// takes the labels of a registered workload at that address in the proxy's
	// namespace over the bootstrap's.
	IP     string
	Labels map[string]string
	// CertDir, when set, adds the certificate provider "default" (file_watcher) that
	// reads cert-chain.pem, key.pem and root-cert.pem from it, as `navarch agent
	// certs` writes them, and the inbound listener name template servers need.
	CertDir string
	// Locality is where the client runs, "region/zone/sub-zone" (the node's locality).
	Locality string
	// NodeName is the node the client runs on (node metadata NODE_NAME).
	NodeName string
	// XDSOverTLS makes the client talk to the xDS servers over TLS with the
	// certificate in CertDir (a node's TLS port, as istiod's 15012).
	XDSOverTLS bool
}

// BootstrapWith returns a grpc-go xDS bootstrap.
func BootstrapWith(o BootstrapOptions) []byte {
	type server struct {
		URI      string           `json:"server_uri"`
		Creds    []map[string]any `json:"channel_creds"`
		Features []string         `json:"server_features"`
	}
	var ss []server
	creds := []map[string]any{{"type": "insecure"}}
	if o.XDSOverTLS {
		creds = []map[string]any{{"type": "tls", "config": map[string]string{
			"ca_certificate_file": filepath.Join(o.CertDir, "root-cert.pem"),
			"certificate_file":    filepath.Join(o.CertDir, "cert-chain.pem"),
			"private_key_file":    filepath.Join(o.CertDir, "key.pem"),
		}}}
	}
	for _, s := range o.Servers {
		ss = append(ss, server{URI: s, Creds: creds, Features: []string{"xds_v3"}})
	}
	ns, name, ip := o.Namespace, o.Name, o.IP
	if name == "" {
		name = "client"
	}
	if ip == "" {
		ip = "127.0.0.1"
	}
	md := map[string]any{"GENERATOR": "grpc", "NAMESPACE": ns}
	if len(o.Labels) > 0 {
		md["LABELS"] = o.Labels
	}
	if o.NodeName != "" {
		md["NODE_NAME"] = o.NodeName
	}
	node := map[string]any{
		"id":       fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, name, ns, ns),
		"metadata": md,
	}
	if o.Locality != "" {
		l := map[string]string{}
		for i, part := range strings.SplitN(o.Locality, "/", 3) {
			l[[]string{"region", "zone", "sub_zone"}[i]] = part
		}
		node["locality"] = l
	}
	doc := map[string]any{
		"xds_servers":                            ss,
		"node":                                   node,
		"server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
	}
	if o.CertDir != "" {
		doc["certificate_providers"] = map[string]any{"default": map[string]any{
			"plugin_name": "file_watcher",
			"config": map[string]any{
				"certificate_file":    filepath.Join(o.CertDir, "cert-chain.pem"),
				"private_key_file":    filepath.Join(o.CertDir, "key.pem"),
				"ca_certificate_file": filepath.Join(o.CertDir, "root-cert.pem"),
				"refresh_interval":    "1s",
			},
		}}
	}
	b, _ := json.Marshal(doc)
	return b
}

// Dial returns a client connection to target (xds:///host:port) resolved through
// grpc-go's xDS resolver with the given bootstrap.
func Dial(bootstrap []byte, target string) (*grpc.ClientConn, error) {
	r, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, fmt.Errorf("xDS resolver: %w", err)
	}
	return grpc.NewClient(target, grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Tally is where a batch of RPCs went: answers by backend name, failures by code,
// and the identities the backends saw the caller as.
type Tally struct {
	By       map[string]int
	Failed   map[codes.Code]int
	Total    int
	CallerAs map[string]int
}

// Share returns the fraction of RPCs that backend name answered.
func (t Tally) Share(name string) float64 {
	if t.Total == 0 {
		return 0
	}
	return float64(t.By[name]) / float64(t.Total)
}

// Call sends n UnaryCalls on cc, with the metadata key/value pairs md, and tallies
// the answers.
func Call(ctx context.Context, cc *grpc.ClientConn, n int, md ...string) Tally {
	t := Tally{By: map[string]int{}, Failed: map[codes.Code]int{}, CallerAs: map[string]int{}}
	client := testgrpc.NewTestServiceClient(cc)
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	for i := 0; i < n; i++ {
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		t.Total++
		if err != nil {
			t.Failed[status.Code(err)]++
			continue
		}
		t.By[resp.Hostname]++
		t.CallerAs[resp.Username]++
	}
	return t
}
