package bench

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
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
	// LoadCPUSeconds is the load generator's own CPU time over the change: it shares
	// the machine with the nodes.
	LoadCPUSeconds float64 `json:"loadgen_cpu_seconds"`
	Delta          bool    `json:"delta"`
	// Runs are every change's figures when the scenario made more than one
	// (Config.Repeat); the figures above are then those of the run with the median p99.
	Runs []ConvergenceRun `json:"runs,omitempty"`
}

// ConvergenceRun is one change of a repeated convergence scenario.
type ConvergenceRun struct {
	P50            float64 `json:"p50_ms"`
	P99            float64 `json:"p99_ms"`
	Max            float64 `json:"max_ms"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	LoadCPUSeconds float64 `json:"loadgen_cpu_seconds"`
}

// Convergence connects the proxies, applies one change that affects every one of
// them (a DestinationRule for every service of the namespace) and measures, per
// proxy, the time from the apply call to the ACK of its changed cluster. With
// Repeat > 1 it makes that many changes, Settle apart (a second if unset), on the
// same connected proxies, and reports the run with the median p99 and every run.
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
	var results []*ConvergenceResult
	for run := range max(cfg.Repeat, 1) {
		pause := cfg.Settle
		if run > 0 && pause == 0 {
			pause = time.Second
		}
		if pause > 0 {
			cfg.progress("proxies connected; applying change %d of %d in %s", run+1, max(cfg.Repeat, 1), pause)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(pause):
			}
		}
		r, err := converge(ctx, &cfg, f)
		if err != nil {
			return nil, err
		}
		r.ConnectSecs = connect.Seconds()
		results = append(results, r)
	}
	return medianRun(results), nil
}

// medianRun returns the result with the median p99 (the lower of the two middle
// ones for an even count), listing every result in order as its Runs when there
// is more than one.
func medianRun(results []*ConvergenceResult) *ConvergenceResult {
	if len(results) == 1 {
		return results[0]
	}
	runs := make([]ConvergenceRun, len(results))
	for i, r := range results {
		runs[i] = ConvergenceRun{P50: r.P50, P99: r.P99, Max: r.Max, CPUSeconds: r.CPUSeconds, LoadCPUSeconds: r.LoadCPUSeconds}
	}
	sorted := slices.SortedStableFunc(slices.Values(results), func(a, b *ConvergenceResult) int { return cmp.Compare(a.P99, b.P99) })
	median := *sorted[(len(sorted)-1)/2]
	median.Runs = runs
	return &median
}

// converge applies one change to every proxy's tracked cluster and measures it.
func converge(ctx context.Context, cfg *Config, f *Fleet) (*ConvergenceResult, error) {
	tracked := trackedCluster(cfg)
	before := make([]string, cfg.Proxies)
	bytesBefore := make([]int64, cfg.Proxies)
	for i, p := range f.Proxies() {
		before[i], _ = p.Version(typeURLs[tCDS], tracked(i)[0])
		bytesBefore[i] = p.Status().Bytes
	}
	defer holdGC()()
	stats0 := readProcStats(cfg.PIDs)
	self0 := readProcStats([]int{os.Getpid()})
	start := time.Now()
	if _, err := cfg.API.Apply(ctx, "", []client.File{meshPolicy(cfg.Namespace, 2000+rand.IntN(100000))}); err != nil {
		return nil, err
	}
	applied := time.Since(start)
	lat, err := waitChanged(ctx, cfg, f, tCDS, tracked, before, start)
	if err != nil {
		return nil, err
	}
	st := readProcStats(cfg.PIDs).since(stats0)
	self := readProcStats([]int{os.Getpid()}).since(self0)
	var bytes int64
	for i, p := range f.Proxies() {
		bytes += p.Status().Bytes - bytesBefore[i]
	}
	return &ConvergenceResult{
		Proxies: cfg.Proxies, Services: cfg.Services, Endpoints: cfg.Endpoints,
		Min: ms(lat.Percentile(0)), Apply: ms(applied),
		P50: ms(lat.Percentile(50)), P90: ms(lat.Percentile(90)), P99: ms(lat.Percentile(99)), Max: ms(lat.Max()),
		BytesPerProxy: bytes / int64(max(cfg.Proxies, 1)), CPUSeconds: st.CPUSeconds, RSSBytes: st.RSS, PeakRSSBytes: st.PeakRSS,
		LoadCPUSeconds: self.CPUSeconds, Delta: cfg.Delta,
	}, nil
}

// waitChanged waits until every proxy holds a version of its tracked resource other
// than before[i] and returns, per proxy, how long after start it arrived. It looks
// only at proxies that stored a response since its last look: the load generator
// shares the CPU with the nodes it measures, and its polling must not slow them.
func waitChanged(ctx context.Context, cfg *Config, f *Fleet, t int, tracked func(int) []string, before []string, start time.Time) (Latencies, error) {
	deadline := time.Now().Add(cfg.Timeout)
	proxies := f.Proxies()
	lat := make(Latencies, len(proxies))
	names := make([]string, len(proxies))
	seen := make([]uint64, len(proxies))
	pending := make([]int, len(proxies))
	for i := range proxies {
		names[i], pending[i] = tracked(i)[0], i
		seen[i] = proxies[i].responses.Load() - 1 // look at every proxy once
	}
	for len(pending) > 0 {
		left := pending[:0]
		for _, i := range pending {
			p := proxies[i]
			if n := p.responses.Load(); n != seen[i] {
				seen[i] = n
				if h := p.held(t, names[i]); h != nil && h.version != before[i] {
					lat[i] = h.at.Sub(start)
					continue
				}
			}
			left = append(left, i)
		}
		pending = left
		cfg.progress("converged: %d/%d proxies", len(proxies)-len(pending), len(proxies))
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d proxies did not get the change within %s", len(pending), len(proxies), cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return lat, nil
}

// holdGC keeps the load generator's own garbage collection out of a measured window:
// it collects now, then not again until release is called or its memory has grown by
// a GiB. The load generator holds the state of every simulated proxy and shares the
// machine with the nodes it measures, and a collection of that heap in the window
// took as much CPU as the nodes' whole push; in a fleet that work is spread over the
// proxies' own machines. The nodes' collector is left alone.
func holdGC() (release func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	limit := debug.SetMemoryLimit(int64(ms.Sys-ms.HeapReleased) + 1<<30)
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}
