package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/navarch/navarch/client"
)

// VMResult is how VMs registering themselves (Istio's auto-registration) reached the
// registry, and, with a local cluster, what a node's death did to them.
type VMResult struct {
	VMs int `json:"vms"`
	// RegisteredSeconds is from the first VM's stream to every VM in the registry;
	// PerSecond is VMs over that time.
	RegisteredSeconds float64 `json:"registered_seconds"`
	PerSecond         float64 `json:"per_second"`
	// Moved is how many VMs the killed node held; ReconnectP99 when they had their
	// streams to survivors again (ms after the kill).
	Moved        int     `json:"moved,omitempty"`
	ReconnectP50 float64 `json:"reconnect_p50_ms,omitempty"`
	ReconnectP99 float64 `json:"reconnect_p99_ms,omitempty"`
	// EntriesLost is the most VMs missing from the registry at once, watched from the
	// kill until well past the dead node's lease (its grace period).
	EntriesLost int     `json:"entries_lost"`
	Killed      string  `json:"killed,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	PeakRSS     int64   `json:"peak_rss_bytes"`
}

const vmGroup = "bench-vm"

// vmWatchAfterKill is how long the registry is watched after a node is killed: past
// the dead node's lease, which ends a grace period (10 s by default) after its death.
const vmWatchAfterKill = 15 * time.Second

// VMs registers Proxies simulated VMs of a WorkloadGroup, each on its own TLS stream
// to a node (round robin over TLSTargets) asking to be registered
// (AUTO_REGISTER_GROUP), all with one certificate of the group's identity (a
// certificate is the identity, not the VM), and waits until the registry lists
// them all. With a local cluster it then kills the node holding most of them and
// watches the registry while they reconnect to the others: no VM should leave it.
func VMs(ctx context.Context, cfg Config) (*VMResult, error) {
	if err := cfg.needAPI("vm"); err != nil {
		return nil, err
	}
	if len(cfg.TLSTargets) == 0 {
		return nil, errors.New("bench vm needs the nodes' TLS gRPC addresses: run it without --target (a local cluster)")
	}
	cert, roots, err := vmCertificate(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	stats0 := readProcStats(cfg.PIDs)
	fleet := &vmFleet{cfg: &cfg, cert: cert, roots: roots}
	defer fleet.stop()
	start := time.Now()
	for i := range cfg.Proxies {
		fleet.start(ctx, i)
		if i%100 == 99 {
			cfg.progress("vm: %d streams opened", i+1)
		}
	}
	if _, err := waitVMs(ctx, &cfg, cfg.Proxies, "registered"); err != nil {
		return nil, err
	}
	took := time.Since(start)
	r := &VMResult{VMs: cfg.Proxies, RegisteredSeconds: took.Seconds(), PerSecond: float64(cfg.Proxies) / took.Seconds()}
	if cfg.Kill != nil && len(cfg.TLSTargets) > 1 && len(cfg.NodeAPIs) == len(cfg.TLSTargets) {
		if err := fleet.failover(ctx, r); err != nil {
			return nil, err
		}
	}
	st := readProcStats(cfg.PIDs).since(stats0)
	r.CPUSeconds, r.PeakRSS = st.CPUSeconds, readProcStats(cfg.PIDs).PeakRSS
	return r, nil
}

// vmCertificate applies the VMs' WorkloadGroup and gets a certificate of its
// identity with a join token, as `navarch agent` does.
func vmCertificate(ctx context.Context, cfg *Config) (tls.Certificate, *x509.CertPool, error) {
	group := client.File{Source: "bench", Data: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: %s, namespace: %s}
spec:
  metadata: {labels: {app: %s}}
  template: {serviceAccount: %s, ports: {grpc: 9080}}
`, vmGroup, cfg.Namespace, vmGroup, vmGroup)}
	if _, err := cfg.API.Apply(ctx, "", []client.File{group}); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("creating the WorkloadGroup: %w", err)
	}
	tok, err := cfg.API.CreateToken(ctx, cfg.Namespace+"/"+vmGroup, time.Hour)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("creating a join token: %w", err)
	}
	roots, err := meshRoots(ctx, cfg.API)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	conn, csr, key, err := csrClient(cfg.TLSTargets[0], roots)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	defer conn.Close()
	rctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Token)
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx, &pb.IstioCertificateRequest{Csr: csr})
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("getting the VMs' certificate: %w", err)
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range resp.GetCertChain() {
		for rest := []byte(c); ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	return cert, roots, nil
}

// vmFleet is the simulated VMs: each holds one registration stream, moving to the
// next node when its stream ends.
type vmFleet struct {
	cfg   *Config
	cert  tls.Certificate
	roots *x509.CertPool
	wg    sync.WaitGroup
	stops []context.CancelFunc

	mu  sync.Mutex
	vms []*vmState
}

type vmState struct {
	target      int       // index in TLSTargets of the node holding the stream
	connectedAt time.Time // when that stream was opened
}

func (f *vmFleet) start(ctx context.Context, i int) {
	ctx, cancel := context.WithCancel(ctx)
	st := &vmState{target: i % len(f.cfg.TLSTargets)}
	f.mu.Lock()
	f.vms, f.stops = append(f.vms, st), append(f.stops, cancel)
	f.mu.Unlock()
	ip := fmt.Sprintf("10.%d.%d.%d", 100+i>>16&63, i>>8&255, i&255)
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": f.cfg.Namespace, "SERVICE_ACCOUNT": vmGroup,
		"AUTO_REGISTER_GROUP": vmGroup, "GENERATOR": "grpc"})
	node := &core.Node{Id: "sidecar~" + ip + "~vm-" + fmt.Sprint(i) + "." + f.cfg.Namespace + "~" + f.cfg.Namespace + ".svc.cluster.local", Metadata: md}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for ctx.Err() == nil {
			f.mu.Lock()
			target := f.cfg.TLSTargets[st.target]
			f.mu.Unlock()
			f.hold(ctx, st, target, node)
			if ctx.Err() != nil {
				return
			}
			f.mu.Lock()
			st.target = (st.target + 1) % len(f.cfg.TLSTargets)
			f.mu.Unlock()
			select { // as an agent does, briefly, before the next node
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
}

// hold opens a registration stream to target and keeps it until it ends.
func (f *vmFleet) hold(ctx context.Context, st *vmState, target string, node *core.Node) {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: f.roots, ServerName: "navarch", MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{f.cert}})))
	if err != nil {
		return
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: "type.googleapis.com/istio.v1.HealthInformation"}); err != nil {
		return
	}
	f.mu.Lock()
	st.connectedAt = time.Now()
	f.mu.Unlock()
	for {
		if _, err := stream.Recv(); err != nil {
			return
		}
	}
}

func (f *vmFleet) stop() {
	for _, cancel := range f.stops {
		cancel()
	}
	f.wg.Wait()
}

// failover kills the node holding most streams and measures the moved VMs'
// reconnection and the registry's hold on every VM meanwhile.
func (f *vmFleet) failover(ctx context.Context, r *VMResult) error {
	counts := make([]int, len(f.cfg.TLSTargets))
	f.mu.Lock()
	for _, v := range f.vms {
		counts[v.target]++
	}
	f.mu.Unlock()
	victim := 0
	for i, n := range counts {
		if n > counts[victim] {
			victim = i
		}
	}
	var moved []*vmState
	f.mu.Lock()
	for _, v := range f.vms {
		if v.target == victim {
			moved = append(moved, v)
		}
	}
	f.mu.Unlock()
	r.Moved, r.Killed = len(moved), f.cfg.TLSTargets[victim]
	f.cfg.progress("vm: killing the node at %s, which holds %d VMs' streams", r.Killed, len(moved))
	killed := time.Now()
	if err := f.cfg.Kill(f.cfg.Targets[victim]); err != nil {
		return err
	}
	api := f.cfg.NodeAPIs[(victim+1)%len(f.cfg.NodeAPIs)] // a survivor's view
	lowest := f.cfg.Proxies
	var lat Latencies
	for time.Since(killed) < vmWatchAfterKill {
		n, err := countVMs(ctx, api)
		if err == nil {
			lowest = min(lowest, n)
		}
		if lat == nil {
			lat = f.reconnected(moved, killed)
		}
		f.cfg.progress("vm: %d of %d VMs registered, %d s after the kill", n, f.cfg.Proxies, int(time.Since(killed).Seconds()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if lat == nil {
		return fmt.Errorf("the killed node's VMs did not all reconnect within %s", vmWatchAfterKill)
	}
	r.ReconnectP50, r.ReconnectP99 = ms(lat.Percentile(50)), ms(lat.Percentile(99))
	r.EntriesLost = f.cfg.Proxies - lowest
	return nil
}

// reconnected returns when each moved VM had its stream to a survivor, nil while
// some have not.
func (f *vmFleet) reconnected(moved []*vmState, killed time.Time) Latencies {
	f.mu.Lock()
	defer f.mu.Unlock()
	lat := make(Latencies, 0, len(moved))
	for _, v := range moved {
		if !v.connectedAt.After(killed) {
			return nil
		}
		lat = append(lat, v.connectedAt.Sub(killed))
	}
	return lat
}

// countVMs counts the benchmark's VMs in the registry.
func countVMs(ctx context.Context, api *client.Client) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reg, err := api.Registry(rctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range reg.Unselected {
		if e.Source == "vm" && strings.HasPrefix(e.Name, vmGroup+"-") {
			n++
		}
	}
	return n, nil
}

// waitVMs waits until the registry lists want VMs.
func waitVMs(ctx context.Context, cfg *Config, want int, what string) (int, error) {
	deadline := time.Now().Add(cfg.Timeout)
	for {
		n, err := countVMs(ctx, cfg.API)
		if err == nil && n >= want {
			return n, nil
		}
		cfg.progress("vm: %d of %d VMs %s", n, want, what)
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%d of %d VMs %s after %s (%v)", n, want, what, cfg.Timeout, err)
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
