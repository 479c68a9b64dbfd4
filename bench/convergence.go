package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/navarch/navarch/client"
)

// ConvergenceResult is what the convergence scenario measured: from the apply call
// to each proxy's ACK of the new configuration.
type ConvergenceResult struct {
	Proxies       int     `json:"proxies"`
	Services      int     `json:"services"`
	Endpoints     int     `json:"endpoints"`
	Min           float64 `json:"min_ms"`
	Apply         float64 `json:"apply_ms"`
	P50           float64 `json:"p50_ms"`
	P90           float64 `json:"p90_ms"`
	P99           float64 `json:"p99_ms"`
	Max           float64 `json:"max_ms"`
	BytesPerProxy int64   `json:"bytes_per_proxy"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	RSSBytes      int64   `json:"rss_bytes"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	ConnectSecs   float64 `json:"connect_seconds"`
	Delta         bool    `json:"delta"`
}

// Convergence connects the proxies, applies one change that affects every one of
// them (a DestinationRule for every service of the namespace) and measures, per
// proxy, the time from the apply call to the ACK of its changed cluster.
func Convergence(ctx context.Context, cfg Config) (*ConvergenceResult, error) {
	if err := cfg.needAPI("convergence"); err != nil {
		return nil, err
	}
	if err := createServices(ctx, &cfg); err != nil {
		return nil, err
	}
	if _, err := cfg.API.Apply(ctx, "", []client.File{meshPolicy(cfg.Namespace, 1000)}); err != nil {
		return nil, err
	}
	connectStart := time.Now()
	f, err := connectFleet(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer f.Stop()
	connect := time.Since(connectStart)
	tracked := trackedCluster(&cfg)
	before := make([]string, cfg.Proxies)
	bytesBefore := make([]int64, cfg.Proxies)
	for i, p := range f.Proxies() {
		before[i], _ = p.Version(typeURLs[tCDS], tracked(i)[0])
		bytesBefore[i] = p.Status().Bytes
	}
	stats0 := readProcStats(cfg.PIDs)
	start := time.Now()
	if _, err := cfg.API.Apply(ctx, "", []client.File{meshPolicy(cfg.Namespace, 2000+rand.IntN(100000))}); err != nil {
		return nil, err
	}
	applied := time.Since(start)
	lat, err := waitChanged(ctx, &cfg, f, tCDS, tracked, before, start)
	if err != nil {
		return nil, err
	}
	st := readProcStats(cfg.PIDs).since(stats0)
	var bytes int64
	for i, p := range f.Proxies() {
		bytes += p.Status().Bytes - bytesBefore[i]
	}
	return &ConvergenceResult{
		Proxies: cfg.Proxies, Services: cfg.Services, Endpoints: cfg.Endpoints,
		Min: ms(lat.Percentile(0)), Apply: ms(applied),
		P50: ms(lat.Percentile(50)), P90: ms(lat.Percentile(90)), P99: ms(lat.Percentile(99)), Max: ms(lat.Max()),
		BytesPerProxy: bytes / int64(max(cfg.Proxies, 1)), CPUSeconds: st.CPUSeconds, RSSBytes: st.RSS, PeakRSSBytes: st.PeakRSS,
		ConnectSecs: connect.Seconds(), Delta: cfg.Delta,
	}, nil
}

// waitChanged waits until every proxy holds a version of its tracked resource other
// than before[i] and returns, per proxy, how long after start it arrived.
func waitChanged(ctx context.Context, cfg *Config, f *Fleet, t int, tracked func(int) []string, before []string, start time.Time) (Latencies, error) {
	deadline := time.Now().Add(cfg.Timeout)
	lat := make(Latencies, len(f.Proxies()))
	done := make([]bool, len(f.Proxies()))
	remaining := len(done)
	for remaining > 0 {
		for i, p := range f.Proxies() {
			if done[i] {
				continue
			}
			if h := p.held(t, tracked(i)[0]); h != nil && h.version != before[i] {
				lat[i], done[i] = h.at.Sub(start), true
				remaining--
			}
		}
		cfg.progress("converged: %d/%d proxies", len(done)-remaining, len(done))
		if remaining == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d proxies did not get the change within %s", remaining, len(done), cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return lat, nil
}
