package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/navarch/navarch/client"
)

// CSRResult is how fast one node signs workload certificates.
type CSRResult struct {
	Clients   int     `json:"clients"`
	Signed    int     `json:"signed"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Failed    int     `json:"failed"`
	CPU       float64 `json:"cpu_seconds"`
	PeakRSS   int64   `json:"peak_rss_bytes"`
}

// csrGroup is the WorkloadGroup whose join token the clients authenticate with.
func csrGroup(ns string) client.File {
	return client.File{Source: "bench", Data: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: bench-csr, namespace: %s}
spec:
  metadata: {labels: {app: bench-csr}}
  template: {serviceAccount: bench-csr}
`, ns)}
}

// CSR runs Clients concurrent clients for Duration against the CSR API of
// CSRTarget, each on its own TLS connection, each sending CSRs one after another
// with a join token (created through the API for a WorkloadGroup of the
// benchmark's namespace). Each client makes its key and CSR once and sends the same
// CSR every time: the node checks and signs each as new, and the load generator's
// CPU goes to sending, not to key generation.
func CSR(ctx context.Context, cfg Config) (*CSRResult, error) {
	if err := cfg.needAPI("csr"); err != nil {
		return nil, err
	}
	if cfg.CSRTarget == "" {
		return nil, errors.New("bench csr needs the TLS gRPC address of a node (--csr-target), or no --target to start a local cluster")
	}
	if _, err := cfg.API.Apply(ctx, "", []client.File{csrGroup(cfg.Namespace)}); err != nil {
		return nil, fmt.Errorf("creating the WorkloadGroup: %w", err)
	}
	tok, err := cfg.API.CreateToken(ctx, cfg.Namespace+"/bench-csr", cfg.Duration+time.Hour)
	if err != nil {
		return nil, fmt.Errorf("creating a join token: %w", err)
	}
	roots, err := meshRoots(ctx, cfg.API)
	if err != nil {
		return nil, err
	}
	clients := max(cfg.Clients, 1)
	conns := make([]*grpc.ClientConn, clients)
	csrs := make([]string, clients)
	for i := range conns {
		if conns[i], csrs[i], _, err = csrClient(cfg.CSRTarget, roots); err != nil {
			return nil, err
		}
		defer conns[i].Close()
	}
	stats0 := readProcStats(cfg.PIDs)
	var mu sync.Mutex
	var lat Latencies
	failed := 0
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := pb.NewIstioCertificateServiceClient(conns[i])
			rctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Token)
			mine := make(Latencies, 0, 4096)
			bad := 0
			for time.Since(start) < cfg.Duration && ctx.Err() == nil {
				t := time.Now()
				resp, err := cc.CreateCertificate(rctx, &pb.IstioCertificateRequest{Csr: csrs[i]})
				if err != nil || len(resp.GetCertChain()) == 0 {
					bad++
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat, failed = append(lat, mine...), failed+bad
			mu.Unlock()
		}()
		cfg.progress("csr: %d clients started", i+1)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 && firstErr != nil {
		return nil, fmt.Errorf("no CSR was signed: %w", firstErr)
	}
	return &CSRResult{Clients: clients, Signed: len(lat), PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50: ms(lat.Percentile(50)), P99: ms(lat.Percentile(99)), Failed: failed,
		CPU: readProcStats(cfg.PIDs).since(stats0).CPUSeconds, PeakRSS: readProcStats(cfg.PIDs).PeakRSS}, nil
}

// meshRoots returns the mesh's trust bundle, as the node's API shows it.
func meshRoots(ctx context.Context, api *client.Client) (*x509.CertPool, error) {
	info, err := api.CA(ctx)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(info.TrustBundle)) {
		return nil, errors.New("the node's trust bundle holds no certificate")
	}
	return roots, nil
}

// csrClient connects to target over TLS (verifying the node against roots) and makes
// a key and its CSR.
func csrClient(target string, roots *x509.CertPool) (*grpc.ClientConn, string, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, "", nil, err
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "navarch", MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, "", nil, err
	}
	return conn, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key, nil
}
